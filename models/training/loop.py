"""One training loop for any model (in the spirit of minGPT's ``trainer.py``): it knows nothing of GPT
or characters. :mod:`models.training.gpt_chars` is one configuration of it.

``Trainer(model, source, loss, TrainConfig(...)).fit()`` runs AdamW with linear warmup and cosine
decay, gradient accumulation and clipping, evaluation on fixed batches with standard errors, an
optional target-loss stop, a progress bar, ``log.json`` and atomic checkpoints that resume to exactly
the same losses, bf16 autocast on CUDA, ``torch.compile`` when asked (``compile="blocks"`` or
``"model"``; off by default), and DDP under ``torchrun`` (NCCL on GPUs, gloo on CPUs).

What the caller gives:

- ``model``: an ``nn.Module``, or a function of no arguments that builds one (preferred: the loop
  calls it after the memory check, with the torch RNG seeded ``seed + rank``, so the seed fixes
  the initial weights). The loop moves it to its device.
- ``source``, a batch source: any object with
    * ``to(device) -> source``: called once, before any batch, with the loop's device; returns the
      source to draw from (the data may then live on the device, and batches be cut there);
    * ``batch(split, batch_size, gen) -> batch``: ``batch_size`` examples of ``split`` (``"train"``,
      ``"val"``, or another name the source lists), as any structure of tensors on that device (a
      tuple ``(x, y)``, a dict of token ids and labels, padded sequences with their lengths...).
      Every random choice (offsets, masks, synthetic tasks) must be drawn from ``gen``, a CPU
      ``torch.Generator`` owned by the loop, never from the global RNG, and the source must keep
      no other state that changes from batch to batch: the loop checkpoints ``gen`` alone, and so
      resumes the batch stream exactly. An unknown split is a ValueError.
    * optionally ``eval_splits``: the splits each evaluation reports (default ``("train", "val")``;
      ``"val"`` must be one of them: the target loss and the best loss are read on it).
- ``loss(model, batch) -> scalar tensor``: the mean loss of the batch, a differentiable 0-dim tensor
  (for a language model: nats per predicted token, over the positions that count, e.g. the masked
  ones); it runs under the loop's autocast (bf16 on CUDA by default). In training ``model`` is what
  runs the forward pass (the module, compiled or wrapped in DDP): the loss must call ``model(...)``
  itself, never its submodules, or DDP would not average the gradients; a model of several parts
  (a draft and a target network) gives its ``forward`` an argument choosing the part or returns both.
- ``model_config``: a JSON-able dict describing the model, written to the checkpoint and the log; a
  resume with a different one is refused.
- ``memory``: ``(what, bytes)``, the model-specific estimate of one training step's memory in bytes;
  the loop refuses the run (ValueError starting with ``what``, say the flags that set the sizes)
  before building the model when its device cannot hold it.

What the loop guarantees:

- every training step draws ``grad_accum`` batches of ``"train"`` from its generator (seeded
  ``seed + rank``: each DDP rank its own batches), in order, and steps once on the mean of their
  gradients (clipped to norm ``grad_clip``); the same seed gives the same batches on any device;
  the logged training loss is that of the step's last batch;
- every evaluation draws ``eval_iters`` batches of each evaluation split, in the order listed, from
  a fresh generator seeded ``seed + 10000 + rank``: the same batches every time, so curves compare;
  it reports, per split, the mean of the batch losses and its standard error over batches (and
  ranks), in the loss's units, with the model in eval mode under ``torch.inference_mode``;
- a NaN or infinite logged or evaluated loss raises :class:`Diverged`, and no checkpoint of it is written;
- the checkpoint ``out/ckpt.pt`` (written whole at each evaluation and on Ctrl-C) holds the model,
  optimizer, loss scaler, step, history and every rank's RNG states: ``resume=True`` continues to
  bit-for-bit the same losses. It is read with ``weights_only=True``; a damaged or foreign file is a
  one-line ValueError naming it;
- ``out/log.json`` (and :meth:`Trainer.fit`'s return value) hold the history of evaluations and the
  logged training losses, both complete across resumes (the median step time is this process's).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from models.training import T_LAUNCH
from models.training.optim import AdamW
from models.utils.budget import require_memory
from models.utils.cli import MAX_SEED, check_range
from models.utils.device import describe, pick_device
from models.utils.files import check_output_dir, write_atomic


class BatchSource(Protocol):
    """What the loop draws batches from (see the module docstring for the contract)."""

    def to(self, device: torch.device) -> BatchSource:
        """The same source with its data on ``device``; called once, before the first batch."""
        ...

    def batch(self, split: str, batch_size: int, gen: torch.Generator) -> Any:
        """``batch_size`` examples of ``split``, every random choice drawn from ``gen``; ValueError for an
        unknown split."""
        ...


LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


@dataclass
class TrainConfig:
    """Every training setting (one flag each on the command line); each field is checked when the config is
    built, so a bad value fails (ValueError naming the field) before any data is read or model built."""

    # each field's "help" is its line in ``python -m models.training --help`` ("default": its default, in words)
    batch_size: int = field(default=64, metadata={"help": "sequences per micro-batch"})
    max_iters: int = field(default=5000, metadata={"help": "training steps (optimizer updates)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate, reached after the warmup"})
    min_lr: float = field(
        default=1e-4, metadata={"help": "learning rate at the end of the cosine decay (at most --lr)"}
    )
    warmup_iters: int = field(default=100, metadata={"help": "steps of linear warmup to --lr"})
    lr_decay_iters: int = field(default=5000, metadata={"help": "step at which the cosine decay reaches --min-lr"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay, on matrices only"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW beta1 (decay of the gradient's mean), in [0, 1)"})
    beta2: float = field(default=0.99, metadata={"help": "AdamW beta2 (decay of the squared gradient's), in [0, 1)"})
    grad_clip: float = field(default=1.0, metadata={"help": "clip the gradient's norm to this; 0: no clipping"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step (their gradients averaged)"})
    eval_interval: int = field(
        default=250, metadata={"help": "steps between evaluations (each writes the checkpoint with --out)"}
    )
    eval_iters: int = field(default=200, metadata={"help": "batches of each split per evaluation"})
    log_interval: int = field(default=10, metadata={"help": "steps between logged training losses"})
    eval_train: bool = field(
        default=True, metadata={"help": "also estimate the train loss at each evaluation (doubles its cost)"}
    )
    seed: int = field(default=1337, metadata={"help": "seed of the initial weights, dropout and batches"})
    device: str | None = field(
        default=None,
        metadata={"help": "cpu, cuda or cuda:N", "default": "$PROOFS_DEVICE, else cuda when available, else cpu"},
    )
    dtype: str = field(  # auto = bf16 autocast on CUDA, float32 on CPU
        default="auto",
        metadata={"help": "auto, float32, bfloat16 or float16 (autocast); auto: bfloat16 on CUDA, float32 on CPU"},
    )
    compile: str = field(  # auto = none: measured on an H200, compiling the gpu preset costs ~20 s and
        # saves no step time (16.3 ms eager vs 15.8-18.6 ms compiled); "blocks" or "model" for larger models
        default="auto",
        metadata={"help": "torch.compile: auto, none, blocks (each block) or model; auto: none (no gain measured)"},
    )
    out: str | None = field(
        default=None,  # folder for checkpoint and log
        metadata={
            "help": "folder for the checkpoint (ckpt.pt) and log (log.json)",
            "default": "none (nothing written)",
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue the run whose checkpoint is in --out"})
    data: str | None = field(
        default=None,  # where the batch source reads its data (None: the source's default)
        metadata={
            "help": "text file to train on",
            "default": "$TINY_SHAKESPEARE, else the cached or downloaded tiny Shakespeare",
        },
    )
    target_loss: float | None = field(
        default=None,  # stop at the first evaluation with val loss <= this
        metadata={
            "help": "stop at the first evaluation whose val loss is at most this (nats per token)",
            "default": "none (train --max-iters steps)",
        },
    )
    progress: bool | None = field(
        default=None, metadata={"help": "progress bar on stderr", "default": "on when stderr is a terminal"}
    )

    def __post_init__(self):
        """Every field is checked here, so a bad value fails before any data is read or model built."""
        for f in ("batch_size", "max_iters", "grad_accum", "eval_interval", "eval_iters", "log_interval"):
            if isinstance(getattr(self, f), bool) or not isinstance(getattr(self, f), int) or getattr(self, f) <= 0:
                raise ValueError(f"{f}: must be a positive integer, got {getattr(self, f)!r}")
        for f in ("warmup_iters", "lr_decay_iters"):
            if isinstance(getattr(self, f), bool) or not isinstance(getattr(self, f), int) or getattr(self, f) < 0:
                raise ValueError(f"{f}: must be a non-negative integer, got {getattr(self, f)!r}")
        if self.lr_decay_iters < 1:
            raise ValueError(
                f"lr_decay_iters: must be at least 1 (the step the decay ends at), got {self.lr_decay_iters}"
            )
        check_range(self.lr, 0, None, lo_open=True, name="lr")
        check_range(self.min_lr, 0, self.lr, name="min_lr")  # cosine decay runs from lr down to min_lr
        check_range(self.weight_decay, 0, None, name="weight_decay")
        check_range(self.beta1, 0, 1, hi_open=True, name="beta1")
        check_range(self.beta2, 0, 1, hi_open=True, name="beta2")
        check_range(self.grad_clip, 0, None, name="grad_clip")  # 0 turns clipping off
        if self.target_loss is not None:
            check_range(self.target_loss, 0, None, lo_open=True, name="target_loss")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED // 2:
            raise ValueError(f"seed: must be an integer in [0, {MAX_SEED // 2}], got {self.seed!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: unknown {self.dtype!r}")
        if self.compile not in ("auto", "none", "blocks", "model"):
            raise ValueError(f"compile: unknown {self.compile!r}")
        if self.resume and not self.out:
            raise ValueError("resume: needs --out, the folder holding the checkpoint")
        if self.out is not None:
            check_output_dir(self.out, "out")
            held = [n for n in ("ckpt.pt", "log.json") if (Path(self.out) / n).exists()]
            if held and not self.resume:
                raise ValueError(
                    f"out: {self.out!r} already holds {' and '.join(held)}; pass --resume to continue that run, "
                    "or give another folder"
                )


CHECKPOINT_KEYS = {"model_config", "train_config", "step", "model", "optimizer", "history", "best", "scaler", "rng"}
ADVICE = "lower --lr, or keep --grad-clip above 0"


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_iters``, cosine decay to ``min_lr`` at ``lr_decay_iters``."""
    if step < tc.warmup_iters:
        return tc.lr * (step + 1) / (tc.warmup_iters + 1)
    if step > tc.lr_decay_iters:
        return tc.min_lr
    ratio = (step - tc.warmup_iters) / max(1, tc.lr_decay_iters - tc.warmup_iters)
    return tc.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (tc.lr - tc.min_lr)


def make_optimizer(model: torch.nn.Module, tc: TrainConfig) -> AdamW:
    """AdamW (torch's, see :mod:`models.training.optim`) with weight decay on matrices only (not on biases,
    norms' gains). Fused (one kernel for every tensor) on CPU and CUDA alike: on the 2-core CPU
    it halves the optimizer's share of a ``cpu``-preset step (4.3 to 2.0 ms with clipping)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": tc.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), fused=True)


def _eager():
    """Run compiled modules eagerly inside this context (where torch supports it). Without
    ``torch._dynamo`` loaded nothing is compiled, and importing it just to say so costs ~1.2 s."""
    stance = getattr(torch.compiler, "set_stance", None)
    if stance is None or "torch._dynamo" not in sys.modules:
        return contextlib.nullcontext()
    return stance("force_eager")


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The members of the model's outermost ``nn.ModuleList``s (its repeated layers), what
    ``compile="blocks"`` compiles; ValueError when it has none."""
    out, inside = [], set()
    for m in model.modules():  # depth first: a list comes before what is inside it
        if isinstance(m, torch.nn.ModuleList) and id(m) not in inside:
            out += list(m)
            inside |= {id(x) for b in m for x in b.modules()}
    if not out:
        raise ValueError("compile: 'blocks' needs a model with its layers in an nn.ModuleList; use 'model'")
    return out


class Trainer:
    """One training run (one process; rank 0 of several under torchrun). Raises ValueError for a
    device that cannot hold ``memory`` and for a checkpoint that cannot be resumed. With ``keep_best``
    a copy of the weights at the lowest validation loss so far is kept in ``best_state`` (model
    selection on validation; load it with ``model.load_state_dict``)."""

    def __init__(
        self,
        model: torch.nn.Module | Callable[[], torch.nn.Module],
        source: BatchSource,
        loss: LossFn,
        tc: TrainConfig,
        model_config: dict | None = None,
        memory: tuple[str, float] | None = None,
        keep_best: bool = False,
    ):
        self.tc, self.loss, self.model_config = tc, loss, dict(model_config or {})
        self.keep_best, self.best_state = keep_best, None  # the weights at the best validation loss
        self.t_start = time.time()
        self.ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        if self.ddp:
            cuda = torch.cuda.is_available() and tc.device != "cpu"
            dist.init_process_group(backend="nccl" if cuda else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            local = int(os.environ.get("LOCAL_RANK", 0))
            self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
            if cuda:
                torch.cuda.set_device(self.device)
        else:
            self.rank, self.world = 0, 1
            self.device = pick_device(tc.device)
        self.master = self.rank == 0
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        dtype = {"auto": "bfloat16" if cuda else "float32"}.get(tc.dtype, tc.dtype)
        self.ctx = (
            torch.autocast(self.device.type, dtype=getattr(torch, dtype))
            if dtype != "float32"
            else contextlib.nullcontext()
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=dtype == "float16")
        if memory is not None:
            require_memory(*memory, self.device)
        self.source = source.to(self.device)
        self.splits = tuple(getattr(self.source, "eval_splits", ("train", "val")))
        if "val" not in self.splits:
            raise ValueError(
                f"eval_splits: must include 'val' (the target and best loss are read there), got {self.splits}"
            )
        if not tc.eval_train:
            self.splits = tuple(s for s in self.splits if s != "train")
        torch.manual_seed(tc.seed + self.rank)  # dropout masks and (when built here) the weights' init
        self.model = (model if isinstance(model, torch.nn.Module) else model()).to(self.device)
        self.opt = make_optimizer(self.model, tc)
        self.gen = torch.Generator().manual_seed(tc.seed + self.rank)  # training batches
        self.step, self.history, self.best = 0, [], float("inf")
        self.losses: list = []  # logged (step, training loss) pairs, kept across resumes
        if tc.resume:
            self._load()
        self.fwd = self.model  # what the training forward pass runs: compiled and/or DDP-wrapped
        mode = {"auto": "none"}.get(tc.compile, tc.compile)
        if mode == "blocks":  # regional compilation: one compiled block serves every layer
            for b in _blocks(self.model):
                b.compile()
        elif mode == "model":
            self.fwd = torch.compile(self.model)
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.fwd = DDP(self.fwd, device_ids=[self.device.index] if cuda else None)

    # -- checkpoints -----------------------------------------------------------------
    def _ckpt(self) -> Path:
        return Path(self.tc.out) / "ckpt.pt"

    def _rng_states(self) -> list:
        """Every rank's RNG states (batch generator, dropout RNG on CPU and CUDA), gathered on all ranks."""
        mine = (
            self.gen.get_state(),
            torch.get_rng_state(),
            torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        )
        if not self.ddp:
            return [mine]
        states = [None] * self.world
        dist.all_gather_object(states, mine)
        return states

    def save(self) -> None:
        """Write the checkpoint atomically: model, optimizer, loss scaler, step, history and every
        rank's RNG states (a collective under DDP: every rank calls it). Nothing without ``out``."""
        if not self.tc.out:
            return
        rngs = self._rng_states()
        if not self.master:
            return
        state = {
            "model_config": self.model_config,
            "train_config": asdict(self.tc),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "history": self.history,
            "losses": [list(p) for p in self.losses],
            "best": self.best,
            "scaler": self.scaler.state_dict(),
            "rng": rngs,  # one (batch generator, torch, cuda) triple per rank
        }
        path = self._ckpt()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda p: torch.save(state, p), "out")

    def _load(self) -> None:
        """Restore a checkpoint. It is read with ``weights_only=True``: tensors and plain types only, so a
        crafted file cannot run code; a damaged or foreign one is a ValueError naming the file."""
        path = self._ckpt()
        if not path.is_file():
            raise ValueError(f"resume: no checkpoint at {str(path)!r}")
        try:
            s = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # pickle, zip, EOF, and the weights-only unpickler's refusals all land here
            raise ValueError(f"resume: {str(path)!r} is not a readable checkpoint ({type(e).__name__})") from None
        if not isinstance(s, dict) or not CHECKPOINT_KEYS <= set(s):
            raise ValueError(f"resume: {str(path)!r} is not a checkpoint of this trainer (keys missing)")
        types = {"step": int, "history": list, "best": float, "rng": list, "model_config": dict}
        bad = [k for k, t in types.items() if not isinstance(s[k], t) or isinstance(s[k], bool)]
        if bad:
            raise ValueError(f"resume: {str(path)!r} is not a checkpoint of this trainer ({', '.join(bad)} malformed)")
        if s["model_config"] != self.model_config:
            raise ValueError("resume: the checkpoint's model config differs from the one asked for")
        if len(s["rng"]) != self.world:
            raise ValueError(f"resume: checkpoint written by {len(s['rng'])} processes, resumed with {self.world}")
        if s["step"] >= self.tc.max_iters:
            raise ValueError(
                f"max_iters: the checkpoint is at step {s['step']} already; give a larger --max-iters to train on"
            )
        try:
            self.model.load_state_dict(s["model"])
            self.opt.load_state_dict(s["optimizer"])
            self.scaler.load_state_dict(s["scaler"])
            gen, cpu, cuda = s["rng"][self.rank]
            self.gen.set_state(gen.cpu())
            torch.set_rng_state(cpu.cpu())
            if cuda is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(cuda.cpu(), self.device)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(
                f"resume: {str(path)!r} does not fit this model and trainer ({type(e).__name__})"
            ) from None
        self.step, self.history, self.best = int(s["step"]), list(s["history"]), float(s["best"])
        self.losses = [tuple(p) for p in s.get("losses", [])]  # absent from checkpoints before this field

    # -- evaluation ------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self) -> dict:
        """Per evaluation split, the mean loss over ``eval_iters`` batches (key ``split``) and its
        standard error over batches (``split_se``), the same batches at every evaluation (nanoGPT
        draws fresh ones; fixed ones make curves comparable). Averaged over DDP ranks. Runs eagerly:
        a compiled eval graph would cost a second compilation for a few hundred forward passes."""
        self.model.eval()
        gen = torch.Generator().manual_seed(self.tc.seed + 10_000 + self.rank)
        out, n = {}, self.tc.eval_iters * self.world
        for split in self.splits:
            sums = torch.zeros(2, device=self.device)  # sum and sum of squares of batch losses
            for _ in range(self.tc.eval_iters):
                batch = self.source.batch(split, self.tc.batch_size, gen)
                with self.ctx, _eager():
                    loss = self.loss(self.model, batch)
                loss = loss.float()
                sums += torch.stack([loss, loss * loss])
            if self.ddp:
                dist.all_reduce(sums)
            mean, sq = (sums / n).tolist()
            out[split] = mean
            out[split + "_se"] = math.sqrt(max(sq - mean * mean, 0.0) / max(n - 1, 1))  # s.e. of the mean
        self.model.train()
        return out

    # -- training --------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One optimizer step over ``grad_accum`` batches; returns the last batch's loss (detached, unsynced)."""
        lr = lr_at(self.step, self.tc)
        for g in self.opt.param_groups:
            g["lr"] = lr
        for micro in range(self.tc.grad_accum):
            batch = self.source.batch("train", self.tc.batch_size, self.gen)
            sync = contextlib.nullcontext()
            if self.ddp and micro < self.tc.grad_accum - 1:
                sync = self.fwd.no_sync()  # average the gradients once, after the last micro-batch
            with sync, self.ctx:
                loss = self.loss(self.fwd, batch)
            self.scaler.scale(loss / self.tc.grad_accum).backward()
        if self.tc.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        return loss.detach()

    def _record_eval(self) -> bool:
        """Evaluate, log, checkpoint; return True when the target loss is reached. A non-finite
        loss raises :class:`Diverged` before the checkpoint is written."""
        ev = self.evaluate()
        if not all(math.isfinite(ev[k]) for k in self.splits):
            bad = next(k for k in self.splits if not math.isfinite(ev[k]))
            raise Diverged(f"training diverged: {bad} loss {ev[bad]} at step {self.step}; {ADVICE}")
        rec = {
            "step": self.step,
            **ev,
            "lr": lr_at(self.step, self.tc),
            "elapsed": time.time() - T_LAUNCH,  # since the process started
            "run_s": time.time() - self.t_start,  # since this run was set up
        }
        self.history.append(rec)
        if ev["val"] < self.best and self.keep_best:  # model selection on validation: keep these weights
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.best = min(self.best, ev["val"])
        if self.master:
            losses = ", ".join(f"{k} {ev[k]:.4f}" for k in self.splits)
            self._log(f"step {self.step}: {losses} ({rec['run_s']:.1f} s into this run)")
        self.save()
        return self.tc.target_loss is not None and ev["val"] <= self.tc.target_loss

    def _log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, file=sys.stderr, flush=True)

    def fit(self) -> dict:
        """Train to ``max_iters`` (or the target loss, or Ctrl-C); return :meth:`summary`. Raises
        :class:`Diverged` when a logged or evaluated loss is not finite."""
        tc = self.tc
        self.bar = None
        if self.master and (tc.progress if tc.progress is not None else sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(
                total=tc.max_iters, initial=self.step, unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.5
            )
        losses, times = self.losses, []
        self.model.train()
        reached = False
        self.interrupted = False
        restore = self._catch_interrupt()
        try:
            while self.step < tc.max_iters and not reached and not self.interrupted:
                t0 = time.perf_counter()
                loss = self.train_step()
                if self.step % tc.log_interval == 0 or self.step == tc.max_iters:
                    losses.append((self.step, loss.item()))  # .item() syncs: only now and then
                    if not math.isfinite(losses[-1][1]):
                        raise Diverged(f"training diverged: loss {losses[-1][1]} at step {self.step}; {ADVICE}")
                    if self.bar is not None:
                        self.bar.set_postfix(loss=f"{losses[-1][1]:.4f}", refresh=False)
                times.append(time.perf_counter() - t0)
                if self.bar is not None:
                    self.bar.update(1)
                if self.step % tc.eval_interval == 0 or self.step == tc.max_iters:
                    reached = self._record_eval()
            if self.interrupted:
                if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                    raise Diverged(f"training diverged: non-finite weights at step {self.step}; {ADVICE}")
                self.save()  # between two steps, so the checkpoint resumes exactly
        finally:
            restore()
            if self.bar is not None:
                self.bar.close()
        return self.summary(losses, times)

    def _catch_interrupt(self):
        """Make Ctrl-C stop after the current step (a second one stops at once); return the undo.
        Not under DDP, where ranks could stop at different steps: there Ctrl-C ends the processes."""
        if self.ddp:
            return lambda: None

        def stop(signum, frame):
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        try:
            old = signal.signal(signal.SIGINT, stop)
        except ValueError:  # not the main thread
            return lambda: None
        return lambda: signal.signal(signal.SIGINT, old)

    def summary(self, losses: list, times: list) -> dict:
        """The run's record (configs, history, logged ``(step, loss)`` pairs, median step time), also
        written to ``out/log.json``; under DDP it says whether every rank ends with the same weights."""
        hit = next(
            (h for h in self.history if self.tc.target_loss is not None and h["val"] <= self.tc.target_loss), None
        )
        steady = sorted(times[10:] or times)  # leave out warm-up / compilation steps
        out = {
            "model_config": self.model_config,
            "train_config": asdict(self.tc),
            "device": describe(self.device),
            "world_size": self.world,
            "params": sum(p.numel() for p in self.model.parameters()),  # shared tensors once
            "steps": self.step,
            "interrupted": self.interrupted,
            "history": self.history,
            "train_losses": losses,
            "best_val": min((h["val"] for h in self.history), default=None),
            "final_val": self.history[-1]["val"] if self.history else None,
            "median_step_ms": 1000 * steady[len(steady) // 2] if steady else None,
            "target_loss": self.tc.target_loss,
            "target_reached_at": hit,
            "wall_s": time.time() - T_LAUNCH,
        }
        if self.ddp:  # parameters must be identical on every rank after DDP steps
            flat = torch.cat([p.detach().float().reshape(-1) for p in self.model.parameters()])
            ref = flat.clone()
            dist.broadcast(ref, 0)
            same = torch.tensor([float(torch.equal(flat, ref))], device=flat.device)
            dist.all_reduce(same, op=dist.ReduceOp.MIN)
            out["ranks_in_sync"] = bool(same.item() == 1.0)
        if self.master and self.tc.out:
            p = Path(self.tc.out) / "log.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(p, lambda f: f.write_text(json.dumps(out, indent=1)), "out")
        return out

    def close(self) -> None:
        """Tear DDP down in order. The DDP wrapper's reducer holds the process group and gloo's
        pending work (with tensors that refer back to Python); left to the interpreter's exit, the
        group's worker threads were destroyed while finalisation was under way and a rank aborted
        ("terminate called without an active exception"). So: drop the wrapper and collect it, wait
        for every rank, then destroy the group, all while the interpreter is whole."""
        if self.ddp and dist.is_initialized():
            self.fwd = self.model
            gc.collect()
            dist.barrier()  # no rank may tear down its sockets while another is still in a collective
            dist.destroy_process_group()

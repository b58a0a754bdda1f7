"""Train the chapter's GPT on tiny Shakespeare: ``python -m models.training --preset cpu``.

One configuration of the generic loop (:mod:`models.training.loop`): the presets (nanoGPT's
shakespeare_char), the character batch source, the cross-entropy loss, the memory estimate and the
command line, where every switch of :class:`GPTConfig` and every training setting is a flag.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields, replace

import torch

from models.data.chars import CharData
from models.gpt import CHOICES, GPT, GPTConfig
from models.training.loop import Diverged, TrainConfig, Trainer
from models.utils.cli import OneLineParser, finite_float, flag_of, guard, int_in, output_dir, text
from models.utils.device import pick_device

MODEL_PRESETS = {
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0),
}
TRAIN_PRESETS = {  # nanoGPT's shakespeare_char settings, and its README's CPU variant
    "gpu": dict(batch_size=64, max_iters=5000, lr_decay_iters=5000, eval_interval=250, eval_iters=200),
    "cpu": dict(batch_size=12, max_iters=2000, lr_decay_iters=2000, eval_interval=250, eval_iters=20),
}


@dataclass
class CharBatches:
    """The loop's batch source for characters: random blocks ``(x, y)`` of ``block_size`` characters,
    int64 of shape (B, T), ``y`` being ``x`` shifted by one; ValueError for a split other than train/val."""

    data: CharData
    block_size: int

    def to(self, device: torch.device) -> CharBatches:
        """The same source with the corpus (about 1 MB) on ``device``, so batches are cut there."""
        return CharBatches(self.data.to(device), self.block_size)

    def batch(self, split: str, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` blocks of ``split``, offsets drawn from ``gen``."""
        return self.data.batch(split, batch_size, self.block_size, gen)


def char_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the next character, in nats per character, averaged over the batch's B·T
    predictions (computed by GPT's forward from its logits and the targets)."""
    x, y = batch
    return model(x, y)[1]


def train_bytes(mc: GPTConfig, batch_size: int) -> int:
    """A lower estimate of the bytes one training step needs: float32 weights, gradients and AdamW's
    two moments (16 bytes a parameter), plus activations (about 8 numbers per layer and position
    of the width, the logits and their gradient, and the full score matrices of manual attention)."""
    d, L, T, V = mc.n_embd, mc.n_layer, mc.block_size, mc.vocab_size
    hidden = mc.mlp_hidden or 4 * d
    params = V * d + T * d + L * (2 * d * d + 2 * d * mc.head_dim * mc.n_kv_head + 2 * d * hidden)
    acts = batch_size * T * (8 * L * d + 2 * V) + (batch_size * mc.n_head * T * T * L if mc.attn == "manual" else 0)
    return 16 * params + 4 * acts


def make_run(mc: GPTConfig, tc: TrainConfig, data: CharData | None = None) -> Trainer:
    """A :class:`Trainer` of ``GPT(mc)`` on ``data`` (default: tiny Shakespeare, or the file ``tc.data``).
    ValueError when the data's vocabulary is not ``mc.vocab_size``, a split is shorter than a block,
    or the device lacks the memory :func:`train_bytes` estimates."""
    data = data or CharData.load(tc.data)
    if data.vocab_size != mc.vocab_size:
        raise ValueError(f"vocab_size: data has {data.vocab_size} characters, model {mc.vocab_size}")
    data.check_block(mc.block_size)
    sizes = dict(n_embd=mc.n_embd, n_layer=mc.n_layer, block_size=mc.block_size, batch_size=tc.batch_size)
    sizes |= {"mlp_hidden": mc.mlp_hidden} if mc.mlp_hidden else {}
    what = ", ".join(f"{flag_of(k)} {v:,}" for k, v in sizes.items())
    memory = (what, train_bytes(mc, tc.batch_size))
    return Trainer(lambda: GPT(mc), CharBatches(data, mc.block_size), char_loss, tc, asdict(mc), memory)


# -- command line ----------------------------------------------------------------------
FLAGS = {f.name: flag_of(f.name) for f in (*fields(GPTConfig), *fields(TrainConfig))} | {"vocab_size": "--data"}


def build_parser(
    prog: str = "python -m models.training", description: str | None = None, skip: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    """The trainer's parser: ``--preset`` and one flag per field of GPTConfig and TrainConfig, each with its
    one-line help (the field's ``metadata["help"]``) and default; ``skip`` names fields offered no flag
    (argparse then refuses them as unrecognized, exit 2)."""
    p = OneLineParser(prog=prog, description=description or __doc__.split("\n\n")[0])
    p.add_argument(
        "--preset", choices=sorted(MODEL_PRESETS), default="cpu", help="model and training sizes; default: cpu"
    )
    m = p.add_argument_group("model (GPTConfig)")
    for f in fields(GPTConfig):
        if f.name != "vocab_size" and f.name not in skip:  # vocab_size: the data's
            _add_flag(m, f)
    t = p.add_argument_group("training (TrainConfig)")
    for f in fields(TrainConfig):
        if f.name not in skip:
            _add_flag(t, f)
    return p


def default_text(f) -> str:
    """A field's default in words: the presets' values where they set it, else ``metadata["default"]``,
    else the dataclass default (``on``/``off`` for a switch)."""
    presets = MODEL_PRESETS if f.name in MODEL_PRESETS["cpu"] else TRAIN_PRESETS
    if f.name in presets["cpu"]:
        return "the preset's (" + ", ".join(f"{k}: {presets[k][f.name]}" for k in sorted(presets)) + ")"
    if "default" in f.metadata:
        return f.metadata["default"]
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return str(f.default)


def _add_flag(group, f) -> None:
    """One flag per config field, with its help and default; types refuse non-numbers and non-finite
    numbers at parse time, the configs check ranges when they are built."""
    kind = str(f.type)
    desc = f"{f.metadata['help']}; default: {default_text(f)}".replace("%", "%%")
    if kind.startswith("bool"):
        group.add_argument(flag_of(f.name), action=argparse.BooleanOptionalAction, default=None, help=desc)
    elif f.name in CHOICES:
        group.add_argument(flag_of(f.name), choices=CHOICES[f.name], default=None, help=desc)
    elif f.name == "out":
        group.add_argument(flag_of(f.name), type=output_dir(), default=None, metavar="DIR", help=desc)
    elif kind.startswith("int"):
        group.add_argument(flag_of(f.name), type=int_in(), default=None, help=desc)
    elif kind.startswith("float"):
        group.add_argument(flag_of(f.name), type=finite_float(), default=None, help=desc)
    else:
        group.add_argument(flag_of(f.name), type=text(), default=None, help=desc)


def configs_from_args(args, vocab_size: int = 65) -> tuple[GPTConfig, TrainConfig]:
    """The preset's configs with the flags given on top; ValueError (naming the field) for a bad value."""
    mkw = dict(MODEL_PRESETS[args.preset], vocab_size=vocab_size)
    mkw |= {f.name: getattr(args, f.name) for f in fields(GPTConfig) if getattr(args, f.name, None) is not None}
    tkw = dict(TRAIN_PRESETS[args.preset])
    tkw |= {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    return GPTConfig(**mkw), TrainConfig(**tkw)


def main(argv: list[str] | None = None) -> int:
    """Train from the command line; exit 0, 1 (diverged), 2 (bad input, one line) or 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    return guard(lambda: _train(args), FLAGS)


def _train(args) -> int:
    mc, tc = configs_from_args(args)  # validate the flags before reading any data
    pick_device(tc.device)
    data = CharData.load(tc.data)
    run = make_run(replace(mc, vocab_size=data.vocab_size), tc, data)
    try:
        s = run.fit()
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        run.close()
    if s["interrupted"]:
        where = f"; checkpoint in {tc.out} (continue with --resume)" if tc.out else ""
        print(f"interrupted at step {s['steps']}{where}", file=sys.stderr)
        return 130
    if run.master:
        keys = ("device", "params", "steps", "best_val", "final_val", "median_step_ms", "wall_s")
        print(json.dumps({k: s[k] for k in keys} | {"target_reached_at": s["target_reached_at"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

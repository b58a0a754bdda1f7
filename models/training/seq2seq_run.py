"""``python -m models.training.seq2seq_run``: exercise 13.1's experiment. GRU encoder-decoders
(:mod:`models.seq2seq`) with and without additive attention learn to reverse (or copy) random token
sequences of lengths 1..L; each is then scored per length by greedy decoding on fresh sequences.

The model without attention must carry the whole source in its final state (h floats); the model
with attention reads every annotation again at each step. Sequence accuracy (all n tokens right) and
token accuracy against length show where the fixed state runs out.

Writes to ``--out`` (whole, or not at all): ``results.json``, ``accuracy.png`` (sequence and token
accuracy against length, each hidden size, with and without attention) and ``attention.png`` (the
attention weights of one test example).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path

import torch

from models.seq2seq import Seq2Seq, Seq2SeqConfig, loss

TASKS = ("reverse", "copy")
PRESETS = {
    # 2 busy CPU cores, one thread: about 6 minutes (4 models of 2,000 steps; h 64 with attention measured at
    # 55 ms a step, reaching sequence accuracy 0.93 at length 24 after 1,500 steps), 400 test sequences per length
    "cpu": dict(vocab=10, max_len=24, hiddens=(32, 64), embed=32, steps=2000, batch=64, lr=5e-3, eval_n=400),
    # one GPU: not measured; longer sources, larger states, 2,000 test sequences per length
    "gpu": dict(vocab=10, max_len=48, hiddens=(64, 128, 256), embed=64, steps=4000, batch=256, lr=3e-3, eval_n=2000),
}
MAX_LEN, MAX_HIDDEN, MAX_STEPS = 512, 4096, 1_000_000  # bounds of a run's sizes (memory: B T h floats per step)


def sequences(lengths: torch.Tensor, vocab: int, task: str, gen: torch.Generator):
    """Random sources and their targets for the given ``lengths`` (B,): x (B, T) uniform ids in [0, vocab),
    zero past each length, and y (B, T): x's first n tokens reversed (``reverse``) or as they are
    (``copy``), -100 past the length; T = max(lengths)."""
    B, T = len(lengths), int(lengths.max())
    pos = torch.arange(T)[None, :]
    real = pos < lengths[:, None]
    x = torch.randint(vocab, (B, T), generator=gen) * real
    src = (lengths[:, None] - 1 - pos).clamp(min=0) if task == "reverse" else pos.expand(B, T)
    y = x.gather(1, src).masked_fill(~real, -100)
    return x, y


class Task:
    """The batch source for :class:`models.training.loop.Trainer`: every split draws fresh sequences of
    lengths uniform in [1, max_len] (2 * 10^24 sources at V = 10, n = 24: nothing repeats)."""

    def __init__(self, vocab: int, max_len: int, task: str = "reverse"):
        if task not in TASKS:
            raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {task!r}")
        if max_len < 1:
            raise ValueError(f"max_len: must be at least 1, got {max_len}")
        self.vocab, self.max_len, self.task, self.device = vocab, max_len, task, torch.device("cpu")

    def to(self, device):
        self.device = torch.device(device)
        return self

    def batch(self, split: str, batch_size: int, gen: torch.Generator):
        """(x, lengths, y) on the source's device; see :func:`sequences`."""
        if split not in ("train", "val"):
            raise ValueError(f"split: unknown {split!r}")
        lengths = torch.randint(1, self.max_len + 1, (batch_size,), generator=gen)
        x, y = sequences(lengths, self.vocab, self.task, gen)
        return x.to(self.device), lengths.to(self.device), y.to(self.device)


def train(cfg: Seq2SeqConfig, task: Task, steps: int, batch: int, lr: float, seed: int, device=None, say=None):
    """``cfg``'s model trained ``steps`` AdamW steps (warmup, cosine decay, clipping 1) by the project's
    Trainer, quietly unless ``say`` is given; returns (model in eval mode, logged (step, loss) pairs)."""
    from models.training.loop import TrainConfig, Trainer

    tc = TrainConfig(
        batch_size=batch, max_iters=steps, lr=lr, min_lr=lr / 10, warmup_iters=max(1, steps // 20),
        lr_decay_iters=steps, eval_interval=steps, eval_iters=1, eval_train=False, log_interval=max(1, steps // 50),
        seed=seed, device=device, dtype="float32", progress=say is not None and sys.stderr.isatty(),
        weight_decay=0.0,
    )  # fmt: skip
    trainer = Trainer(lambda: Seq2Seq(cfg), task, loss, tc, model_config=vars(cfg).copy())
    quiet = contextlib.redirect_stderr(io.StringIO()) if say is None else contextlib.nullcontext()
    with quiet:  # without ``say`` (a check), the loop's evaluation line is not printed
        summary = trainer.fit()
    return trainer.model.eval(), summary["train_losses"]


@torch.no_grad()
def accuracy(model: Seq2Seq, task: Task, length: int, n: int, gen: torch.Generator, uniform: bool = False) -> dict:
    """Greedy decoding of ``n`` fresh sources of one ``length``: sequences entirely right and tokens right
    (counts), and the sum over sequences of the squared fraction of tokens right. ``uniform`` swaps the
    model's attention for the uniform average at test time (a control)."""
    dev = next(model.parameters()).device
    lengths = torch.full((n,), length)
    x, y = sequences(lengths, task.vocab, task.task, gen)
    keep = model.cfg.attention
    model.cfg.attention = "uniform" if uniform else keep
    try:
        out, _ = model.generate(x.to(dev), lengths.to(dev), length)
    finally:
        model.cfg.attention = keep
    right = out.cpu() == y
    tok = right.double().mean(1)  # per sequence: the fraction of its tokens right
    return {
        "length": length, "n": n, "seq_right": int(right.all(1).sum()), "tok_right": int(right.sum()),
        "tok_sq": float((tok * tok).sum()),  # for the spread of the per-sequence token accuracy
    }  # fmt: skip


def example(model: Seq2Seq, task: Task, length: int, seed: int) -> dict:
    """One source of ``length``, its target, the greedy output and the attention weights (length x length)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([length])
    x, y = sequences(lengths, task.vocab, task.task, gen)
    dev = next(model.parameters()).device
    out, alpha = model.generate(x.to(dev), lengths.to(dev), length)
    return {"source": x[0].tolist(), "target": y[0].tolist(), "output": out[0].tolist(), "alpha": alpha[0].tolist()}


def check_sizes(P: dict) -> None:
    """ValueError naming the first size out of bounds."""
    for k, lo, hi in (("vocab", 2, 100_000), ("max_len", 1, MAX_LEN), ("embed", 1, MAX_HIDDEN), ("batch", 1, 65_536),
                      ("steps", 1, MAX_STEPS), ("eval_n", 2, 1_000_000)):  # fmt: skip
        v = P[k]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{k}: must be an integer in [{lo}, {hi:,}], got {v!r}")
    if not P["hiddens"] or any(not isinstance(h, int) or not 1 <= h <= MAX_HIDDEN for h in P["hiddens"]):
        raise ValueError(f"hiddens: must be integers in [1, {MAX_HIDDEN}], got {P['hiddens']!r}")
    if not (isinstance(P["lr"], float) and 0 < P["lr"] < 1):
        raise ValueError(f"lr: must lie in (0, 1), got {P['lr']!r}")


def run(preset: str = "cpu", out=None, device=None, task: str = "reverse", seed: int = 0, say=print, **sizes) -> dict:
    """Train and score, per hidden size, the model with additive attention and without; write ``out`` when
    given. ``sizes`` override the preset's entries. ValueError naming ``preset``, ``task``, ``out`` or a
    size, before any training."""
    from models.utils.device import one_thread, pick_device
    from models.utils.files import check_replaceable, replace_dir
    from models.utils.presets import resolve

    P = resolve(PRESETS, preset, sizes)
    check_sizes(P)
    src = Task(P["vocab"], P["max_len"], task)
    if out is not None:
        check_replaceable(out, "out")
    dev = pick_device(device)
    t0 = time.time()
    with one_thread():  # on the CPU, OpenMP threads only contend over these small GRU steps
        results = _run(P, src, dev, preset, task, seed, say)
    results["seconds"] = time.time() - t0
    if out is not None:

        def build(tmp: Path) -> None:
            from models.utils.files import save_figure, write_text

            write_text(tmp / "results.json", json.dumps(results, indent=1), "out")
            save_figure(accuracy_figure(results), tmp / "accuracy.png", "out")
            save_figure(attention_figure(results["example"]), tmp / "attention.png", "out")

        replace_dir(out, build, "out")
        say(f"[seq2seq] wrote {out} ({results['seconds']:.0f} s)")
    return results


def _run(P: dict, src: Task, dev, preset: str, task: str, seed: int, say) -> dict:
    """The body of :func:`run`: train and score every model; the results dict (without ``seconds``)."""
    from models.utils.device import describe

    models, curves, acc = {}, {}, []
    for h in P["hiddens"]:
        for attn in ("additive", "none"):
            name = f"h={h}, {'attention' if attn == 'additive' else 'no attention'}"
            say(f"[seq2seq] {name}: {P['steps']} steps, batch {P['batch']}, lengths 1..{P['max_len']}")
            cfg = Seq2SeqConfig(P["vocab"], h, P["embed"], h, attn)
            model, losses = train(cfg, src, P["steps"], P["batch"], P["lr"], seed, str(dev), say)
            models[name], curves[name] = model, losses
            gen = torch.Generator().manual_seed(seed + 1)  # the same test sequences for every model
            rows = [accuracy(model, src, n, P["eval_n"], gen) for n in range(1, P["max_len"] + 1)]
            acc += [{"model": name, "hidden": h, "attention": attn} | r for r in rows]
            say(f"[seq2seq] {name}: sequence accuracy {rows[0]['seq_right'] / P['eval_n']:.3f} at length 1, "
                f"{rows[-1]['seq_right'] / P['eval_n']:.3f} at length {P['max_len']}")  # fmt: skip
    h_max = max(P["hiddens"])
    shown = example(models[f"h={h_max}, attention"], src, P["max_len"], seed + 2)
    return {
        "preset": preset, "sizes": P, "task": task, "seed": seed, "device": describe(dev), "accuracy": acc,
        "losses": curves, "example": shown | {"model": f"h={h_max}"},
        "capacity": {"bits_at_max_len": P["max_len"] * math.log2(P["vocab"]), "state_floats": list(P["hiddens"])},
    }  # fmt: skip


def curves_of(results: dict) -> dict:
    """Per model name: lengths, sequence accuracies and token accuracies (lists)."""
    out: dict = {}
    for r in results["accuracy"]:
        c = out.setdefault(r["model"], {"length": [], "seq": [], "tok": [], "attention": r["attention"]})
        c["length"].append(r["length"])
        c["seq"].append(r["seq_right"] / r["n"])
        c["tok"].append(r["tok_right"] / (r["n"] * r["length"]))
    return out


def accuracy_figure(results: dict):
    """Sequence (left) and token (right) accuracy against length; solid with attention, dashed without."""
    from proofs.kit import plotting

    fig, axes = plotting.subplots(2, width=11, height=4.2)
    names = sorted(curves_of(results).items(), key=lambda kv: kv[0])
    colours = {}
    for name, c in names:
        h = name.split(",")[0]
        colours.setdefault(h, f"C{len(colours)}")
        style = "-" if c["attention"] == "additive" else "--"
        for ax, key in zip(axes, ("seq", "tok")):
            ax.plot(c["length"], c[key], style, color=colours[h], marker=".", label=name)
    P = results["sizes"]
    for ax, what in zip(axes, ("sequence accuracy (all tokens right)", "token accuracy")):
        ax.set(xlabel="source length $n$", ylabel=what, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{results['task']} task, $V = {P['vocab']}$, trained on lengths 1 to {P['max_len']}, "
        f"{P['eval_n']} test sequences per length ({results['device']})"
    )
    return fig


def attention_figure(ex: dict):
    """The attention weights alpha_ij of one example: output step i against source position j."""
    from proofs.kit import plotting

    fig, ax = plotting.subplots(width=5.6, height=5.0)
    im = ax.imshow(ex["alpha"], cmap="viridis", vmin=0, vmax=1)
    n = len(ex["source"])
    ax.set_xticks(range(n), [str(t) for t in ex["source"]], fontsize=7)
    ax.set_yticks(range(n), [str(t) for t in ex["output"]], fontsize=7)
    ax.set(xlabel="source token (position 1 to n)", ylabel="output token (step 1 to n)")
    right = sum(a == b for a, b in zip(ex["output"], ex["target"]))
    ax.set_title(f"attention weights, {ex['model']}: {right} of {n} tokens right")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def main(argv=None) -> int:
    """The command line; bad input exits 2 with one line naming the flag."""
    from models.utils.cli import OneLineParser, guard, output_dir, positive_int, seed_int

    p = OneLineParser(prog="python -m models.training.seq2seq_run", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="sizes of the run (default cpu)")
    p.add_argument("--out", type=output_dir(), required=True, help="folder to write (whole, or not at all)")
    p.add_argument("--task", choices=TASKS, default="reverse", help="reverse (default) or copy the source")
    p.add_argument("--device", default=None, help="cpu or cuda (default: $PROOFS_DEVICE, else cuda if present)")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of weights, batches and test sequences")
    p.add_argument("--steps", type=positive_int(MAX_STEPS, "time"), default=None, help="override the preset's steps")
    a = p.parse_args(argv)
    extra = {} if a.steps is None else {"steps": a.steps}
    flags = {k: f"--{k}" for k in ("preset", "out", "task", "device", "seed", "steps")}
    return guard(lambda: run(a.preset, a.out, a.device, a.task, a.seed, **extra) and 0, flags)


if __name__ == "__main__":
    raise SystemExit(main())

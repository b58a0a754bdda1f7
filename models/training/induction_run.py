"""``python -m models.training.induction_run``: exercise 13.8's discrete demonstration, induction heads (Olsson
et al. 2022, "In-context Learning and Induction Heads"; Elhage et al. 2021, "A Mathematical Framework for
Transformer Circuits"), trained and measured.

The task: a random sequence of ``L`` tokens followed by the same ``L`` tokens again (``[A][B] ... [A] -> [B]``),
with ``L`` drawn afresh for every sequence between ``min_len`` and ``max_len`` and the rest of the context filled
with fresh random tokens. Nothing about the second copy can be learned into the weights: the tokens are new in
every sequence, so predicting it means reading the prompt. An *induction head* does it in two steps: a first
attention layer copies each token's predecessor into its position (a previous-token head), and a second layer's
query, the current token ``[A]``, finds the earlier position whose predecessor was ``[A]`` and copies the token
there, ``[B]``. That takes two attention layers composed; a one-layer attention-only model cannot compose them
and, because ``L`` varies, cannot find the copy by position either: the best it can do is favour the tokens
already seen (about ``log L`` nats instead of ``log V``).

Both models are attention-only GPTs (``GPTConfig(mlp="none")``, rotary positions, so a previous-token head is
the same at every position), trained by :class:`models.training.loop.Trainer` on next-token prediction over
whole sequences. Then, frozen, they are evaluated on new sequences (a seed the training never used): the
cross-entropy of each sequence's repeated half (the targets ``x[t + 1]`` for ``L <= t <= 2L - 2``, which the
first copy determines), and, as the control, the same positions of sequences whose second half is fresh random
tokens (nothing to copy). The claim: on the repeated half the two-layer model's loss is at least ``MARGIN`` nats
below the one-layer model's, paired over the same sequences (one-sided z-test at false-alarm :data:`RATE`); the
control: the same test on the sequences without a repeat is rejected.

Writes to ``--out`` (whole, or not at all): ``results.json`` and ``induction.png`` (both models' validation loss
over all positions during training, with their final loss on the repeated half, and an attention map of the
two-layer model's second layer, showing the induction stripe).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

PRESETS = {
    # 2 CPU cores: 46 and 79 ms a step (1 and 2 layers) on one thread of busy cores, 9.7 minutes in all (measured)
    "cpu": dict(vocab=32, context=32, min_len=4, max_len=16, n_embd=64, n_head=2, batch=64, iters=4000, lr=3e-3,
                eval_interval=500, eval_iters=8, eval_sequences=2000),
    # one GPU (not measured yet): a larger vocabulary and longer sequences
    "gpu": dict(vocab=256, context=128, min_len=8, max_len=64, n_embd=256, n_head=4, batch=256, iters=8000,
                lr=1e-3, eval_interval=500, eval_iters=20, eval_sequences=20000),
}  # fmt: skip
RATE = 1e-6  # false-alarm probability of the paired one-sided z-tests
MARGIN = 1.0  # nats: the two-layer model puts at least e times the one-layer model's probability on the copy
EVAL_SEED = 2**40 + 13  # the evaluation sequences' generator: never one the training draws from
LAYERS = (1, 2)


def repeated_sequences(n: int, P: dict, gen: torch.Generator, repeat: bool = True):
    """``n`` sequences of ``P["context"] + 1`` tokens (inputs and the next-token targets) with their lengths
    ``L`` (n,): uniform random tokens below ``P["vocab"]``, positions ``[L, 2L)`` a copy of ``[0, L)`` when
    ``repeat`` (else left fresh: the control). Drawn on the CPU from ``gen``."""
    T = P["context"] + 1
    x = torch.randint(P["vocab"], (n, T), generator=gen)
    lengths = torch.randint(P["min_len"], P["max_len"] + 1, (n,), generator=gen)
    if repeat:
        t = torch.arange(T)
        in_copy = (t >= lengths[:, None]) & (t < 2 * lengths[:, None])  # (n, T)
        source = torch.where(in_copy, t - lengths[:, None], t)  # (n, T): where each token comes from
        x = torch.gather(x, 1, source)
    return x, lengths


class RepeatBatches:
    """The batch source of :class:`models.training.loop.Trainer`: fresh repeated sequences for ``train`` and
    ``val`` alike (the task is a distribution); batches are token tensors (B, context + 1)."""

    eval_splits = ("val",)

    def __init__(self, P: dict, device=None):
        self.P, self.device = P, device

    def to(self, device) -> RepeatBatches:
        """This source drawing onto ``device``."""
        return RepeatBatches(self.P, device)

    def batch(self, split: str, batch_size: int, gen: torch.Generator):
        """``batch_size`` sequences (B, context + 1); ValueError for a split other than train or val."""
        if split not in ("train", "val"):
            raise ValueError(f"split: unknown {split!r}; choose from train, val")
        return repeated_sequences(batch_size, self.P, gen)[0].to(self.device)


def lm_loss(model, x: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy (nats per token) over every position of ``x`` (B, context + 1)."""
    return model(x[:, :-1], x[:, 1:])[1]


@torch.no_grad()
def copy_losses(model, x: torch.Tensor, lengths: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Per sequence, the mean cross-entropy (nats) of the targets ``x[t + 1]`` for ``L <= t <= 2L - 2``: the
    second copy after its first token (with a repeat, each is the token after the previous occurrence of
    ``x[t]``). ``x`` (N, context + 1), ``lengths`` (N,) -> (N,) float64 on the CPU."""
    model.eval()
    out = []
    dev = next(model.parameters()).device
    for i in range(0, len(x), batch):
        xb, lb = x[i : i + batch].to(dev), lengths[i : i + batch].to(dev)
        logits, _ = model(xb[:, :-1])  # (b, T, V)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), xb[:, 1:], reduction="none")  # (b, T)
        t = torch.arange(ce.shape[1], device=dev)
        m = ((t >= lb[:, None]) & (t <= 2 * lb[:, None] - 2)).to(ce.dtype)
        out.append(((ce * m).sum(1) / m.sum(1)).double().cpu())
    return torch.cat(out)


def model_config(P: dict, n_layer: int):
    """The attention-only GPT of preset sizes ``P`` with ``n_layer`` layers (rotary positions, no dropout)."""
    from models.gpt import GPTConfig

    return GPTConfig(
        block_size=P["context"], vocab_size=P["vocab"], n_layer=n_layer, n_head=P["n_head"], n_embd=P["n_embd"],
        mlp="none", pos="rope", dropout=0.0,
    )  # fmt: skip


def train(P: dict, n_layer: int, seed: int = 0, device=None, progress: bool | None = None):
    """Train the ``n_layer`` attention-only model for ``P["iters"]`` AdamW steps (warmup over a tenth, cosine
    decay to lr/10, no weight decay, clip 1) with the shared loop; returns ``(model, trainer summary)``."""
    from models.gpt import GPT
    from models.training.loop import TrainConfig, Trainer

    cfg = model_config(P, n_layer)
    tc = TrainConfig(
        batch_size=P["batch"], max_iters=P["iters"], lr=P["lr"], min_lr=P["lr"] / 10,
        warmup_iters=P["iters"] // 10, lr_decay_iters=P["iters"], eval_interval=P["eval_interval"],
        eval_iters=P["eval_iters"], eval_train=False, weight_decay=0.0, seed=seed, device=device,
        log_interval=max(1, P["iters"] // 100), progress=progress,
    )  # fmt: skip
    trainer = Trainer(lambda: GPT(cfg), RepeatBatches(P), lm_loss, tc, model_config={"n_layer": n_layer})
    summary = trainer.fit()
    return trainer.model, summary


def check_sizes(P: dict) -> None:
    """ValueError naming the first bad size: positive integers (lr a positive float), ``n_head`` dividing
    ``n_embd`` into an even head size (rotary), ``2 <= min_len <= max_len`` and ``2 max_len <= context``."""
    from models.utils.presets import check_positive

    check_positive(P)
    if P["n_embd"] % P["n_head"] or (P["n_embd"] // P["n_head"]) % 2:
        raise ValueError(f"n_head: must divide n_embd={P['n_embd']} into an even head size, got {P['n_head']}")
    if not 2 <= P["min_len"] <= P["max_len"]:
        raise ValueError(f"min_len: must lie in [2, max_len={P['max_len']}], got {P['min_len']}")
    if 2 * P["max_len"] > P["context"]:
        raise ValueError(f"max_len: two copies must fit the context {P['context']}, got {P['max_len']}")


def paired_gap(first: torch.Tensor, second: torch.Tensor, label: str, margin: float = MARGIN, rate: float = RATE):
    """One-sided z-test that ``first`` is at least ``margin`` below ``second`` on average, paired per sequence
    (:func:`numeric.stats.one_sided` on the mean of ``first - second``)."""
    from numeric.stats import Estimate, one_sided

    return one_sided(Estimate.of(first - second), "<", -margin, label, rate)


def evaluate(models: dict, P: dict) -> dict:
    """Per-sequence copy losses of every model on ``P["eval_sequences"]`` new sequences with a repeat and on as
    many without (seed :data:`EVAL_SEED`): ``{"repeat": {n_layer: (N,)}, "no repeat": {...}}``."""
    out = {}
    for kind, repeat in (("repeat", True), ("no repeat", False)):
        x, lengths = repeated_sequences(P["eval_sequences"], P, torch.Generator().manual_seed(EVAL_SEED), repeat)
        out[kind] = {n: copy_losses(m, x, lengths) for n, m in models.items()}
    return out


def tests(losses: dict) -> list:
    """The claim (two layers at least :data:`MARGIN` below one layer on the repeated half) and its control
    (the same test where nothing repeats)."""
    return [
        paired_gap(losses["repeat"][2], losses["repeat"][1],
                   f"2 layers at least {MARGIN:g} nat below 1 layer on the repeated half"),
        paired_gap(losses["no repeat"][2], losses["no repeat"][1],
                   f"2 layers at least {MARGIN:g} nat below 1 layer where nothing repeats (control)"),
    ]  # fmt: skip


@torch.no_grad()
def attention_map(model, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The attention probabilities (n_head, T, T) of block ``layer`` for one sequence ``x`` (T,), recomputed
    from the block's own weights (pre-norm input, rotary q and k, causal softmax(q k^T / sqrt(d_k)))."""
    from models.positional import apply_rope

    model.eval()
    cfg = model.config
    seen = {}
    block = model.h[layer]
    hook = block.ln_1.register_forward_hook(lambda mod, inp, out: seen.setdefault("h", out))
    try:
        model(x[None].to(next(model.parameters()).device))
    finally:
        hook.remove()
    T, hd = x.shape[0], cfg.head_dim
    q, k, _ = block.attn.c_attn(seen["h"][0]).split([cfg.n_embd, cfg.n_embd, cfg.n_embd], dim=-1)
    q, k = (t.view(T, cfg.n_head, hd).transpose(0, 1) for t in (q, k))  # (nh, T, hd)
    pos = torch.arange(T, device=q.device)
    q, k = apply_rope(q, pos, cfg.rope_base), apply_rope(k, pos, cfg.rope_base)
    s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=s.device).tril(), float("-inf"))
    return s.softmax(-1).cpu()


def run(preset: str = "cpu", out: str | Path = "induction_results", device=None, seed: int = 0, say=print,
        **sizes) -> dict:  # fmt: skip
    """Train both models, evaluate and write ``out`` (see the module docstring); returns the results dict.
    ``sizes`` override the preset's entries. ValueError naming ``preset``, ``out`` or a size, before any work."""
    from models.utils.device import describe, pick_device
    from models.utils.files import check_replaceable, replace_dir
    from models.utils.presets import resolve

    P = resolve(PRESETS, preset, sizes)
    check_sizes(P)
    check_replaceable(out, "out")
    dev = pick_device(device)
    t0 = time.time()
    models, summaries = {}, {}
    for n in LAYERS:
        say(f"[induction] {preset} preset on {describe(dev)}: {n}-layer attention-only model, {P['iters']} steps")
        models[n], summaries[n] = train(P, n, seed, str(dev))
    losses = evaluate(models, P)
    verdicts = tests(losses)
    x, lengths = repeated_sequences(1, P, torch.Generator().manual_seed(EVAL_SEED + 1))
    attn = attention_map(models[2], x[0, :-1], 1)
    results = {
        "preset": preset, "device": describe(dev), "seed": seed, "settings": P, "eval_seed": EVAL_SEED,
        "log_vocab": math.log(P["vocab"]),
        "copy_loss": {kind: {str(n): {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(len(v)))}
                             for n, v in per.items()} for kind, per in losses.items()},
        "tests": [t.to_dict() for t in verdicts],
        "history": {str(n): s["history"] for n, s in summaries.items()},
        "params": {str(n): s["params"] for n, s in summaries.items()},
        "median_step_ms": {str(n): s["median_step_ms"] for n, s in summaries.items()},
        "example": {"tokens": x[0, :-1].tolist(), "length": int(lengths[0]), "attention": attn.tolist()},
        "seconds": time.time() - t0,
    }  # fmt: skip

    def build(tmp: Path) -> None:
        (tmp / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        fig = draw(results)
        fig.savefig(tmp / "induction.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)

    path = replace_dir(out, build, "out")
    for kind, per in results["copy_loss"].items():
        say(f"[induction] {kind}: " + ", ".join(f"{n} layer(s) {v['mean']:.3f} ± {v['se']:.3f} nats"
                                                for n, v in per.items()))  # fmt: skip
    for t in verdicts:
        say(f"[induction] {t}")
    say(f"[induction] written to {path} in {results['seconds']:.0f} s")
    return results


def draw(results: dict):
    """Validation loss of both models against step (left) and the second layer's attention on one repeated
    sequence (right, the head that attends most to the token after the previous occurrence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for n, hist in results["history"].items():
        a.plot([h["step"] for h in hist], [h["val"] for h in hist], "o-", ms=3, label=f"{n} layer(s), all positions")
    for n, v in results["copy_loss"]["repeat"].items():
        a.axhline(v["mean"], ls="--", lw=1, color=f"C{int(n) - 1}", label=f"{n} layer(s), repeated half (final)")
    a.axhline(results["log_vocab"], color="C7", ls=":", label=r"uniform guess $\log V$")
    a.set(xlabel="step", ylabel="cross-entropy (nats per token)", ylim=(0, None),
          title=f"Exercise 13.8: induction heads ({results['preset']})")  # fmt: skip
    a.legend(fontsize=7)
    ex = results["example"]
    attn = torch.tensor(ex["attention"])  # (nh, T, T)
    L, T = ex["length"], attn.shape[-1]
    t = torch.arange(L, min(2 * L - 1, T))
    score = attn[:, t, t - L + 1].mean(-1)  # weight on the token after the previous occurrence of x[t]
    head = int(score.argmax())
    b.imshow(attn[head].numpy(), cmap="viridis", vmin=0, vmax=1)
    b.set(xlabel="key position", ylabel="query position",
          title=f"2 layers: layer 2, head {head}, on a sequence with L = {L}\n"
          "induction stripe at key = query - L + 1 (the token after the previous occurrence)")  # fmt: skip
    return fig


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0, 2 on bad input (one line naming the flag), 130 on Ctrl-C."""
    from models.utils.cli import preset_run_main

    prog = "python -m models.training.induction_run"
    return preset_run_main(argv, prog=prog, doc=__doc__, presets=PRESETS, run=run, out="induction_results")


if __name__ == "__main__":
    raise SystemExit(main())

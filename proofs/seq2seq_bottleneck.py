r"""Exercise 13.1: a fixed-size encoder state is a bottleneck, and attention removes it.

An early seq2seq model (Sutskever et al. 2014, Cho et al. 2014) reads the whole source into one
encoder state of $h$ numbers and the decoder sees nothing else. That state has the same size for a
source of 3 tokens and of 300, so the longer the source, the more it must squeeze into the same
space, and the first thing lost is detail, such as which token came where. Attention (Bahdanau et
al. 2015) keeps every encoder state $h_1, \dots, h_n$ and lets each decoder step take its own
weighted average of them, $c_i = \sum_j \alpha_{ij} h_j$: what the decoder can read grows with the
source, and each output can look straight at the source tokens it needs.

The counting argument in numbers: $n$ tokens over a vocabulary of $V$ carry $n \log_2 V$ bits, a
state of $h$ floats of $b$ bits takes at most $2^{bh}$ values, so a decoder that sees only that
state gets at most a fraction $2^{bh - n \log_2 V}$ of uniformly random sources entirely right,
which falls to 0 as $n$ grows past $bh / \log_2 V$. With attention the decoder reads $nh$ floats,
and the ratio of capacity to information, $bh / \log_2 V$, no longer depends on $n$. (The bound is
loose: a trained GRU keeps far fewer usable bits per float than $b = 32$, so the fall-off comes much
sooner; the experiment measures where.)

The check trains two GRU encoder-decoders (``models.seq2seq``) with the project's Trainer, the same
seed, sizes and batches, one with additive attention and one without, to reverse random sequences
of lengths 1 to ``--length``, then decodes ``samples`` fresh sequences of each length greedily. At
the longest length attention's token accuracy beats no attention's, and at half that length its
sequence accuracy does, by one-sided z-tests at false-alarm rate $10^{-6}$; the attention model also
beats itself with its learned weights replaced by the uniform average. Controls, which the same
tests reject: "attention beats no attention at length 1" (both are perfect there: the gap comes with
length) and "attention beats no attention after a too-short run of 3 steps". The full experiment
(``python -m models.training.seq2seq_run --preset cpu``) is read from ``docs/experiments/seq2seq``
when it is there.
"""

from __future__ import annotations

import math
from pathlib import Path

import sympy as sp

from derive.engine import Derivation
from models.utils.files import read_json
from numeric.check import CheckResult
from numeric.stats import Estimate, one_sided
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.1"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Without attention the decoder must read $n \log_2 V$ bits from $h$ floats and its accuracy falls with "
    "the source's length; with attention it reads every encoder state and does better on long sources."
)
SAVED = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "seq2seq" / "results.json"
RATE = 1e-6  # false-alarm rate of each one-sided z-test
DEFAULT_SAMPLES = 500  # fresh test sequences per length and model
MAX_SAMPLES = 200_000
MIN_SAMPLES = 30  # per length: a standard error over sequences, and a proportion test that is not degenerate
MIN_SAMPLES_WHY = "the z-tests need a standard error over at least 30 test sequences per length"
SAMPLES_WHY = "time and memory of greedy decoding: about 40 bytes and 20 microseconds per sequence and length"
VOCAB, BATCH, LR, SHORT = 16, 32, 2e-2, 3  # the small task; SHORT: steps of the too-short control run
FLOAT_BITS = 32
# time of one training step of both models (batch 32, one thread), measured on 2 busy cores:
# 18 ms at h 16, n 8; 70 ms at h 64, n 24 (batch 64). So about 2e-3 n (1 + h/128) seconds.
MAX_SECONDS = 900
OPTIONS = [
    Option("--steps", int, 200, "AdamW steps of each model", lo=SHORT + 1, hi=100_000,
           why="time: about 2 ms per step and source token for both models on 2 CPU cores"),
    Option("--length", int, 8, "longest source length L (trained on 1 to L, tested at each)", lo=4, hi=128,
           why="time: the decoder runs L steps per batch, one after another"),
    Option("--hidden", int, 16, "GRU state size h of encoder and decoder", lo=2, hi=1024,
           why="time and memory: 3 h^2 weights per GRU gate set, a step costs about (1 + h/128) units"),
]  # fmt: skip


def derivation() -> Derivation:
    """Information in the source against the capacity of one state; the bound on sequence accuracy, its limit,
    the critical length, and the capacity with attention, which grows with the source."""
    n, V = sp.Symbol("n", positive=True, integer=True), sp.Symbol("V", positive=True, integer=True)
    b, h = sp.Symbol("b", positive=True, integer=True), sp.Symbol("h", positive=True, integer=True)
    W = sp.Symbol("W", positive=True)
    der = Derivation(
        "Exercise 13.1: one state of h floats against n tokens",
        assumptions=[
            r"sources: $n$ tokens drawn independently and uniformly from a vocabulary of $V \geq 2$",
            r"without attention the decoder is a deterministic function of one state of $h$ floats of $b$ bits",
            r"with attention it reads the $n$ encoder states $h_1, \dots, h_n$, each of $h$ floats",
        ],
    )
    bits = sp.Function("bits")
    der.define(sp.Symbol("sources"), V**n, "the number of different sources of length $n$")
    der.eq(bits(n), n * sp.log(V, 2), r"$\log_2 V^n$: the information in one source", computed=sp.log(V**n, 2))
    der.define(sp.Symbol("states"), 2 ** (b * h), "the most values one state of $h$ floats of $b$ bits can take")
    bound = 2 ** (b * h) / V**n
    der.eq(
        sp.Symbol("P_right"),
        2 ** (b * h - n * sp.log(V, 2)),
        r"at most one source per state is decoded right: at most $2^{bh} / V^n$ of all sources",
        computed=bound,
    )
    der.limit(
        2 ** (b * h) / (1 + W) ** n,
        n,
        sp.oo,
        0,
        r"with $V = 1 + W$, $W > 0$: the fraction entirely right goes to 0 as the source grows",
    )
    der.eq(
        sp.Symbol("n_star"),
        b * h * sp.log(2) / sp.log(V),
        r"the bound falls below 1 past $n^* = bh / \log_2 V$",
        computed=sp.solve(sp.Eq(n * sp.log(V, 2), b * h), n)[0],
    )
    der.eq(
        sp.Symbol("n_star(16, 16, 32)"),
        128,
        r"the check's sizes, $V = 16$, $h = 16$, $b = 32$: $n^* = 512 / 4$",
        computed=(b * h * sp.log(2) / sp.log(V)).subs({b: FLOAT_BITS, h: 16, V: VOCAB}),
    )
    der.eq(
        sp.Symbol("capacity/information"),
        b * h / sp.log(V, 2),
        r"with attention the decoder reads $n h$ floats: $b n h$ bits over $n \log_2 V$ does not depend on $n$",
        computed=(b * n * h) / (n * sp.log(V, 2)),
    )
    return der


# -- numerics ------------------------------------------------------------------------------------


def step_seconds(length: int, hidden: int) -> float:
    """Seconds of one training step of both models on 2 busy CPU cores (the measurements above)."""
    return 2e-3 * length * (1 + hidden / 128)


def validate(o) -> None:
    """The training and testing time within MAX_SECONDS."""
    from models.utils.cli import MAX_SEED

    if o.seed > MAX_SEED // 2:  # the Trainer offsets its seed: it takes half the range
        raise ValueError(f"seed: the training runs take seeds up to {MAX_SEED // 2}, got {o.seed}")
    seconds = (o.steps + SHORT) * step_seconds(o.length, o.hidden) + 3 * o.samples * o.length**2 * 2e-5
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"steps: {o.steps:,} steps at length {o.length}, hidden {o.hidden} and {o.samples:,} test sequences "
            f"would take ~{seconds:,.0f} s on 2 CPU cores; at most {MAX_SECONDS} s"
        )


def token_gap(a: dict, b: dict) -> Estimate:
    """Token accuracy (per sequence, averaged) of ``a`` minus ``b``, with the standard error of a difference of
    two means of independent sequences."""

    def mean_var(r):
        m = r["tok_right"] / (r["n"] * r["length"])
        return m, max(r["tok_sq"] / r["n"] - m * m, 0.0) * r["n"] / (r["n"] - 1)

    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    se = math.sqrt(va / a["n"] + vb / b["n"])
    return Estimate(ma - mb, max(se, 1e-12), a["n"] + b["n"])


def seq_gap(a: dict, b: dict) -> Estimate:
    """Sequence accuracy of ``a`` minus ``b``: two-proportion z, pooled standard error, with one success and one
    failure added to the pool so that it is never 0 (two perfect models give a gap of 0, standard error > 0)."""
    n1, n2 = a["n"], b["n"]
    p = (a["seq_right"] + b["seq_right"] + 1) / (n1 + n2 + 2)
    return Estimate(a["seq_right"] / n1 - b["seq_right"] / n2, math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)), n1 + n2)


def read_saved(path: Path = SAVED) -> dict | None:
    """The saved ``cpu`` run of ``python -m models.training.seq2seq_run`` (its results.json), or None."""
    return read_json(path)


def saved_notes(saved: dict) -> list[str]:
    """The saved run's accuracies at the shortest and longest lengths, per model."""
    from models.training.seq2seq_run import curves_of

    P, parts = saved["sizes"], []
    for name, c in sorted(curves_of(saved).items()):
        parts.append(
            f"{name}: sequence accuracy {c['seq'][0]:.3f} at length {c['length'][0]}, {c['seq'][-1]:.3f} at "
            f"{c['length'][-1]} (tokens {c['tok'][-1]:.3f})"
        )
    head = (
        f"saved {saved['preset']} run ({saved['device']}, {saved['seconds'] / 60:.1f} min; {saved['task']}, V = "
        f"{P['vocab']}, lengths 1 to {P['max_len']}, {P['steps']} steps, {P['eval_n']} test sequences per length): "
    )
    return [head + "; ".join(parts)]


@with_options
def check(o) -> CheckResult:
    """Two GRU encoder-decoders, with and without attention, trained alike; accuracy per length by greedy
    decoding; one-sided z-tests at the longest and half lengths; controls at length 1 and after 3 steps."""
    import torch

    from models.seq2seq import Seq2SeqConfig
    from models.training.seq2seq_run import Task, accuracy, example, train
    from models.utils.device import describe, one_thread, pick_device

    dev = pick_device(o.device)
    task = Task(VOCAB, o.length, "reverse")
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    rows = {}
    with one_thread(), torch.random.fork_rng(devices=[]):  # the Trainer seeds the global RNG: give it back after
        for steps in (o.steps, SHORT):
            for attn in ("additive", "none"):
                cfg = Seq2SeqConfig(VOCAB, o.hidden, o.hidden, o.hidden, attn)
                model, _ = train(cfg, task, steps, BATCH, LR, o.seed, str(dev))
                lengths = range(1, o.length + 1) if steps == o.steps else [o.length]
                gen = torch.Generator().manual_seed(o.seed + 1)  # the same test sequences for every model
                rows[steps, attn] = {n: accuracy(model, task, n, o.samples, gen) for n in lengths}
                if steps == o.steps and attn == "additive":
                    gen = torch.Generator().manual_seed(o.seed + 1)
                    rows[steps, "uniform"] = {n: accuracy(model, task, n, o.samples, gen, True) for n in lengths}
                    res.series["example"] = example(model, task, o.length, o.seed + 2) | {"model": f"h={o.hidden}"}
    L, half, att, non = o.length, o.length // 2, rows[o.steps, "additive"], rows[o.steps, "none"]
    N = f"{o.samples} test sequences each"
    res.claims += [
        one_sided(token_gap(att[L], non[L]), ">", 0, f"token accuracy at length {L}: attention > none ({N})", RATE),
        one_sided(seq_gap(att[half], non[half]), ">", 0, f"sequence accuracy at length {half}: attention > none", RATE),
        one_sided(
            token_gap(att[L], rows[o.steps, "uniform"][L]),
            ">",
            0,
            f"token accuracy at length {L}: learned attention > the same model with uniform weights",
            RATE,
        ),
    ]
    res.controls += [
        one_sided(seq_gap(att[1], non[1]), ">", 0, "sequence accuracy at length 1: attention > none", RATE),
        one_sided(
            token_gap(rows[SHORT, "additive"][L], rows[SHORT, "none"][L]),
            ">",
            0,
            f"after only {SHORT} steps, token accuracy at length {L}: attention > none",
            RATE,
        ),
    ]
    for kind in ("additive", "none", "uniform"):
        for n, r in rows[o.steps, kind].items():
            res.table.append(
                {
                    "model": kind,
                    "length": n,
                    "seq_acc": r["seq_right"] / r["n"],
                    "tok_acc": r["tok_right"] / (r["n"] * n),
                }
            )
    res.notes += [
        f"task: reverse sources of lengths 1 to {L} over V = {VOCAB} tokens; GRU encoder-decoders, h = {o.hidden}, "
        f"embedding {o.hidden}, trained {o.steps} AdamW steps (batch {BATCH}, lr {LR:g}, one CPU thread) by "
        "models.training.loop.Trainer, same seed and batches for both",
        f"tests: greedy decoding of {o.samples} fresh sequences per length (the same ones for every model); one-sided "
        f"z-tests at false-alarm rate {RATE:g}: token accuracy as the mean over sequences with its standard error "
        "over sequences (Welch), sequence accuracy by the pooled two-proportion test",
        f"capacity: a source of length {L} carries {L * math.log2(VOCAB):.0f} bits; the state is {o.hidden} floats "
        f"({FLOAT_BITS * o.hidden} bits in float32, so the counting bound bites only past n = "
        f"{FLOAT_BITS * o.hidden / math.log2(VOCAB):.0f}); the trained state holds far less",
    ]
    saved = read_saved()
    if saved is None:
        res.notes.append(
            f"no saved full run at {SAVED} (python -m models.training.seq2seq_run --preset cpu --out docs/experiments/"
            "seq2seq)"
        )
    else:
        res.notes += saved_notes(saved)
        res.series["saved"] = saved
    return res


def figure(res: CheckResult):
    """Sequence and token accuracy against source length, with attention, without, and with the learned weights
    replaced by the uniform average; the attention weights of one example; the saved run's curves when present."""
    from models.training.seq2seq_run import curves_of

    saved = res.series.get("saved")
    fig, axes = plotting.subplots(4 if saved else 3, width=19 if saved else 15, height=4.4)
    labels = {"additive": "attention", "none": "no attention", "uniform": "attention, uniform weights"}
    for kind, style in (("additive", "-"), ("none", "--"), ("uniform", ":")):
        t = [r for r in res.table if r["model"] == kind]
        for ax, key in zip(axes[:2], ("seq_acc", "tok_acc")):
            ax.plot([r["length"] for r in t], [r[key] for r in t], style, marker=".", label=labels[kind])
    for ax, what in zip(axes[:2], ("sequence accuracy", "token accuracy")):
        ax.set(xlabel="source length $n$", ylabel=what, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title(plotting.title(res, "the small check"), fontsize=9)
    ex = res.series["example"]
    im = axes[2].imshow(ex["alpha"], cmap="viridis", vmin=0)
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    axes[2].set(xlabel="source position $j$", ylabel="output step $i$")
    axes[2].set_title(rf"attention weights $\alpha_{{ij}}$ of one source, after {res.settings.steps} steps", fontsize=9)
    if saved:
        for name, c in sorted(curves_of(saved).items()):
            axes[3].plot(c["length"], c["seq"], "-" if c["attention"] == "additive" else "--", marker=".", label=name)
        axes[3].set(xlabel="source length $n$", ylabel="sequence accuracy", ylim=(-0.02, 1.02))
        axes[3].set_title(f"saved {saved['preset']} run", fontsize=9)
        axes[3].legend(fontsize=7)
        axes[3].grid(alpha=0.3)
    fig.suptitle("Exercise 13.1: the fixed-size state is a bottleneck; attention removes it")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

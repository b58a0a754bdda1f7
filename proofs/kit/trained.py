"""What the trained exercises (13.21, 13.22) share: train two variants of the chapter's GPT on tiny
Shakespeare for a few hundred steps, check that each learns, and read the saved full runs.

The small run (``--steps``, default 200, of a 2-layer, width-64 GPT on 32-character blocks; seconds
on a CPU) can say whether a variant trains, not which of two ends lower after 5000 steps. Its claim is
one-sided: each variant's validation loss lies below the cross-entropy of a model that knows only the
character frequencies (about 3.3 nats; so the model uses context), by more than ``z`` standard errors
of the evaluation (``samples`` batches of the fixed evaluation set, the same for both variants). The
negative controls, "the loss equals that frequency-only loss" and "it is still ``log V``", the
uniform guess (:mod:`derive.losses`), are rejected by two-sided z-tests at the same false-alarm rate;
a run too short to learn context (``--steps 8``) fails the claim. The difference of the two variants
at the end is reported with its standard error, not judged. The full comparison (5000 steps, 3 seeds,
the ``cpu`` preset) is what ``python -m models.training.experiments`` saved under ``docs/experiments/``:
its paired t statistic is read and reported, and the figure draws its curves beside the small run's.
"""

from __future__ import annotations

import math
from pathlib import Path

from derive.losses import uniform_cross_entropy
from models.utils.files import read_json
from numeric.check import CheckResult
from numeric.stats import Estimate, compare, one_sided
from proofs.kit import plotting
from proofs.kit.options import Option

DOCS = Path(__file__).resolve().parents[2] / "docs" / "experiments"
SMALL = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, dropout=0.0)  # the small run's GPT (the cpu preset's 1/4)
BATCH = 16
RATE = 1e-9  # false-alarm rate of each one-sided test
DEFAULT_SAMPLES = 20  # evaluation batches per loss estimate
MAX_SAMPLES = 1000
SAMPLES_WHY = "evaluation batches: each costs a forward pass per split and evaluation"
OPTIONS = [
    Option(
        "--steps",
        int,
        200,
        "training steps of each variant in the small run (the saved full runs: 5000)",
        lo=8,
        hi=20_000,
        why="time: about 10 ms a step of the small GPT on 2 CPU cores",
    ),
    Option(
        "--data", str, None, "tiny Shakespeare's text file (unset: $TINY_SHAKESPEARE, the user cache, else download)"
    ),
]


def _train_config(o):
    """The small run's training settings; ValueError naming the setting (the seed's range, say)."""
    from models.training.loop import TrainConfig

    return TrainConfig(
        batch_size=BATCH,
        max_iters=o.steps,
        lr_decay_iters=o.steps,
        warmup_iters=max(1, o.steps // 10),
        eval_interval=max(1, o.steps // 4),
        eval_iters=o.samples,
        eval_train=True,
        seed=o.seed,
        device=o.device,
        progress=False,
    )


def _data(o):
    """The corpus, read and checked to hold the small run's blocks; ValueError naming ``data``."""
    from models.data.chars import CharData

    data = CharData.load(o.data)
    try:
        data.check_block(SMALL["block_size"])
    except ValueError as e:
        raise ValueError(f"data: too short for the small run ({str(e).split(': ', 1)[1]})") from None
    return data


def validate(o) -> None:
    """Before any work: the training settings are valid and the data is there and long enough."""
    _train_config(o)
    _data(o)


def unigram_cross_entropy(data) -> float:
    """Cross-entropy (nats per character) on the val split of a model that knows only the training
    split's character frequencies (add-one smoothed so no character has probability 0): what a model
    reaches that learned no context at all (3.3 nats on tiny Shakespeare, below log V = 4.17)."""
    import torch

    p = torch.bincount(data.train.long(), minlength=data.vocab_size).double() + 1
    q = torch.bincount(data.val.long(), minlength=data.vocab_size).double()
    return float(-(q / q.sum() * (p / p.sum()).log()).sum())


def check_variants(o, experiment: str, title: str) -> CheckResult:
    """Train both variants of ``experiment`` (``models.training.experiments.EXPERIMENTS``) at seed
    ``o.seed`` for ``o.steps`` steps; claim: each one's final val loss lies below the unigram
    cross-entropy (it uses context); controls: it equals the unigram loss, or log V."""
    from models.training.experiments import train_variants
    from models.utils.device import one_thread

    data = _data(o)
    with one_thread():  # a 2-layer, width-64 GPT: OpenMP threads only contend (5x slower on 2 busy cores)
        runs, meta = train_variants(experiment, SMALL, _train_config(o), data, [o.seed])
    base, unigram = float(uniform_cross_entropy(data.vocab_size)), unigram_cross_entropy(data)
    device = next(iter(meta.values()))["device"]
    res = CheckResult(title, device, o.samples, o.seed)
    finals = {}
    for name, (history,) in runs.items():
        last = history[-1]
        est = Estimate(last["val"], last["val_se"], o.samples)
        finals[name] = est
        res.claims.append(
            one_sided(est, "<", unigram, f"{name}: val loss at step {last['step']} < unigram {unigram:.4f}", RATE)
        )
        res.controls.append(compare(est, unigram, f"{name}: val loss = unigram {unigram:.4f} (no context)", RATE))
        res.controls.append(compare(est, base, f"{name}: val loss = log V = {base:.4f} (nothing learned)", RATE))
        res.table += [
            {"variant": name, "step": r["step"], "train": r["train"], "val": r["val"], "val_se": r["val_se"]}
            for r in history
        ]
    (a, ea), (b, eb) = finals.items()
    se = math.hypot(ea.stderr, eb.stderr)  # the same evaluation batches: correlated, so this overstates the error
    res.notes += [
        f"small run: GPT {SMALL['n_layer']} layers, width {SMALL['n_embd']}, blocks of {SMALL['block_size']}, "
        f"batch {BATCH}, {o.steps} steps at seed {o.seed}, the same batches for both variants; each val loss is "
        f"the mean over {o.samples} fixed evaluation batches ± its standard error; one-sided z-tests at "
        f"false-alarm rate {RATE:g} each",
        f"difference at step {o.steps} ({b} − {a}, same batches): {eb.value - ea.value:+.4f} ± {se:.4f} (not judged: a "
        "small run cannot say which variant ends lower after 5000 steps)",
    ]
    res.series |= {"runs": runs, "log_V": base, "unigram": unigram}
    saved = read_saved(experiment)
    if saved is None:
        res.notes.append(
            f"no saved full run under {DOCS / experiment}: run python -m models.training.experiments "
            f"{experiment} --seeds 3 --out docs/experiments"
        )
    else:
        res.series["saved"] = saved
        res.notes.append(saved_summary(saved))
    return res


def read_saved(experiment: str) -> dict | None:
    """The saved full run's ``results.json`` (written by ``models.training.experiments``), or None
    when it is absent or unreadable (an installed copy without ``docs/``)."""
    return read_json(DOCS / experiment / "results.json")


def saved_summary(saved: dict) -> str:
    """One line: the saved run's final val losses and the paired difference with its statistic."""
    s, c = saved["summary"], saved["summary"]["comparison"]
    (a, va), (b, vb) = list(s["variants"].items())[:2]
    stat = f"t = {c['statistic']:.2f} on {c['dof']} d.o.f." if c["dof"] else f"z = {c['statistic']:.2f}"
    return (
        f"saved full run ({saved['preset']} preset, {saved['train_config']['max_iters']} steps, seeds "
        f"{saved['seeds']}): final val {a} {va['final_val']:.4f} ± {va['final_val_se']:.4f}, {b} "
        f"{vb['final_val']:.4f} ± {vb['final_val_se']:.4f}; paired difference ({b} − {a}) "
        f"{c['final_val_difference']:+.4f} ± {c['difference_se']:.4f} ({stat}, two-sided p = {c['p_two_sided']:.2g}); "
        f"first to {s['threshold']:.4f}: {c['faster'] or 'neither'}"
    )


def figure(res: CheckResult):
    """Validation loss against step: the small run, and the saved full run (mean of its seeds) if any."""
    from models.training.experiments import draw_curves

    saved = res.series.get("saved")
    fig, axes = plotting.subplots(2 if saved else 1, width=12 if saved else 6.4, height=4.2)
    axes = list(axes) if saved else [axes]
    draw_curves(axes[0], res.series["runs"], f"{res.name}: small run ({res.samples} eval batches, {res.device})")
    axes[0].axhline(res.series["log_V"], color="k", lw=0.6, ls=":", label="$\\log V$ (uniform guess)")
    axes[0].axhline(res.series["unigram"], color="k", lw=0.6, ls="--", label="character frequencies only")
    axes[0].legend(fontsize=7)
    if saved:
        draw_curves(axes[1], saved["curves"], f"saved: {saved['preset']} preset, {len(saved['seeds'])} seeds")
    return fig

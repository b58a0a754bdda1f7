"""``python -m models.training.icl_run``: exercise 13.8, in-context learning of linear functions (Garg et al.
2022, section 3), trained and measured.

Every prompt draws a fresh function ``f(x) = w.x`` with ``w ~ N(0, I_d)`` and points ``x_i ~ N(0, I_d)``; the
model (:class:`models.icl.InContextRegressor`) is trained by :class:`models.training.loop.Trainer` to predict
each ``f(x_i)`` from the pairs before it, with the squared error divided by ``d`` (the loss a predictor of 0
scores 1 on average). Then, its weights frozen, it is evaluated on new prompts (new functions, drawn from a
seed the training never used) at every number of in-context examples ``k = 0 .. n_points - 1``, against
three estimators on the same prompts:

- least squares: the minimum-norm solution ``w_hat = X^+ y`` of the ``k`` examples (``X`` is k x d); without
  noise its normalised error is exactly ``1 - k/d`` for ``k < d`` and 0 from ``k = d`` on;
- averaging: ``w_hat = (1/k) sum_i y_i x_i``, normalised error ``(d + 1)/k``;
- the zero predictor: normalised error 1.

Negative control: the same frozen model on the same prompts with the (x, f(x)) pairs shuffled across prompts
(:func:`shuffle_across_prompts`): each pair of a sequence then comes from a different function, so the
context says nothing about the query's function, and no predictor can beat the zero predictor's error there.

Writes to ``--out`` (whole, or not at all): ``results.json`` (every curve with its standard errors, the
training history, a paired one-sided z-test at ``k = 2d``) and ``errors.png`` (normalised error against k).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

PRESETS = {
    # 2 CPU cores: ~58 ms a step on one busy thread (measured, 152,129 parameters), so at most ~6 minutes;
    # d = 5, prompts of 11 points, so k runs to 2d = 10
    "cpu": dict(d=5, n_points=11, n_layer=3, n_head=4, n_embd=64, batch=64, iters=6000, lr=1e-3,
                eval_interval=500, eval_iters=10, eval_prompts=4000),
    # one GPU (not measured yet): d = 10, k up to 2d; a deeper, wider model trained longer
    "gpu": dict(d=10, n_points=21, n_layer=6, n_head=8, n_embd=256, batch=128, iters=20000, lr=3e-4,
                eval_interval=1000, eval_iters=20, eval_prompts=20000),
}  # fmt: skip
RATE = 1e-6  # false-alarm probability of the paired one-sided z-tests in results.json
EVAL_SEED = 2**40 + 8  # the evaluation prompts' generator: never one the training draws from
METHODS = ("model", "least squares", "averaging", "zero", "model, shuffled context")


def sample_prompts(n: int, d: int, n_points: int, gen: torch.Generator, device=None, dtype=torch.float32):
    """``n`` prompts, each with its own ``w ~ N(0, I_d)``: ``xs`` (n, n_points, d) with N(0, 1) entries and
    ``ys = xs w`` (n, n_points), drawn from the CPU generator ``gen`` and moved to ``device``."""
    xs = torch.randn(n, n_points, d, generator=gen, dtype=torch.float64)
    w = torch.randn(n, d, 1, generator=gen, dtype=torch.float64)
    ys = (xs @ w)[..., 0]
    return xs.to(device=device, dtype=dtype), ys.to(device=device, dtype=dtype)


class LinearPrompts:
    """The batch source of :class:`models.training.loop.Trainer`: fresh linear functions for every prompt,
    for the splits ``train`` and ``val`` alike (the task is a distribution, not a data set); batches are
    ``(xs, ys)`` as :func:`sample_prompts` draws them."""

    eval_splits = ("val",)

    def __init__(self, d: int, n_points: int, device=None):
        self.d, self.n_points, self.device = d, n_points, device

    def to(self, device) -> LinearPrompts:
        """This source drawing onto ``device``."""
        return LinearPrompts(self.d, self.n_points, device)

    def batch(self, split: str, batch_size: int, gen: torch.Generator):
        """``batch_size`` prompts ``(xs, ys)``; ValueError for a split other than train or val."""
        if split not in ("train", "val"):
            raise ValueError(f"split: unknown {split!r}; choose from train, val")
        return sample_prompts(batch_size, self.d, self.n_points, gen, self.device)


def icl_loss(model, batch) -> torch.Tensor:
    """Mean over prompts and positions of ``(prediction - f(x))^2 / d``: 1 for the zero predictor on average."""
    xs, ys = batch
    return ((model(xs, ys) - ys) ** 2).mean() / xs.shape[-1]


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Predictions (B, n) of the minimum-norm least-squares fit: entry i is ``x_i . X_i^+ y_i``, with ``X_i``
    the first i points (i x d) and ``X_i^+`` its Moore-Penrose pseudo-inverse; 0 at i = 0. Float64."""
    xs, ys = xs.double(), ys.double()
    out = torch.zeros(ys.shape, dtype=torch.float64, device=ys.device)
    for i in range(1, xs.shape[1]):
        w_hat = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]  # (B, d, 1)
        out[:, i] = (xs[:, i : i + 1] @ w_hat)[:, 0, 0]
    return out


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Predictions (B, n) of the averaging estimator: entry i is ``x_i . (1/i) sum_{j<i} y_j x_j``; 0 at i = 0."""
    xs, ys = xs.double(), ys.double()
    sums = torch.cumsum(ys[..., None] * xs, dim=1)  # (B, n, d): sum over j <= i
    before = torch.cat([torch.zeros_like(sums[:, :1]), sums[:, :-1]], dim=1)  # sum over j < i
    count = torch.arange(xs.shape[1], device=xs.device, dtype=torch.float64).clamp(min=1)[None, :, None]
    return (xs * before / count).sum(-1)


def shuffle_across_prompts(xs: torch.Tensor, ys: torch.Tensor):
    """The pairs of a batch of B prompts shuffled across prompts: position i of prompt b takes the pair at
    position i of prompt ``(b + i) mod B``. With B >= n every pair of a sequence then comes from a different
    prompt, hence a different, independent function. ValueError naming ``xs`` when B < n."""
    B, n = ys.shape
    if B < n:
        raise ValueError(f"xs: shuffling across prompts needs at least n = {n} prompts, got {B}")
    src = (torch.arange(B, device=xs.device)[:, None] + torch.arange(n, device=xs.device)) % B  # (B, n)
    pos = torch.arange(n, device=xs.device).expand(B, n)
    return xs[src, pos], ys[src, pos]


@torch.no_grad()
def squared_errors(model, xs: torch.Tensor, ys: torch.Tensor, batch: int = 1000) -> dict:
    """Per-prompt normalised squared errors ``(prediction - y)^2 / d`` (N, n) of every method of
    :data:`METHODS` on the prompts ``xs`` (N, n, d), ``ys`` (N, n); the model in eval mode, its shuffled-context
    control on :func:`shuffle_across_prompts` of each batch (errors against the shuffled targets). CPU float64."""
    model.eval()
    d = xs.shape[-1]
    parts = {m: [] for m in METHODS}
    for i in range(0, len(xs), batch):
        x, y = xs[i : i + batch], ys[i : i + batch]
        xsh, ysh = shuffle_across_prompts(x, y)
        preds = {
            "model": model(x, y).double(),
            "least squares": least_squares(x, y),
            "averaging": averaging(x, y),
            "zero": torch.zeros_like(y, dtype=torch.float64),
        }
        for m, p in preds.items():
            parts[m].append(((p - y.double()) ** 2 / d).cpu())
        parts["model, shuffled context"].append(((model(xsh, ysh).double() - ysh.double()) ** 2 / d).cpu())
    return {m: torch.cat(v) for m, v in parts.items()}


def curves(errors: dict) -> dict:
    """Per method, the mean normalised error at each k (list) and its standard error over prompts."""
    n = len(next(iter(errors.values())))
    return {
        m: {"mean": e.mean(0).tolist(), "se": (e.std(0, unbiased=True) / math.sqrt(n)).tolist()}
        for m, e in errors.items()
    }


def exact_least_squares(d: int, k: int) -> float:
    """The normalised error of minimum-norm least squares after k noiseless examples: ``1 - k/d`` for k < d, 0 on."""
    return max(0.0, 1.0 - k / d)


def exact_averaging(d: int, k: int) -> float:
    """The normalised error of the averaging estimator after k examples: ``(d + 1)/k``, and 1 at k = 0."""
    return 1.0 if k == 0 else (d + 1) / k


def paired_below(errors: dict, first: str, second: str, k: int, rate: float = RATE):
    """One-sided z-test that ``first``'s mean error at k is below ``second``'s, on the same prompts: the mean
    of the per-prompt differences, its standard error, and the verdict at false-alarm ``rate``
    (:func:`numeric.stats.one_sided`)."""
    from numeric.stats import Estimate, one_sided

    est = Estimate.of(errors[first][:, k] - errors[second][:, k])
    return one_sided(est, "<", 0.0, f"{first} below {second} at k = {k} (mean paired difference)", rate)


def model_config(P: dict):
    """The GPTConfig of the blocks for preset sizes ``P`` (no dropout: the prompts never repeat)."""
    from models.gpt import GPTConfig

    return GPTConfig(
        block_size=2 * P["n_points"], vocab_size=1, n_layer=P["n_layer"], n_head=P["n_head"],
        n_embd=P["n_embd"], dropout=0.0,
    )  # fmt: skip


def train(P: dict, seed: int = 0, device=None, progress: bool | None = None):
    """Train an :class:`~models.icl.InContextRegressor` of sizes ``P`` (a preset's dict) for ``P["iters"]`` AdamW
    steps (linear warmup over the first tenth, cosine decay to lr/10, no weight decay, gradient clip 1) with
    the shared loop; returns ``(model, trainer summary)``."""
    from models.icl import InContextRegressor
    from models.training.loop import TrainConfig, Trainer

    cfg = model_config(P)
    tc = TrainConfig(
        batch_size=P["batch"], max_iters=P["iters"], lr=P["lr"], min_lr=P["lr"] / 10,
        warmup_iters=P["iters"] // 10, lr_decay_iters=P["iters"], eval_interval=P["eval_interval"],
        eval_iters=P["eval_iters"], eval_train=False, weight_decay=0.0, seed=seed, device=device,
        log_interval=max(1, P["iters"] // 100), progress=progress,
    )  # fmt: skip
    trainer = Trainer(
        lambda: InContextRegressor(P["d"], P["n_points"], cfg),
        LinearPrompts(P["d"], P["n_points"]),
        icl_loss,
        tc,
        model_config={"d": P["d"], "n_points": P["n_points"], "n_layer": P["n_layer"], "n_head": P["n_head"],
                      "n_embd": P["n_embd"]},
    )  # fmt: skip
    summary = trainer.fit()
    return trainer.model, summary


def check_sizes(P: dict) -> None:
    """ValueError naming the first bad size: positive integers, n_head dividing n_embd, ``n_points`` above
    ``2d`` (the curve must reach k = 2d) and ``eval_prompts`` at least ``n_points`` (the shuffle needs it)."""
    from models.utils.presets import check_positive

    check_positive(P)
    if P["n_embd"] % P["n_head"]:
        raise ValueError(f"n_head: must divide n_embd={P['n_embd']}, got {P['n_head']}")
    if P["n_points"] <= 2 * P["d"]:
        raise ValueError(f"n_points: must exceed 2d = {2 * P['d']} so that k reaches 2d, got {P['n_points']}")
    if P["eval_prompts"] < P["n_points"]:
        raise ValueError(f"eval_prompts: must be at least n_points = {P['n_points']}, got {P['eval_prompts']}")


def evaluate(model, P: dict, device=None) -> tuple[dict, dict]:
    """The frozen model and the baselines on ``P["eval_prompts"]`` new prompts (seed :data:`EVAL_SEED`):
    (per-prompt errors, :func:`curves`)."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    xs, ys = sample_prompts(P["eval_prompts"], P["d"], P["n_points"], gen, device)
    errors = squared_errors(model, xs, ys)
    return errors, curves(errors)


def key_points(d: int, n_points: int) -> list[int]:
    """The k the issue asks for: 1, d/2 (rounded down), d and 2d, those below ``n_points``."""
    return [k for k in dict.fromkeys([1, max(1, d // 2), d, 2 * d]) if k < n_points]


def run(preset: str = "cpu", out: str | Path = "icl_results", device=None, seed: int = 0, say=print, **sizes) -> dict:
    """Train, evaluate and write ``out`` (see the module docstring); returns the results dict. ``sizes``
    override the preset's entries (tests run a few steps). ValueError naming ``preset``, ``out`` or a size,
    before any work."""
    from models.utils.device import describe, pick_device
    from models.utils.files import check_replaceable, replace_dir
    from models.utils.presets import resolve

    P = resolve(PRESETS, preset, sizes)
    check_sizes(P)
    check_replaceable(out, "out")
    dev = pick_device(device)
    t0 = time.time()
    say(f"[icl] {preset} preset on {describe(dev)}: d = {P['d']}, {P['n_points']} points, {P['iters']} steps")
    model, summary = train(P, seed, str(dev))
    errors, cur = evaluate(model, P, dev)
    d = P["d"]
    tests = [
        paired_below(errors, "model", "zero", 2 * d),
        paired_below(errors, "model, shuffled context", "zero", 2 * d),
    ]
    points = [
        {"k": k, **{m: cur[m]["mean"][k] for m in METHODS}, "least squares, exact": exact_least_squares(d, k)}
        for k in key_points(d, P["n_points"])
    ]
    results = {
        "preset": preset, "device": describe(dev), "seed": seed, "settings": P, "eval_seed": EVAL_SEED,
        "curves": cur, "key_points": points, "tests": [t.to_dict() for t in tests],
        "exact": {"least squares": [exact_least_squares(d, k) for k in range(P["n_points"])],
                  "averaging": [exact_averaging(d, k) for k in range(P["n_points"])]},
        "history": summary["history"], "train_losses": summary["train_losses"], "params": summary["params"],
        "median_step_ms": summary["median_step_ms"], "seconds": time.time() - t0,
    }  # fmt: skip

    def build(tmp: Path) -> None:
        (tmp / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        fig = draw(results)
        fig.savefig(tmp / "errors.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)

    path = replace_dir(out, build, "out")
    for p in points:
        say(f"[icl] k = {p['k']}: " + ", ".join(f"{m} {p[m]:.4f}" for m in (*METHODS, "least squares, exact")))
    for t in tests:
        say(f"[icl] {t}")
    say(f"[icl] written to {path} in {results['seconds']:.0f} s")
    return results


def plot_errors(ax, cur: dict, d: int, title: str = "") -> None:
    """Draw every method's mean normalised error against k (bands: 2 standard errors) on ``ax``, with the
    exact least-squares curve; the averaging estimator's curve leaves the top of the axis at small k."""
    n = len(cur["model"]["mean"])
    ks = list(range(n))
    styles = {
        "model": dict(color="C0", lw=2, marker="o", ms=3),
        "least squares": dict(color="C1", lw=1.2, ls="--"),
        "averaging": dict(color="C2", lw=1.2, ls="-."),
        "zero": dict(color="C7", lw=1.2, ls=":"),
        "model, shuffled context": dict(color="C3", lw=1.5, marker="x", ms=4),
    }
    for m, style in styles.items():
        mean, se = cur[m]["mean"], cur[m]["se"]
        ax.plot(ks, mean, label=m if m != "model" else "Transformer (frozen weights)", **style)
        ax.fill_between(ks, [a - 2 * s for a, s in zip(mean, se)], [a + 2 * s for a, s in zip(mean, se)],
                        color=style["color"], alpha=0.15, lw=0)  # fmt: skip
    ax.plot(ks, [exact_least_squares(d, k) for k in ks], color="k", lw=0.8, label=r"exact: $1 - k/d$, then 0")
    ax.axvline(d, color="k", lw=0.5, alpha=0.4)
    top = max(1.6, 1.1 * max(cur["model, shuffled context"]["mean"]))
    ax.set(xlabel="in-context examples $k$", ylabel=r"squared error at the query $/\, d$", ylim=(-0.03, top))
    ax.set_title(title or f"$d = {d}$")
    ax.legend(fontsize=7)


def draw(results: dict):
    """The results' figure: normalised error against k for every method (left) and the training loss (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = results["settings"]["d"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    plot_errors(a, results["curves"], d, f"Exercise 13.8: in-context regression, $d = {d}$ ({results['preset']})")
    steps = [s for s, _ in results["train_losses"]]
    b.plot(steps, [v for _, v in results["train_losses"]], lw=0.8, label="training batch")
    b.plot([h["step"] for h in results["history"]], [h["val"] for h in results["history"]], "o-", ms=3, label="val")
    b.axhline(1.0, color="C7", ls=":", lw=1, label="zero predictor")
    b.set(xlabel="step", ylabel=r"loss: mean squared error $/\, d$ over positions", yscale="log", title="training")
    b.legend(fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0, 2 on bad input (one line naming the flag), 130 on Ctrl-C."""
    from models.utils.cli import preset_run_main

    prog = "python -m models.training.icl_run"
    return preset_run_main(argv, prog=prog, doc=__doc__, presets=PRESETS, run=run, out="icl_results")


if __name__ == "__main__":
    raise SystemExit(main())

r"""Exercise 13.8: what in-context learning is, and why it is remarkable, shown by experiment.

In plain words: in-context learning is a model learning a new task from examples placed in its prompt,
with no change to its weights. A trained Transformer is shown a few input-output pairs of a function it
has never seen and then a new input; it predicts the output from the prompt alone. That is remarkable
because nothing was trained on that function: the training taught the model a *learning algorithm*, which
then runs inside one forward pass. Garg et al. (2022) made this measurable: every prompt carries a fresh
random linear function $f(x) = w \cdot x$, so the model cannot memorise any function, and its error can
be compared with the best estimator given the same examples.

The yardsticks are exact. With $x_1, \dots, x_k, x_q$ and $w$ independent $N(0, I_d)$ and no noise, the
minimum-norm least-squares estimate is $\hat w = Pw$, $P$ the projection onto the span of the $x_i$, so
the squared error at the query, divided by $d$, is $\mathrm{tr}(I - P)/d = 1 - k/d$ for $k < d$ and 0
from $k = d$ on; averaging, $\hat w = \frac{1}{k} \sum_i y_i x_i$, scores $(d + 1)/k$ (from the Wishart
moment $E[(X^T X)^2] = k(k + d + 1) I$); the zero predictor scores 1. A prompt whose pairs come from
*other* functions carries no information about the query's: the prediction is then independent of $w$,
the cross term vanishes, and no predictor can score below 1. The derivation proves each identity from
four stated lemmas (isotropy, the rank of Gaussian points, the Wishart moment and independence), with
sympy checking the trace and the Wishart moment exactly in small cases only (the general $(d + 1)/k$
rests on the Wishart lemma).

The discrete demonstration, induction heads (Olsson et al. 2022): an attention-only model with two layers learns
to complete a repeated random sequence (``[A][B] ... [A] -> [B]``), reading the answer from the prompt, while
one layer cannot compose the previous-token step with the copy. It trains for minutes, not seconds, so the check
does not rerun it: ``python -m models.training.induction_run --preset cpu`` does (its own paired test and
control), and its saved results under ``docs/experiments/induction`` are read and drawn here when present.

The check: (1) least squares on ``samples`` fresh prompts (float64 pseudo-inverses) scores $1 - k/d$ at
$k = d/2$ by a two-sided z-test at false-alarm $10^{-6}$, which rejects the off-by-one $1 - k/(d+1)$,
and exactly 0 at $k = d$; averaging scores $(d + 1)/(2d)$ at $k = 2d$. (2) A one-layer
``models.icl.InContextRegressor`` is trained for ``--steps`` Adam steps (about 3 s) on prompts with
fresh functions and, frozen, evaluated on 2,000 new prompts: its error at $k = 2d$ is below the zero
predictor's on the same prompts (paired one-sided z-test, false-alarm $10^{-6}$). The negative control:
the same model with the pairs shuffled across prompts (each pair from another function) is *not*
below the zero predictor, and the same test rejects it. The larger runs are
``python -m models.training.icl_run --preset cpu`` (and ``gpu``), whose saved results under
``docs/experiments/icl`` are read and drawn here when present.
"""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from derive.engine import Derivation
from derive.moments import expectation, iid, unit_moments
from models.utils.files import read_json
from numeric.check import Bound, CheckResult
from numeric.stats import Estimate, compare
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.8"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    "A Transformer learns a new linear function from the examples in its prompt, with frozen weights: its "
    r"error falls below the zero predictor's and towards least squares' $1 - k/d$, and not when the "
    "context comes from other functions."
)
SAVED = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "icl" / "results.json"
SAVED_INDUCTION = SAVED.parents[1] / "induction" / "results.json"  # python -m models.training.induction_run
RATE = 1e-6  # false-alarm probability of every z-test
DEFAULT_SAMPLES = 20_000  # Monte Carlo prompts for the least-squares and averaging formulas
MAX_SAMPLES = 2_000_000
MIN_SAMPLES = 1_000
MIN_SAMPLES_WHY = "the Monte Carlo z-tests of the formulas need a standard error over at least 1,000 prompts"
SAMPLES_WHY = "memory: (2d + 1)(d + 2) float64 per prompt and d x d pseudo-inverses; 2 M prompts at d 8 is ~3 GB"
EVAL_PROMPTS = 2000  # new prompts the trained model is evaluated on
EXACT_TOL = 1e-9  # least squares at k = d, float64: the error of an exact fit of O(1) values
OPTIONS = [
    Option("--d", int, 4, "input dimension d of the linear functions", lo=1, hi=8,
           why="time: the tiny model needs more steps as d grows; 8 already needs minutes"),
    Option("--steps", int, 250, "Adam steps of the tiny in-context learner", lo=1, hi=20_000,
           why="time: about 10 ms a step on 2 busy CPU cores (one thread)"),
]  # fmt: skip
TINY = dict(n_layer=1, n_head=2, n_embd=32, batch=128, lr=1e-2, eval_interval=10**6, eval_iters=1)


def derivation() -> Derivation:
    """The zero predictor's, least squares' and averaging's normalised errors, and the shuffled-context bound."""
    d, k = sp.symbols("d k", positive=True, integer=True)
    der = Derivation(
        "Exercise 13.8: the yardsticks of in-context linear regression",
        assumptions=[
            r"$w, x_1, \dots, x_k, x_q$ independent, each $N(0, I_d)$; $y_i = w \cdot x_i$, $y_q = w \cdot x_q$, "
            r"no noise; the normalised error of a prediction $y_{\mathrm{est}}$ is "
            r"$e = E[(y_q - y_{\mathrm{est}})^2]/d$",
        ],
    )
    iso = der.lemma(
        "Isotropy",
        r"for $r$ independent of $x_q \sim N(0, I_d)$, $E[(r \cdot x_q)^2] = E[\|r\|^2]$; for a symmetric $M$ "
        r"independent of $w \sim N(0, I_d)$, $E[w^T M w] = E[\mathrm{tr}\, M]$",
    )
    rank = der.lemma(
        "Rank",
        r"$k \le d$ points drawn from $N(0, I_d)$ are linearly independent with probability 1, so the "
        r"projection $P$ onto their span has $\mathrm{tr}\, P = k$; from $k = d$ on they span $\mathbb{R}^d$ "
        r"and $P = I$",
    )
    wishart = der.lemma(
        "Wishart",
        r"for $X$ the $k \times d$ matrix of the points, $E[(X^T X)^2] = k(k + d + 1) I_d$",
    )
    e = sp.Function("e")
    # the zero predictor, and an exact instance
    der.eq(e(0), 1, r"zero predictor: $E[(w \cdot x_q)^2]/d = E[\|w\|^2]/d = d/d$", computed=d / d, lemma=iso)
    w3, x3 = sp.symbols("w1:4", real=True), sp.symbols("x1:4", real=True)
    der.eq(
        sp.Symbol("E_zero(d=3)"),
        3,
        "exactly, for $d = 3$, from the Gaussian moments $E[z^2] = 1$, $E[z^4] = 3$",
        computed=expectation(sum(a * b for a, b in zip(w3, x3)) ** 2, iid(w3 + x3, unit_moments(3))),
    )
    # least squares: the projection, its trace in an exact instance, then the error
    X = sp.Matrix(2, 3, sp.symbols("a1:7", real=True))
    P = X.T * (X * X.T).inv() * X
    der.eq(
        sp.Symbol("trP(k=2,d=3)"),
        2,
        r"min-norm least squares $w_{\mathrm{est}} = X^+ y = X^+ X w = P w$, $P = X^T (X X^T)^{-1} X$; "
        r"for symbolic $2 \times 3$ points, $\mathrm{tr}\, P = 2$",
        "cancel",
        computed=sp.cancel(P.trace()),
    )
    der.eq(
        e(sp.Symbol("k<d")),
        1 - k / d,
        r"$E[\|(I - P) w\|^2]/d = \mathrm{tr}(I - P)/d = (d - k)/d$",
        computed=(d - k) / d,
        lemma=rank,
    )
    der.eq(e(sp.Symbol("k>=d")), 0, r"$P = I$: an exact fit, $\mathrm{tr}(I - I)/d$", computed=(d - d) / d, lemma=rank)
    # averaging: S = X^T X / k; an exact instance, then the Wishart moment
    xs = sp.symbols("z1:5", real=True)
    Z = sp.Matrix(2, 2, xs)
    S = Z.T * Z / 2
    der.eq(
        sp.Symbol("E_avg(k=2,d=2)"),
        3,
        r"averaging: $w_{\mathrm{est}} = \frac{1}{k} X^T X w = S w$; exactly for $k = d = 2$, $d(d + 1)/k = 3$",
        computed=expectation(((sp.eye(2) - S) ** 2).trace(), iid(xs, unit_moments(3))),
    )
    der.eq(
        e(sp.Symbol("avg")),
        (d + 1) / k,
        r"$\mathrm{tr}\, E[I - 2S + S^2]/d = (d - 2d + d(k + d + 1)/k)/d$",
        computed=(d - 2 * d + d * (k + d + 1) / k) / d,
        lemma=wishart,
    )
    # the shuffled context: the prediction is independent of the query's w
    indep = der.lemma(
        "Independence",
        r"with the pairs taken from other prompts, $y_{\mathrm{est}}$ depends on $x_q$ and on functions independent of "
        r"$w$, so $E[y_q y_{\mathrm{est}}] = E[w] \cdot E[x_q y_{\mathrm{est}}] = 0$",
    )
    b = sp.Symbol("b", nonnegative=True)  # E[yhat^2] / d
    der.holds(
        (d + b * d) / d,
        ">=",
        1,
        r"shuffled context: $e = (E[y_q^2] - 2E[y_q y_{\mathrm{est}}] + E[y_{\mathrm{est}}^2])/d = 1 + b$ "
        r"with $b = E[y_{\mathrm{est}}^2]/d \ge 0$",
        lemma=indep,
    )
    return der


# -- numerics ------------------------------------------------------------------------------------


def formula_findings(d: int, samples: int, seed: int) -> tuple[list, list, dict]:
    """Least squares and averaging on ``samples`` fresh prompts (2d + 1 points, float64): z-tests of their
    formulas (claims) and of the off-by-one least-squares formula (control); the measured curves."""
    import torch

    from models.training.icl_run import averaging, exact_averaging, exact_least_squares, least_squares, sample_prompts

    gen = torch.Generator().manual_seed(seed + 1)
    xs, ys = sample_prompts(samples, d, 2 * d + 1, gen, dtype=torch.float64)
    err = {
        "least squares": (least_squares(xs, ys) - ys) ** 2 / d,
        "averaging": (averaging(xs, ys) - ys) ** 2 / d,
    }

    def est(name: str, k: int) -> Estimate:
        return Estimate.of(err[name][:, k])

    half = max(1, d // 2)
    claims, controls = [], []
    if half < d:  # at d = 1 there is no k strictly between 0 and d
        claims.append(compare(est("least squares", half), exact_least_squares(d, half),
                              f"least squares at k = {half} = d/2: 1 - k/d", RATE))  # fmt: skip
        controls.append(compare(est("least squares", half), 1 - half / (d + 1),
                                f"least squares at k = {half}: 1 - k/(d+1) (off by one)", RATE))  # fmt: skip
    claims.append(Bound.of(f"least squares at k = d = {d}: exactly 0 (max over prompts)",
                           float(err["least squares"][:, d].max()), 0.0, EXACT_TOL))  # fmt: skip
    claims.append(compare(est("averaging", 2 * d), exact_averaging(d, 2 * d),
                          f"averaging at k = 2d = {2 * d}: (d + 1)/k", RATE))  # fmt: skip
    controls.append(compare(est("averaging", 2 * d), exact_least_squares(d, 2 * d),
                            f"averaging at k = 2d = {2 * d} is as good as least squares (0)", RATE))  # fmt: skip
    means = {m: e.mean(0).tolist() for m, e in err.items()}
    return claims, controls, means


def tiny_run(d: int, steps: int, seed: int, device) -> tuple[dict, dict, dict]:
    """Train the tiny learner (:data:`TINY`, prompts of 2d + 1 points) and evaluate it frozen on
    :data:`EVAL_PROMPTS` new prompts; returns (per-prompt errors, curves, training summary). One CPU
    thread, the loop's evaluation line kept off stderr; the global RNG is the caller's again afterwards."""
    import contextlib
    import io

    import torch

    from models.training.icl_run import evaluate, train
    from models.utils.device import one_thread

    P = dict(TINY, d=d, n_points=2 * d + 1, iters=steps, eval_prompts=EVAL_PROMPTS)
    with one_thread(), torch.random.fork_rng(devices=[]), contextlib.redirect_stderr(io.StringIO()):
        model, summary = train(P, seed, str(device), progress=False)
        errors, cur = evaluate(model, P, device)
    return errors, cur, summary


def read_saved(path: Path | None = None) -> dict | None:
    """The saved ``cpu`` run of ``python -m models.training.icl_run`` (``path``, default :data:`SAVED`), or None
    when absent or unreadable."""
    return read_json(path or SAVED)


def validate(o) -> None:
    """The tiny run's seed lies in the Trainer's range (it offsets its seed, so it takes half of the kit's)."""
    from models.utils.cli import MAX_SEED

    if o.seed > MAX_SEED // 2:
        raise ValueError(f"seed: the training run takes seeds up to {MAX_SEED // 2}, got {o.seed}")


@with_options
def check(o) -> CheckResult:
    """The estimators' formulas by Monte Carlo; a tiny Transformer trained and evaluated frozen against the zero
    predictor at k = 2d, with the shuffled-context control; the saved cpu-preset run as notes."""
    from models.training.icl_run import METHODS, paired_below
    from models.utils.device import describe, pick_device

    dev = pick_device(o.device)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    claims, controls, means = formula_findings(o.d, o.samples, o.seed)
    res.claims += claims
    res.controls += controls
    errors, cur, summary = tiny_run(o.d, o.steps, o.seed, dev)
    k = 2 * o.d
    res.claims.append(paired_below(errors, "model", "zero", k, RATE))
    res.controls.append(paired_below(errors, "model, shuffled context", "zero", k, RATE))
    res.table = [{"k": j, **{m: cur[m]["mean"][j] for m in METHODS}} for j in range(2 * o.d + 1)]
    res.notes += [
        f"formulas: {o.samples:,} prompts of 2d + 1 = {2 * o.d + 1} points, d = {o.d}, float64 pseudo-inverses; "
        f"two-sided z-tests at false-alarm {RATE:g}",
        f"tiny learner: models.icl.InContextRegressor, {TINY['n_layer']} layer, {TINY['n_head']} heads, width "
        f"{TINY['n_embd']} ({summary['params']:,} parameters), {o.steps} Adam steps of {TINY['batch']} prompts, "
        f"lr {TINY['lr']:g}, one thread ({summary['median_step_ms']:.1f} ms a step); evaluated frozen on "
        f"{EVAL_PROMPTS:,} new prompts; paired one-sided z-tests at false-alarm {RATE:g}",
        "shuffled context: pair i of prompt b is taken from prompt b + i (mod the batch), so every pair of a "
        "sequence comes from a different function; its error is scored against the shuffled targets",
    ]
    saved = read_saved()
    if saved is None:
        res.notes.append(
            f"no saved cpu-preset run at {SAVED}; make it with python -m models.training.icl_run --preset cpu "
            "--out docs/experiments/icl"
        )
    else:
        rows = "; ".join(
            f"k = {p['k']}: model {p['model']:.3f}, least squares {p['least squares']:.3f}, averaging "
            f"{p['averaging']:.3f}, shuffled {p['model, shuffled context']:.3f}"
            for p in saved["key_points"]
        )
        res.notes.append(
            f"saved run ({saved['preset']} preset, {saved['device']}, d = {saved['settings']['d']}, "
            f"{saved['settings']['iters']} steps, {saved['seconds'] / 60:.1f} min): {rows}"
        )
        res.series["saved"] = saved
    induction = read_json(SAVED_INDUCTION)
    if induction is None:
        res.notes.append(
            f"no saved induction-head run at {SAVED_INDUCTION}; make it with python -m models.training.induction_run "
            "--preset cpu --out docs/experiments/induction"
        )
    else:
        loss = induction["copy_loss"]
        res.notes.append(
            f"induction heads, saved run ({induction['preset']} preset, {induction['device']}, "
            f"{induction['settings']['iters']} steps each, {induction['seconds'] / 60:.1f} min): cross-entropy of "
            f"the repeated half {loss['repeat']['1']['mean']:.3f} nats with 1 attention-only layer, "
            f"{loss['repeat']['2']['mean']:.3f} with 2 (uniform guess {induction['log_vocab']:.3f}); where nothing "
            f"repeats {loss['no repeat']['1']['mean']:.3f} and {loss['no repeat']['2']['mean']:.3f}; its tests: "
            + "; ".join(
                f"{t['claim']}: {'holds' if t['agrees'] else 'rejected'} (z = {t['z']:.1f})" for t in induction["tests"]
            )
        )
        res.series["induction"] = induction
    res.series |= {"curves": cur, "formulas": means}
    return res


def figure(res: CheckResult):
    """The tiny Transformer's error against the number $k$ of in-context examples, beside least squares,
    averaging, the zero predictor and the shuffled-context control, and the saved run's curves."""
    from models.training.icl_run import exact_averaging, exact_least_squares, plot_errors

    o, saved, induction = res.settings, res.series.get("saved"), res.series.get("induction")
    panels = 2 + bool(saved) + bool(induction)
    fig, axes = plotting.subplots(panels, width=5.4 * panels, height=4.4)
    plot_errors(axes[0], res.series["curves"], o.d, f"tiny learner, $d = {o.d}$, {o.steps} steps (check)")
    b = axes[1]
    ks = list(range(2 * o.d + 1))
    for i, (m, f) in enumerate([("least squares", exact_least_squares), ("averaging", exact_averaging)]):
        b.plot(ks, res.series["formulas"][m], "o", color=f"C{i + 1}", ms=4, label=f"{m}, measured")
        b.plot(ks, [f(o.d, k) for k in ks], "-", color=f"C{i + 1}", lw=1, label=f"{m}, exact")
    b.set(xlabel="in-context examples $k$", ylabel=r"squared error at the query $/\, d$", ylim=(-0.03, 2.0))
    b.set_title(plotting.title(res, "the yardsticks by Monte Carlo"), fontsize=9)
    b.legend(fontsize=7)
    if saved:
        plot_errors(axes[2], saved["curves"], saved["settings"]["d"],
                    f"saved {saved['preset']} run, $d = {saved['settings']['d']}$")  # fmt: skip
    if induction:
        loss, ax = induction["copy_loss"], axes[-1]
        names = ["1 layer", "2 layers"]
        for j, kind in enumerate(("repeat", "no repeat")):
            means = [loss[kind][n]["mean"] for n in ("1", "2")]
            errs = [2 * loss[kind][n]["se"] for n in ("1", "2")]
            ax.bar([i + 0.4 * j for i in range(2)], means, 0.4, yerr=errs, label=f"{kind}", color=f"C{j}")
        ax.axhline(induction["log_vocab"], color="C7", ls=":", label=r"uniform guess $\log V$")
        ax.set_xticks([0.2, 1.2], names)
        ax.set(ylabel="cross-entropy of the second half (nats)")
        ax.set_title(f"induction heads: saved {induction['preset']} run (attention only)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Exercise 13.8: in-context learning of linear functions")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

r"""Exercise 13.3: the variance of a dot product grows like $d_k$, hence the $1/\sqrt{d_k}$.

Let $q, k \in \mathbb{R}^{d_k}$ have $2 d_k$ independent components with
$\mathbb{E}[q_i] = \mathbb{E}[k_i] = 0$ and $\mathbb{E}[q_i^2] = \mathbb{E}[k_i^2] = 1$. One term has
$\operatorname{Var}(q_i k_i) = \mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] - (\mathbb{E}[q_i]\,\mathbb{E}[k_i])^2 = 1$,
distinct terms share no variable and are uncorrelated, so by linearity

$$\operatorname{Var}(q \cdot k) = \sum_{i=1}^{d_k} \operatorname{Var}(q_i k_i) = d_k,
\qquad \operatorname{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = 1 .$$

Nothing else about the distribution matters. What rests on what, step by step
(``python -m proofs.dot_product_variance --no-check`` prints them):

* proved by sympy: the one-term facts $\mathbb{E}[q_i k_i] = 0$, $\operatorname{Var}(q_i k_i) = 1$,
  $\operatorname{Cov}(q_i k_i, q_j k_j) = 0$ and the expectation of each index pattern of $(q\cdot k)^4$
  (symbolic moments of independent variables, ``derive.moments.expectation``);
  $\operatorname{Var}(cX) = c^2 \operatorname{Var}(X)$; $\mathbb{E}[(q\cdot k)^2]$ for $d_k = 1..4$ and
  $\mathbb{E}[(q\cdot k)^4]$ for $d_k = 1..3$ by exact expansion; and
  $\sum_P (d)_{|P|} = d^m$ for $m = 1..4$, a polynomial identity in a symbolic $d$;
* a stated lemma, *Lemma (index patterns)*, listed in the derivation's assumptions: expanding
  $\mathbb{E}[(\sum_i q_i k_i)^m]$ over its $d^m$ index tuples, the tuples whose equal indices form a
  set partition $P$ of the $m$ factors number $(d)_{|P|} = d (d-1) \cdots (d-|P|+1)$, the falling
  factorial, and share one expectation. Sympy does not prove this count for a symbolic $d$; the
  derivation checks it exactly by enumerating every tuple for $d = 1..6$, $m = 1..4$ (a proof for
  those $d$ only);
* proved by sympy from that lemma (status *proved from a stated lemma*):
  $\operatorname{Var}(q\cdot k) = d_k$, the scaled $\operatorname{Var}(q\cdot k/\sqrt{d_k}) = 1$ (which uses
  it), $\mathbb{E}[(q\cdot k)^4] = d_k m_{4q} m_{4k} + 3 d_k (d_k - 1)$ and the Gaussian
  $\operatorname{Var}((q\cdot k)^2) = 2 d_k (d_k + 3)$ (which uses that).

So the derivation's status is *proved from a stated lemma*: no step is spot-checked, and nothing
rests on a rule that is not stated. The fourth moment sets the standard error of a sample
variance, $\sqrt{(\mathbb{E}[X^4] - d_k^2)/N}$, and so the sample size the check needs.

The check estimates $\operatorname{Var}(q\cdot k)$ and, from independent draws,
$\operatorname{Var}(q\cdot k/\sqrt{d_k})$ for $d_k = 1, 2, 4, \dots$ with Gaussian, Rademacher and
uniform components (streaming moments, one seeded generator), and compares each with $d_k$
and $1$ by a two-sided z-test at a false-alarm rate of 1e-9 per comparison; a Bonferroni bound
gives the family-wise rate (stated in the notes). Negative controls compare the same estimates
with $d_k^2$ and $\sqrt{d_k}$ and must be rejected; they are skipped at $d_k = 1$, where both
wrong values equal $d_k$.

Decision on sample size: ``check`` raises ``ValueError('samples: ...')`` when ``samples`` is
below the size at which every negative control is rejected with probability at least
``1 - MISS`` (from ``samples_for_power`` with the exact per-sample spread of each distribution);
a check whose controls cannot fail proves nothing, so it is refused rather than run.
"""

from __future__ import annotations

import math

import sympy as sp

from derive.engine import Derivation
from derive.moments import (
    INDEX_LEMMA,
    Var,
    component_moment,
    dot_fourth_moment,
    dot_fourth_moment_steps,
    dot_variance_steps,
    sample_variance_cv,
)
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.dotprod import DISTRIBUTIONS, dot_product_moments
from numeric.stats import compare, samples_for_power, z_for
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.3"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"With independent zero-mean unit-variance components, $\mathrm{Var}(q \cdot k) = "
    r"d_k$, and $\mathrm{Var}(q \cdot k/\sqrt{d_k}) = 1$."
)
DEFAULT_SAMPLES = 10_000
RATE = 1e-9  # false-alarm rate of each comparison
MISS = 1e-6  # allowed probability that one negative control is not rejected
# Time: each distribution draws 2 x 2 x samples x (1 + 2 + ... + max_dk) ~ 4 samples (2 max_dk) floats; measured
# on 2 CPU cores 6 s at the defaults (10^4 x 1,024 x 3) and 15 s at 4 x 10^4, and 393 s at max_dk 2^16 on a loaded
# machine: 1e-7 to 2e-7 s per sample x d_k x distribution (4.5e-8 idle: 22 s at 1.6 x 10^5 samples). Memory: chunks
# of 2^22 floats per tensor (~100 MB).
MAX_DK = 1 << 16
MAX_WORK = 1 << 31  # samples x max_dk x distributions: 3.5 to 7 minutes
MAX_SAMPLES = 600_000
SAMPLES_WHY = "the check's time grows linearly: 1.4 (idle) to 6 s (busy) per 10^4 at the defaults on 2 CPU cores"
OPTIONS = [
    Option(
        "--max-dk",
        int,
        1024,
        "largest d_k; the grid is 1, 2, 4, ..., max-dk (a power of two)",
        lo=2,
        hi=MAX_DK,
        why="time ~ samples x max-dk: 2^16 took 393 s at 10^4 samples on 2 loaded CPU cores",
    ),
    Option("--dists", str, ",".join(DISTRIBUTIONS), "comma-separated component distributions"),
]


def derivation() -> Derivation:
    """Var(q.k) = d_k for a symbolic positive integer d_k, the scaled variance, and E[(q.k)^4]; the steps over
    a symbolic number of terms are proved from the stated Lemma (index patterns), checked exactly for d = 1..6."""
    d = sp.Symbol("d_k", positive=True, integer=True)
    der = Derivation(
        r"Exercise 13.3: $\mathrm{Var}(q \cdot k) = d_k$ and $\mathrm{Var}(q \cdot k/\sqrt{d_k}) = 1$",
        assumptions=[
            r"$q, k \in \mathbb{R}^{d_k}$; their $2 d_k$ components are mutually independent",
            "$E[q_i] = E[k_i] = 0$ and $E[q_i^2] = E[k_i^2] = 1$; third and fourth moments $m_3$, $m_4$ are free "
            "symbols",
            "$d_k$ is a positive integer (symbolic)",
        ],
    )
    dot_variance_steps(der, d)
    i = sp.Symbol("i", integer=True, positive=True)
    x = sp.Sum(sp.IndexedBase("q")[i] * sp.IndexedBase("k")[i], (i, 1, d))
    c, ex, ex2 = sp.symbols("c E[X] E[X^2]", real=True)
    der.eq(
        sp.Function("Var")(c * sp.Symbol("X")),
        c**2 * (ex2 - ex**2),
        r"$\mathrm{Var}(cX) = E[(cX)^2] - E[cX]^2 = c^2\,\mathrm{Var}(X)$, by linearity of expectation",
        "expand",
        computed=c**2 * ex2 - (c * ex) ** 2,
    )
    der.eq(
        Var(x / sp.sqrt(d)),
        1,
        rf"$\mathrm{{Var}}(cX) = c^2\,\mathrm{{Var}}(X)$ with $c = 1/\sqrt{{d_k}}$ and $\mathrm{{Var}}(X) = d_k$, "
        f"which rests on {INDEX_LEMMA}",
        "expand",
        computed=(1 / sp.sqrt(d)) ** 2 * d,
        lemma=INDEX_LEMMA,
    )
    m4q, m4k = sp.symbols("m_4q m_4k", positive=True)
    fourth = dot_fourth_moment_steps(der, d, m4q, m4k)
    der.eq(
        Var(x**2),
        2 * d * (d + 3),
        "for the standard error: Gaussian components ($m_4 = 3$) give $E[X^4] - d_k^2 = 2 d_k (d_k + 3)$, "
        f"with $E[X^4]$ from {INDEX_LEMMA}",
        "expand",
        computed=fourth.subs({m4q: 3, m4k: 3}) - d**2,
        lemma=INDEX_LEMMA,
    )
    return der


def _grid(max_dk: int) -> list[int]:
    if max_dk & (max_dk - 1):
        raise ValueError(f"max_dk: must be a power of two (so the grid is 1, 2, 4, ..., max_dk), got {max_dk}")
    return [2**j for j in range(max_dk.bit_length())]


def _dists(dists: str) -> list[str]:
    names = [s.strip() for s in str(dists).split(",") if s.strip()]
    bad = [s for s in names if s not in DISTRIBUTIONS]
    if not names or bad:
        raise ValueError(f"dists: unknown {bad[:3] or dists!r}; choose from {', '.join(DISTRIBUTIONS)}")
    if len(set(names)) < len(names):
        raise ValueError(f"dists: each at most once (a repeat only repeats the work), got {len(names):,} names")
    return names


def validate(o) -> None:
    """Refuse bad options before any work: the grid, the distributions, and the total work, which
    grows like samples x max_dk x distributions (1e-7 to 2e-7 s each on 2 CPU cores)."""
    grid, names = _grid(o.max_dk), _dists(o.dists)
    work = o.samples * grid[-1] * len(names)
    if work > MAX_WORK:
        raise ValueError(
            f"samples: samples x max_dk x distributions must be at most {MAX_WORK:,} (1e-7 to 2e-7 s each on 2 CPU "
            f"cores: up to 7 minutes), got {o.samples:,} x {grid[-1]:,} x {len(names)} = {work:,}"
        )
    need, where = samples_needed(names, grid)
    if o.samples < need:
        raise ValueError(
            f"samples: need at least {need:,} for the negative controls to be rejected with "
            f"probability >= 1 - {MISS:g} (binding: {where}), got {o.samples:,}"
        )


def wrong_values(d: int) -> dict[str, float]:
    """The plausible wrong answers used as negative controls (both equal d_k at d_k = 1)."""
    return {"d_k^2": float(d * d), "√d_k": math.sqrt(d)}


def samples_needed(dists: list[str], grid: list[int]) -> tuple[int, str]:
    """Fewest samples so that every control is rejected with probability >= 1 - MISS, and where it binds."""
    best = (0, "")
    for dist in dists:
        m4 = component_moment(dist, 4)
        for d in grid[1:]:
            cv = float(sample_variance_cv(d, m4, m4))
            for name, wrong in wrong_values(d).items():
                n = samples_for_power(abs(wrong - d) / d, cv, RATE, MISS)
                best = max(best, (n, f"{dist}, d_k={d}, {name}"))
    return best


@with_options
def check(o) -> CheckResult:
    """Estimate Var(q·k) and Var(q·k/√d_k) on the grid; z-test against d_k and 1; controls d_k^2, √d_k."""
    samples, grid, names = o.samples, _grid(o.max_dk), _dists(o.dists)
    dev = pick_device(o.device)
    need, where = samples_needed(names, grid)
    gen = generator(dev, o.seed)
    res = CheckResult(f"Exercise {NUMBER}: Var(q·k) = d_k", describe(dev), samples, o.seed)
    for dist in names:
        for d in grid:
            est = dot_product_moments(samples, d, gen, dist).variance_estimate()
            scaled = dot_product_moments(samples, d, gen, dist, scale=1 / math.sqrt(d)).variance_estimate()
            m4 = component_moment(dist, 4)
            degenerate = sp.simplify(dot_fourth_moment(d, m4, m4) - d * d) == 0  # X^2 constant: Var(X^2) = 0
            res.claims.append(_agree(est, d, f"{dist} d_k={d}: Var(q·k)", degenerate, samples))
            res.claims.append(_agree(scaled, 1.0, f"{dist} d_k={d}: Var(q·k/√d_k)", degenerate, samples))
            if d > 1:
                res.controls += [
                    compare(est, w, f"{dist} d_k={d}: Var(q·k) = {name}", RATE) for name, w in wrong_values(d).items()
                ]
            res.table.append(
                {
                    "dist": dist,
                    "d_k": d,
                    "estimate": est.value,
                    "stderr": est.stderr,
                    "z": (est.value - d) / est.stderr if est.stderr > 0 else float("nan"),
                    "scaled": scaled.value,
                    "scaled_stderr": scaled.stderr,
                    "scaled_z": (scaled.value - 1) / scaled.stderr if scaled.stderr > 0 else float("nan"),
                }
            )
    m4 = component_moment(names[0], 4)
    resolution = (z_for(RATE) + z_for(2 * MISS)) * float(sample_variance_cv(grid[-1], m4, m4)) / samples**0.5
    res.notes += [
        f"each comparison: two-sided z-test at false-alarm rate {RATE:g} (z = {z_for(RATE):.2f}), "
        f"stderr = sqrt((m4 - s^4)/N) from the sample moments, N = {samples:,} per estimate",
        f"family-wise false-alarm rate <= {len(res.claims)} x {RATE:g} = {len(res.claims) * RATE:.2g} (Bonferroni)",
        f"controls skipped at d_k = 1, where d_k^2 = √d_k = d_k; power: N >= {need:,} rejects each control with "
        f"probability >= 1 - {MISS:g} (binding: {where}); all {len(res.controls)} together miss with "
        f"probability <= {len(res.controls) * MISS:.2g}",
        f"resolution: at d_k = {grid[-1]} ({names[0]}) a relative error of {resolution:.1%} or more "
        f"would be rejected with probability >= 1 - {MISS:g}",
    ]
    if "rademacher" in names:
        res.notes.append(
            "rademacher at d_k = 1: X^2 = 1 exactly, so the z-test's stderr (from Var(X^2) = 0) is degenerate; "
            "there s^2 = N/(N-1) (v - mean^2) and the claim is the bound |s^2 - v| <= v (1 + z^2)/(N - 1), "
            "which holds unless |mean| exceeds z standard errors (probability <= the same rate)"
        )
    return res


def _agree(est, target: float, label: str, degenerate: bool, n: int):
    """A z-test, or where X^2 is constant (the z-test's stderr would be 0) the exact bound on s^2."""
    if not degenerate:
        return compare(est, target, label, RATE)
    return Bound.of(label + " (X^2 constant)", est.value, target, target * (1 + z_for(RATE) ** 2) / (n - 1))


def figure(res: CheckResult):
    r"""Estimated $\mathrm{Var}(q \cdot k)$ and $\mathrm{Var}(q \cdot k/\sqrt{d_k})$ against $d_k$ on log-log axes, with
    $y = d_k$ and $y = 1$."""
    fig, ax = plotting.subplots(width=6, height=4.5)
    grid = sorted({r["d_k"] for r in res.table})
    ax.plot(grid, grid, "k-", lw=1, label="$y = d_k$")
    ax.plot(grid, [1] * len(grid), "k--", lw=1, label="$y = 1$")
    for j, dist in enumerate(sorted({r["dist"] for r in res.table})):
        rows = [r for r in res.table if r["dist"] == dist]
        x = [r["d_k"] * 1.06**j for r in rows]  # small offsets keep markers apart
        ax.errorbar(
            x,
            [r["estimate"] for r in rows],
            [r["stderr"] for r in rows],
            fmt="o",
            ms=4,
            color=f"C{j}",
            label=f"{dist}: $\\mathrm{{Var}}(q \\cdot k)$",
        )
        ax.errorbar(
            x,
            [r["scaled"] for r in rows],
            [r["scaled_stderr"] for r in rows],
            fmt="s",
            ms=4,
            mfc="none",
            color=f"C{j}",
            label=f"{dist}: $\\mathrm{{Var}}(q \\cdot k/\\sqrt{{d_k}})$",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="$d_k$",
        ylabel="variance",
        title=plotting.title(res, f"Exercise {NUMBER}: per point"),
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

r"""Exercise 13.28: without the $1/\sqrt{d_k}$ scaling, softmax goes one-hot as $d_k \to \infty$.

Take $n$ keys $k_1, \dots, k_n$ and a query $q$ in $\mathbb{R}^{d_k}$, all components independent
with mean 0 and variance 1, and scores $s_j = q \cdot k_j$, so $\operatorname{Var}(s_j) = d_k$
(Exercise 13.3). Given $q$, the scores are i.i.d. with spread $\|q\| \approx \sqrt{d_k}$, so the
gaps to the largest score $a$ grow like $s_a - s_j = \sqrt{d_k}\, g_j$ with $g_j > 0$ of a
distribution that settles as $d_k$ grows (the gaps of $n$ i.i.d. standard normals, by the CLT).
Dividing the softmax by $e^{s_a}$,

$$p_a = \frac{1}{1 + \sum_{j \ne a} e^{-\sqrt{d_k}\, g_j}} \to 1, \qquad
p_j = e^{-\sqrt{d_k}\, g_j}\, p_a \to 0, \qquad
J = \operatorname{diag}(p) - p p^\top \to 0,$$

so attention becomes a hard argmax and its gradient vanishes. With the scaling the gaps are
$g_j$ themselves, $p_a = 1/(1 + \sum_j e^{-g_j}) < 1$ whatever $d_k$, and $J$ stays of order one.
The derivation proves these limits with sympy for four keys and the vanishing of the
remainder for any number $m$ of other keys (bounding every gap below by the smallest).

The check draws $q$ and $n$ keys once per sample at the largest $d_k$ and reads off the scores
at every $d_k$ of the grid from the leading coordinates (nested, so successive values are
paired); it streams the mean of $\max_j p_j$ and of $\|J\|_F$ for both scalings. Claims, each a
z-test at false-alarm rate 1e-9: unscaled $\mathbb{E}[\max p]$ rises and $\mathbb{E}\|J\|_F$ falls at
every step of the grid (one-sided, paired differences), and $1 - \mathbb{E}[\max p] <$ ``within`` at
the largest $d_k$; scaled $\mathbb{E}[\max p]$ no longer changes between the last two grid points and
equals its $d_k \to \infty$ limit $\mathbb{E}[\max \operatorname{softmax}(z)]$, $z \sim N(0, I_n)$,
estimated independently. (At the smallest $d_k$ the scaled weight is slightly lower, a finite-$d_k$
effect, so the no-trend claim uses the last step, not the whole grid.) Negative controls, which
must be rejected: the scaled softmax also goes one-hot; the unscaled softmax does not sharpen;
the scaled Jacobian also vanishes.
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from derive.engine import Derivation
from models.utils.device import describe, generator, pick_device
from numeric.check import CheckResult
from numeric.dotprod import DISTRIBUTIONS, components
from numeric.montecarlo import Moments, stream
from numeric.stats import Estimate, compare, one_sided, samples_for_power, z_for
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.28"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Without the $1/\sqrt{d_k}$ scaling, $\mathrm{softmax}(q \cdot k_j)$ tends to one-hot "
    r"at the argmax as $d_k$ grows, its Jacobian to 0."
)
DEFAULT_SAMPLES = 4096
MIN_SAMPLES = 100  # below this the normal approximation of a mean is not trusted (the kit refuses fewer)
MIN_SAMPLES_WHY = "for the normal approximation"
RATE = 1e-9  # false-alarm rate of each comparison
MISS = 1e-6  # allowed probability that a negative control is not rejected (for the power note)
LIMIT_FACTOR = 16  # the d_k -> oo limit is estimated from LIMIT_FACTOR x samples Gaussian draws
# Time: every sample draws keys x max_dk components (plus a query); measured on 2 CPU cores 3.3 s at the defaults
# (4,096 x 16 x 1,024), 12 s at 16,384 samples, 112 s at max_dk 4^7 with 8,192 samples and 240 s at 4^8 with 4,096:
# 4.4e-8 to 5.6e-8 s per sample x key x d_k, so MAX_WORK = 2^33 takes 6 to 8 minutes. At 4^8 no sample count within
# that passes: the last step's rise (~0.003) needs ~25,000 samples for the controls' power, so the grid stops at 4^7.
# Memory: chunks of 2^22 floats per key tensor, but at least one sample: keys x max_dk floats (at most 1,024 x 4^7 =
# 2^24, 64 MB, a few copies); the limit's chunks are 2^16 x keys float64 (1,024 keys: 0.5 GB, a few copies).
MAX_DK, MAX_KEYS, MAX_WORK = 4**7, 1024, 1 << 33
MAX_SAMPLES = 500_000
SAMPLES_WHY = "the check's time grows linearly: 0.14 (idle) to 0.9 s (busy) per 10^3 at the defaults on 2 CPU cores"
OPTIONS = [
    Option(
        "--max-dk",
        int,
        1024,
        "largest d_k; the grid is 4, 16, 64, ..., max-dk (a power of 4)",
        lo=16,
        hi=MAX_DK,
        why="time ~ samples x keys x max-dk: 4^7 at 8,192 samples, 16 keys takes 2 minutes on 2 CPU cores and passes; "
        "4^8 would need ~25,000 samples, ~25 minutes",
    ),
    Option(
        "--keys",
        int,
        16,
        "number n of keys",
        lo=2,
        hi=MAX_KEYS,
        why="the limit's chunks of 2^16 x keys float64: 1,024 keys need 0.5 GB per copy",
    ),
    Option(
        "--within",
        float,
        0.1,
        "claimed bound on 1 - E[max p] unscaled at the largest d_k, in (0, 1) (fails on a short grid)",
        lo=0.0,
        hi=1.0,
    ),
    Option("--dist", str, "gaussian", f"component distribution ({', '.join(DISTRIBUTIONS)})", choices=DISTRIBUTIONS),
]


def derivation() -> Derivation:
    """The max weight, the other weights and the Jacobian tend to one-hot / 0 unscaled; not when scaled."""
    d = sp.Symbol("d_k", positive=True)
    s = sp.symbols("s_a s_1:4", real=True)
    g = sp.symbols("g_1:4", positive=True)
    der = Derivation(
        r"Exercise 13.28: unscaled softmax tends to one-hot as $d_k \to \infty$",
        assumptions=[
            "$n$ keys, fixed ($n = 4$ below: the argmax $a$ and three others; any number $m$ of others in step 5)",
            r"$q$ and $k_1, \dots, k_n$ independent, components i.i.d. with mean 0 and variance 1; "
            r"$s_j = q \cdot k_j$ has $\mathrm{Var}(s_j) = d_k$",
            "the argmax $a$ is unique almost surely",
            r"gaps $s_a - s_j = \sqrt{d_k}\, g_j$ with $g_j > 0$ of a fixed distribution given $q$'s direction",
        ],
    )
    soft = sp.exp(s[0]) / sum(sp.exp(x) for x in s)
    der.eq(
        soft, 1 / (1 + sum(sp.exp(x - s[0]) for x in s[1:])), "divide numerator and denominator by $e^{s_a}$", "cancel"
    )
    gaps = {s[j + 1]: s[0] - sp.sqrt(d) * g[j] for j in range(3)}
    p_a = 1 / (1 + sum(sp.exp(-sp.sqrt(d) * x) for x in g))
    p_1 = sp.exp(-sp.sqrt(d) * g[0]) * p_a
    der.eq(soft.subs(gaps), p_a, r"unscaled scores: gaps grow like $\sqrt{d_k}\, g_j$", "cancel")
    der.limit(p_a, d, sp.oo, 1, r"each $e^{-\sqrt{d_k}\, g_j} \to 0$ since $g_j > 0$, so the max weight $\to 1$")
    der.limit(
        p_1,
        d,
        sp.oo,
        0,
        r"each other weight $p_j = e^{-\sqrt{d_k}\, g_j} p_a \to 0$ (shown for $j = 1$, alike for all)",
    )
    m, gmin, r = sp.symbols("m g_min r", positive=True)
    der.holds(
        r / (1 + r), "<=", r, r"any $m$ other keys: with $r = \sum_j e^{-\sqrt{d_k}\, g_j}$, $1 - p_a = r/(1+r) \le r$"
    )
    der.limit(
        m * sp.exp(-sp.sqrt(d) * gmin),
        d,
        sp.oo,
        0,
        r"$r \le m\, e^{-\sqrt{d_k}\, g_\mathrm{min}}$ with $g_\mathrm{min} = \min_j g_j > 0$, which $\to 0$: "
        r"$p_a \to 1$ for any number of keys",
    )
    p = sp.symbols("p_1:5", positive=True)
    pv = sp.Matrix(p)
    jac = sp.diag(*p) - pv * pv.T
    der.eq(
        jac * sp.ones(4, 1),
        sp.zeros(4, 1),
        r"softmax Jacobian $J = \mathrm{diag}(p) - p\,p^T$; rows sum to 0 as $\sum p = 1$",
        "expand",
        computed=(jac * sp.ones(4, 1)).subs(p[3], 1 - p[0] - p[1] - p[2]),
    )
    fro = sum(x**2 for x in jac)
    sq, cube = sum(x**2 for x in p), sum(x**3 for x in p)
    der.eq(
        sp.Function("norm_F")(sp.Symbol("J")) ** 2,
        sq - 2 * cube + sq**2,
        r"entrywise: $\|J\|_F^2 = \sum p^2 - 2\sum p^3 + (\sum p^2)^2$ (used by the check)",
        "expand",
        computed=fro,
    )
    der.limit(p_a * p_1, d, sp.oo, 0, r"off-diagonal entries $-p_a p_j \to 0$")
    p_2, p_3 = (sp.exp(-sp.sqrt(d) * x) * p_a for x in g[1:])
    der.limit(p_2 * p_3, d, sp.oo, 0, r"off-diagonal entries $-p_j p_l \to 0$ ($j, l \ne a$)")
    der.limit(
        p_1 * (1 - p_1),
        d,
        sp.oo,
        0,
        r"diagonal $p_j(1 - p_j) \to 0$; $J_{aa} = -\sum_{j \ne a} J_{aj} \to 0$ by the row sums: $J \to 0$",
    )
    der.eq(
        soft.subs({x: x / sp.sqrt(d) for x in s}, simultaneous=True).subs(gaps),
        1 / (1 + sum(sp.exp(-x) for x in g)),
        r"scaled scores $s/\sqrt{d_k}$: the gaps are $g_j$, with no $d_k$ left",
        "cancel",
    )
    u = sp.symbols("u_1:4", positive=True)
    w = 1 / (1 + sum(u))
    der.holds(w, "<", 1, "with $u_j = e^{-g_j} > 0$ the scaled max weight stays below 1 for every $d_k$")
    der.holds(w * (1 - w), ">", 0, "and the scaled Jacobian entry $J_{aa} = p_a(1 - p_a)$ stays positive")
    return der


# -- the Monte Carlo check -------------------------------------------------------------------------


def _grid(max_dk: int) -> list[int]:
    if max_dk.bit_length() % 2 == 0 or max_dk & (max_dk - 1):
        raise ValueError(f"max_dk: must be a power of 4 >= 16 (the grid 4, 16, ... needs two points), got {max_dk}")
    return [4**j for j in range(1, (max_dk.bit_length() + 1) // 2)]


def validate(o) -> None:
    """Refuse bad options before any work: the grid, the open interval of ``within``, enough samples for
    the normal approximation, and the work samples x keys x max_dk (4.4e-8 to 5.6e-8 s each)."""
    _grid(o.max_dk)
    if not 0 < o.within < 1:
        raise ValueError(f"within: must lie in (0, 1), got {o.within}")
    if o.samples * o.keys * o.max_dk > MAX_WORK:
        raise ValueError(
            f"samples: samples x keys x max_dk must be at most {MAX_WORK:,} (4.4e-8 to 5.6e-8 s each on 2 CPU cores: "
            f"up to 8 minutes), got {o.samples:,} x {o.keys:,} x {o.max_dk:,}"
        )


def _softmax_stats(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max_j p_j and ‖diag(p) - p p^T‖_F per row, in float64 (closed form from the derivation)."""
    p = torch.softmax(scores.double(), -1)
    sq, cube = (p * p).sum(-1), (p**3).sum(-1)
    return p.amax(-1), (sq - 2 * cube + sq * sq).clamp_min(0).sqrt()


def measure(
    samples: int, grid: list[int], keys: int, gen: torch.Generator, dist: str, chunk: int | None = None
) -> dict[tuple[str, int], Moments]:
    """Streaming moments keyed ``(stat, d_k)``: ``w``, ``ws`` (max weight unscaled, scaled), ``J``, ``Js``
    (Jacobian norm), ``dw``, ``dJ``, ``dws`` (paired change from the previous grid point) and ``span``
    (``w`` at d_k minus ``w`` at the first grid point). One draw per sample serves every d_k (nested)."""
    budget = 1 << (26 if gen.device.type == "cuda" else 22)  # floats per key tensor: fewer launches on a GPU
    chunk = chunk or max(1, budget // (keys * grid[-1]))
    acc: dict[tuple[str, int], Moments] = {}
    done = 0
    while done < samples:
        c = min(chunk, samples - done)
        s = torch.zeros(c, keys, device=gen.device)
        prev, first, last = 0, None, None
        for d in grid:
            q, k = components((c, 1, d - prev), gen, dist), components((c, keys, d - prev), gen, dist)
            s = s + (q * k).sum(-1)  # (c, keys): scores with the first d coordinates
            prev = d
            now = dict(zip(("w", "J"), _softmax_stats(s))) | dict(zip(("ws", "Js"), _softmax_stats(s / math.sqrt(d))))
            first = first or now
            stats = dict(now)
            if last is not None:
                stats |= {
                    "dw": now["w"] - last["w"],
                    "dJ": now["J"] - last["J"],
                    "dws": now["ws"] - last["ws"],
                    "span": now["w"] - first["w"],
                }
            for name, x in stats.items():
                acc[name, d] = acc.get((name, d), Moments()).merge(Moments.of(x))
            last = now
        done += c
    return acc


def limit_weight(samples: int, keys: int, gen: torch.Generator) -> Estimate:
    """E[max softmax(z)] with z ~ N(0, I_keys): the scaled max weight as d_k → ∞ (CLT)."""
    draw = lambda m, g: torch.softmax(torch.randn((m, keys), generator=g, device=g.device, dtype=torch.float64), -1)
    return stream(lambda m, g: draw(m, g).amax(-1), samples, gen).mean_estimate()


@with_options
def check(o) -> CheckResult:
    """Monte Carlo over the d_k grid: trends, the bound at the largest d_k, the scaled limit, and controls."""
    samples, keys, within, dist, grid = o.samples, o.keys, o.within, o.dist, _grid(o.max_dk)
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    m = measure(samples, grid, keys, gen, dist)
    lim = limit_weight(LIMIT_FACTOR * samples, keys, gen)
    e = {k: v.mean_estimate() for k, v in m.items()}
    top, prev, low = grid[-1], grid[-2], grid[0]
    res = CheckResult(
        f"Exercise {NUMBER}: unscaled softmax tends to one-hot ({dist}, n = {keys})", describe(dev), samples, o.seed
    )
    for a, b in zip(grid, grid[1:]):
        res.claims.append(one_sided(e["dw", b], ">", 0, f"unscaled E[max p] rises from d_k={a} to {b}"))
        res.claims.append(one_sided(e["dJ", b], "<", 0, f"unscaled E‖J‖_F falls from d_k={a} to {b}"))
    w, label = e["w", top], f"unscaled 1 - E[max p] at d_k={top} below the stated {within:g}"
    res.claims.append(one_sided(Estimate(1 - w.value, w.stderr, w.n), "<", within, label))
    res.claims.append(compare(e["dws", top], 0.0, f"scaled E[max p] change from d_k={prev} to {top}", RATE))
    # its control, which also guards its power: the scaled change is not as large as the unscaled one
    dw = e["dw", top].value
    label = f"scaled E[max p] changes from d_k={prev} to {top} by the unscaled amount {dw:.4f}"
    res.controls.append(compare(e["dws", top], dw, label, RATE))
    ws = e["ws", top]
    gap = Estimate(ws.value - lim.value, math.hypot(ws.stderr, lim.stderr), ws.n)
    res.claims.append(compare(gap, 0.0, f"scaled E[max p] at d_k={top} minus its d_k→∞ limit {lim.value:.4f}", RATE))
    res.controls += [
        compare(ws, 1.0, f"scaled softmax also goes one-hot: E[max p] at d_k={top}", RATE),
        compare(
            e["span", top], 0.0, f"unscaled softmax does not sharpen: E[max p](d_k={top}) - E[max p](d_k={low})", RATE
        ),
        compare(e["Js", top], 0.0, f"scaled Jacobian also vanishes: E‖J‖_F at d_k={top}", RATE),
    ]
    cols = [(f"{k}{t}", k, f) for k in ("w", "ws", "J", "Js") for t, f in (("", "value"), ("_se", "stderr"))]
    res.table += [{"d_k": d} | {c: getattr(e[k, d], f) for c, k, f in cols} for d in grid]
    res.table.append({"d_k": "∞", "ws": lim.value, "ws_se": lim.stderr})
    res.notes += _notes(res, e, grid, samples, lim)
    return res


def _notes(res: CheckResult, e, grid, samples, lim) -> list[str]:
    top, prev = grid[-1], grid[-2]
    sd = {c.claim: c.stderr * math.sqrt(samples) for c in res.controls}  # per-sample spread
    need = max(
        samples_for_power(abs(c.claimed - c.estimate) / abs(c.estimate), sd[c.claim] / abs(c.estimate), RATE, MISS)
        for c in res.controls
    )
    w1, w2 = e["w", prev], e["w", top]
    slope = math.log((1 - w2.value) / (1 - w1.value)) / math.log(top / prev)
    slope_se = math.hypot(w1.stderr / (1 - w1.value), w2.stderr / (1 - w2.value)) / math.log(top / prev)
    return [
        f"N = {samples:,} samples per d_k (nested draws, so differences are paired); the limit from "
        f"{lim.n:,} independent Gaussian draws; stderr = sd/sqrt(N) from streaming moments",
        f"each test at false-alarm rate {RATE:g} (two-sided z = {z_for(RATE):.2f}, one-sided {z_for(2 * RATE):.2f}); "
        f"family-wise <= {len(res.claims)} x {RATE:g} = {len(res.claims) * RATE:.2g} (Bonferroni)",
        f"power: from the observed spread, N >= {need:,} rejects each control with probability >= 1 - {MISS:g}",
        f"slope of log(1 - E[max p]) vs log d_k between d_k={prev} and {top}: {slope:.3f} ± {slope_se:.3f} "
        "(heuristic -1/2: the top gap has a positive density at 0; not a claim)",
    ]


def figure(res: CheckResult):
    """Mean largest softmax weight and mean Frobenius norm of the softmax's Jacobian with respect to the logits,
    against $d_k$, unscaled and scaled, from the check's table: unscaled, the weights go one-hot and the gradient
    through the softmax vanishes."""
    rows = [r for r in res.table if r["d_k"] != "∞"]
    x = [r["d_k"] for r in rows]
    fig, (a1, a2) = plotting.subplots(2, width=10, height=4)
    panels = (
        (a1, "w", "largest weight $E[\\max_i p_i]$", "mean largest softmax weight"),
        (a2, "J", "$E\\|\\partial p / \\partial s\\|_F$", "Jacobian of the softmax w.r.t. the logits $s$"),
    )
    for ax, key, ylabel, title in panels:
        for k, label in ((key, "unscaled $s = q \\cdot k$"), (key + "s", "scaled $s = q \\cdot k / \\sqrt{d_k}$")):
            ax.errorbar(x, [r[k] for r in rows], [r[k + "_se"] for r in rows], fmt="o-", ms=4, capsize=2, label=label)
        ax.set(xscale="log", xlabel="$d_k$", ylabel=ylabel, title=title)
    a1.axhline(1.0, color="k", lw=0.8, ls=":", label="one-hot")
    a1.axhline(res.table[-1]["ws"], color="C1", lw=0.8, ls="--", label="scaled limit $d_k\\to\\infty$")
    a2.axhline(0.0, color="k", lw=0.8, ls=":", label="no gradient")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.suptitle(plotting.title(res, f"Exercise {NUMBER}: per point"), fontsize=9)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

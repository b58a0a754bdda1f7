"""Exercise 13.30: multi-head attention with $h$ heads has $4d^2$ weights, whatever $h$ is.

Head $i$ has its own query, key and value maps $W_Q^i, W_K^i, W_V^i$, each $d \\times d_k$ with
$d_k = d/h$ (the assumption that $h$ divides $d$), so one head holds $3d \\cdot d/h = 3d^2/h$ weights.
Summing over the $h$ heads gives $h \\cdot 3d^2/h = 3d^2$: more heads means narrower heads, and the
product stays the same. The heads' outputs are concatenated back to width $h d_k = d$ and mixed by
$W_O$, one $d \\times d$ matrix, so

$$P_\\mathrm{MHA} = \\sum_{i=1}^{h} 3\\frac{d^2}{h} + d^2 = 4d^2,
\\qquad \\frac{\\partial P_\\mathrm{MHA}}{\\partial h} = 0,$$

and with a bias on each of the four maps ($3d/h$ per head, $d$ for the output) $4d^2 + 4d$.
Implementations fuse the per-head matrices into one $d \\times 3d$ projection, which changes
nothing in the count. The claim is about standard multi-head attention: with grouped-query
attention (GQA), $h_\\mathrm{kv} < h$ key/value heads are shared by the query heads, and
$P_\\mathrm{GQA} = 2d^2 + 2d \\cdot h_\\mathrm{kv} d/h$ does depend on $h$ (multi-query attention,
$h_\\mathrm{kv} = 1$, has $2d^2 + 2d^2/h$).

The check counts the parameters of ``torch.nn.MultiheadAttention(d, h)`` and of the project's
``models.gpt.CausalSelfAttention``, with and without biases, for several widths and every $h$ that
divides them, plus seeded random $(d, h)$ pairs, and compares each integer count with the formula
exactly (tolerance 0). The same comparison rejects plausible wrong formulas ($4d^2/h$,
$3d^2 + d^2 h$, $4d^2 h$, and $4d^2$ for the biased modules) and shows that GQA/MQA modules do not
have $4d^2 + 4d$ parameters while they do match their own formula.
"""

from __future__ import annotations

import sympy as sp
import torch

from derive import counts
from derive.counts import d, h, h_kv
from derive.engine import Derivation
from models.gpt import CausalSelfAttention, GPTConfig
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.sizes import int_list
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.30"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Multi-head attention has $4 d^2$ weights ($4 d^2 + 4 d$ with biases) for every number of heads $h$ dividing $d$."
)
DEFAULT_SAMPLES = 8  # random (d, h) pairs counted on top of the grid of widths and all their divisors
OPTIONS = [
    Option("--d", str, "64,96,128,512", "comma-separated model widths d"),
    Option("--heads", str, "", "comma-separated head counts (each must divide every d; empty: all divisors)"),
]
MAX_D = 2048
MAX_COUNT = 16  # widths (and head counts) listed: each width builds 4 modules per head count plus the GQA ones
# Time: building the modules dominates, about 5e-9 s per weight built on 2 CPU cores (measured: d = 2048, all 12
# divisors and 66 GQA pairs, 3.0e9 weights in 14 s; d = 1680, 40 divisors, 1.0e10 in 37 s). MAX_WEIGHTS = 8e10
# built weights take ~7 minutes.
MAX_WEIGHTS = 8 * 10**10
RANDOM_D = 256  # random widths are drawn from 1..RANDOM_D
# each random (d, h) builds 4 modules of at most 4 x 256^2 weights: measured 2.5 s at 1,024, 9.9 s at 4,096 and 34 s
# at 16,384 samples on 2 idle CPU cores, ~2 ms each; every sample also keeps a table row (~1 kB)
MAX_SAMPLES = 50_000
SAMPLES_WHY = (
    "the check's time grows linearly: ~2 ms per sample on 2 idle CPU cores (50,000: ~2 minutes), a table row each"
)
WRONG = {  # plausible wrong formulas for the bias-free count
    "4 d^2 / h": lambda dd, hh: 4 * dd * dd / hh,
    "3 d^2 + d^2 h": lambda dd, hh: 3 * dd * dd + dd * dd * hh,
    "4 d^2 h": lambda dd, hh: 4 * dd * dd * hh,
}
NOTES = [
    "counts are exact integers; every comparison has tolerance 0",
    "'worst' reports the (d, h) with the largest |count - formula|; a control is rejected when even "
    "the closest config differs",
    f"random (d, h): d uniform in 1..{RANDOM_D} and h a uniform divisor of d, from the seeded generator",
    "columns: torch = nn.MultiheadAttention, gpt = gpt.CausalSelfAttention; +b with biases; "
    "3d^2/h = W_Q^i, W_K^i, W_V^i of one head",
]
WHY = {"d": "4 d^2 weights per module, built for every divisor: 2,048 takes ~15 s", "heads": "each must divide every d"}


def divisors(n: int) -> list[int]:
    """Every positive divisor of ``n``, in increasing order."""
    return [k for k in range(1, n + 1) if n % k == 0]


def _sizes(o, name: str) -> list[int]:
    """The widths asked for (``name`` "d", at least one) or the head counts ("heads"; none: every divisor)."""
    out = int_list(
        name, getattr(o, name), MAX_D, WHY[name], max_count=MAX_COUNT, count_why="each builds its own modules"
    )
    if name == "d" and not out:
        raise ValueError("d: give at least one width")
    return out


def weights_built(ds: list[int], hs: list[int], samples: int) -> int:
    """Weights the check builds: per width, 4 modules of ~4 d^2 per head count, 2 GQA modules per (h, h_kv < h),
    and 4 modules of 4 d^2 per random sample, E[d^2] ~ RANDOM_D^2 / 3 (the time is proportional to it)."""
    total = 0
    for dd in ds:
        hl = hs or divisors(dd)
        total += 4 * dd * dd * (4 * len(hl) + 2 * sum(len(divisors(hh)) - 1 for hh in hl))
    return total + samples * 16 * RANDOM_D * RANDOM_D // 3


def validate(o) -> None:
    """Every head count must divide every width, and the weights the check builds (its time) are bounded."""
    ds, hs = _sizes(o, "d"), _sizes(o, "heads")
    for hh in hs:
        for dd in ds:
            if dd % hh:
                raise ValueError(f"heads: {hh} does not divide d={dd}")
    n = weights_built(ds, hs, o.samples)
    if n > MAX_WEIGHTS:
        raise ValueError(
            f"d: the check would build {n:.3g} weights (4 d^2 per module, every divisor h of every d and "
            f"every GQA pair); at most {MAX_WEIGHTS:.0g} (~5e-9 s each on 2 CPU cores: ~7 minutes); "
            "give fewer or smaller widths, --heads, or fewer --samples"
        )


# -- the derivation ------------------------------------------------------------------------------


def derivation() -> Derivation:
    """Sum the heads' 3 d^2 / h and add W_O: 4 d^2 (+ 4 d with biases) for symbolic d and h, free of h;
    beside it grouped-query attention, whose count depends on h unless h_kv = h."""
    i = sp.Symbol("i", positive=True, integer=True)
    P = sp.Function("P")
    head = counts.attention_head_params(d, h)
    heads, biases = sp.Sum(head, (i, 1, h)), sp.Sum(3 * d / h, (i, 1, h))
    mha, withb = counts.attention_params(d, h, bias=False), counts.attention_params(d, h, bias=True)
    gqa = counts.attention_params(d, h, bias=False, n_kv=h_kv)
    dx = Derivation(
        "Exercise 13.30: multi-head attention has $4 d^2$ parameters for every $h$",
        assumptions=[
            "$d$, $h$ positive integers and $h$ divides $d$ (checked on inputs, not by sympy); $d_k = d / h$",
            r"head $i$ has $W_Q^i, W_K^i, W_V^i$ ($d \times d_k$ each); $W_O$ is $d \times d$",
            r"GQA: $h_\mathrm{kv}$ key/value heads ($h_\mathrm{kv}$ divides $h$), each $d \times d_k$ "
            "for $K$ and for $V$",
        ],
    )
    dx.eq(sp.Symbol("P_Q,i"), d**2 / h, r"one head's query map is $d \times d/h$", "cancel", d * counts.head_dim(d, h))
    dx.eq(sp.Symbol("P_head"), 3 * d**2 / h, "$W_Q^i, W_K^i, W_V^i$ together: $3 d^2 / h$ per head", "cancel", head)
    dx.eq(heads, 3 * d**2, r"sum over the $h$ heads: $h \cdot 3 d^2 / h$", "cancel", heads.doit())
    dx.eq(P(h), 4 * d**2, r"add $W_O$ ($d \times d$) acting on the concatenated heads", "expand", heads.doit() + d * d)
    dx.eq(
        P(h),
        mha,
        "the same count as the project's formula in derive.counts (attention parameters, no biases)",
        "expand",
        4 * d**2,
    )
    dx.eq(sp.Derivative(P(h), h), 0, "independent of $h$", "exact", sp.diff(mha, h))
    dx.eq(biases + d, 4 * d, "biases: $3 d/h$ per head ($Q$, $K$, $V$) and $d$ for $W_O$", "cancel", biases.doit() + d)
    dx.eq(P(h), 4 * d**2 + 4 * d, "with biases: $4 d^2 + 4 d$, still free of $h$", "expand", withb)
    dx.eq(sp.Derivative(P(h), h), 0, "with biases, independent of $h$", "exact", sp.diff(withb, h))
    gqa_count = 2 * d**2 + 2 * d * h_kv * d / h
    dx.eq(
        P(h, h_kv),
        gqa_count,
        r"GQA: $W_Q$ and $W_O$ $d \times d$, $W_K$ and $W_V$ $d \times h_\mathrm{kv} d_k$",
        "cancel",
        gqa,
    )
    saved = 2 * d**2 * (1 - h_kv / h)
    dx.eq(
        P(h) - P(h, h_kv),
        saved,
        r"GQA saves $2 d^2 (1 - h_\mathrm{kv}/h)$: zero only if $h_\mathrm{kv} = h$",
        "cancel",
        mha - gqa,
    )
    dx.eq(P(h, h), 4 * d**2, r"$h_\mathrm{kv} = h$ is standard multi-head attention", "expand", gqa.subs(h_kv, h))
    mqa = sp.diff(gqa.subs(h_kv, 1), h)
    dx.eq(
        sp.Derivative(P(h, 1), h),
        -2 * d**2 / h**2,
        r"MQA ($h_\mathrm{kv} = 1$): $2 d^2 + 2 d^2/h$ depends on $h$",
        "cancel",
        mqa,
    )
    return dx


# -- the check -----------------------------------------------------------------------------------


def n_params(module: torch.nn.Module) -> int:
    """The number of parameters (weights and biases) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def torch_mha(dd: int, hh: int, bias: bool, dev) -> int:
    """Parameters of ``torch.nn.MultiheadAttention(dd, hh, bias=bias)`` built on ``dev``."""
    with dev:
        return n_params(torch.nn.MultiheadAttention(dd, hh, bias=bias))


def project_attention(dd: int, hh: int, bias: bool, dev, n_kv: int | None = None) -> int:
    """Parameters of the project's ``CausalSelfAttention`` (width ``dd``, ``hh`` heads, ``n_kv`` KV heads)."""
    cfg = GPTConfig(block_size=1, vocab_size=1, n_layer=1, n_head=hh, n_embd=dd, n_kv_head=n_kv, bias=bias)
    with dev:
        return n_params(CausalSelfAttention(cfg))


def formula(dd: int, hh: int, bias: bool, n_kv: int | None = None) -> int:
    """The count of derive.counts.attention_params at integers, as an int (AssertionError if not one)."""
    e = counts.attention_params(dd, hh, bias, n_kv)
    if not e.is_integer:
        raise AssertionError(f"count {e} is not an integer")
    return int(e)


MODULES = {  # name -> (table column, parameter counter)
    "nn.MultiheadAttention": ("torch", torch_mha),
    "gpt.CausalSelfAttention": ("gpt", project_attention),
}


def _configs(ds, hs, samples, gen, dev) -> list[tuple[int, int, str]]:
    grid = [(dd, hh, "grid") for dd in ds for hh in (hs or divisors(dd))]
    rd = torch.randint(1, RANDOM_D + 1, (samples,), generator=gen, device=dev).tolist()
    ri = torch.randint(0, 1 << 30, (samples,), generator=gen, device=dev).tolist()
    rand = [(dd, divisors(dd)[k % len(divisors(dd))], "random") for dd, k in zip(rd, ri)]
    return grid + rand


def _count(res: CheckResult, configs, dev) -> dict:
    """Count every module with and without biases at each (d, h); one table row per config.
    Returns {(module, bias, d, h): count}."""
    counted = {}
    for dd, hh, src in configs:
        row = {"d": dd, "h": hh, "d_k": dd // hh, "src": src, "3d^2/h": int(counts.attention_head_params(dd, hh))}
        for name, (col, fn) in MODULES.items():
            for b in (True, False):
                counted[name, b, dd, hh] = fn(dd, hh, b, dev)
                row[col + ("+b" if b else "")] = counted[name, b, dd, hh]
        row["4d^2+4d"], row["4d^2"] = formula(dd, hh, True), formula(dd, hh, False)
        res.table.append(row)
    return counted


def _mha_findings(res: CheckResult, counted: dict, configs) -> None:
    """Claims: each module equals 4 d^2 (+ 4 d) for every h of each width and at the random pairs.
    Controls: the wrong formulas at h > 1, and 4 d^2 for the biased modules."""

    def worst(name, b, pairs, target):
        """The (count, target) pair with the largest |count - target| over ``pairs`` of (d, h)."""
        vals = [(counted[name, b, dd, hh], target(dd, hh)) for dd, hh in pairs]
        return max(vals, key=lambda v: abs(v[0] - v[1]))

    for name in MODULES:
        for b in (True, False):
            label = "4 d^2 + 4 d" if b else "4 d^2"
            for dd in sorted({c[0] for c in configs if c[2] == "grid"}):
                pairs = [(dd, hh) for d2, hh, s in configs if s == "grid" and d2 == dd]
                got, want = worst(name, b, pairs, lambda x, y, b=b: formula(x, y, b))
                hh_list = ",".join(str(p[1]) for p in pairs)
                res.claims.append(
                    Bound.of(f"{name}(d={dd}, bias={b}) = {label} for h in {{{hh_list}}} (worst h)", got, want, 0)
                )
            rpairs = [(dd, hh) for dd, hh, s in configs if s == "random"]
            got, want = worst(name, b, rpairs, lambda x, y, b=b: formula(x, y, b))
            res.claims.append(
                Bound.of(f"{name}(bias={b}) = {label} at {len(rpairs)} random (d, h) (worst)", got, want, 0)
            )
    all_pairs = [(dd, hh) for dd, hh, _ in configs]
    multi = [(dd, hh) for dd, hh in all_pairs if hh > 1]  # at h = 1 every wrong formula gives 4 d^2 too
    for name in MODULES:
        for wname, wf in WRONG.items() if multi else ():
            got, want = worst(name, False, multi, wf)
            res.controls.append(Bound.of(f"{name}(bias=False) = {wname} (worst over all (d, h > 1))", got, want, 0))
        got, want = worst(name, True, all_pairs, lambda x, y: formula(x, y, False))
        res.controls.append(Bound.of(f"{name}(bias=True) = 4 d^2 (biases forgotten)", got, want, 0))
    if not multi:
        res.notes.append("no (d, h) with h > 1: the wrong formulas 4d^2/h, 3d^2 + d^2 h, 4d^2 h equal 4d^2 at h = 1")


def _gqa_findings(res: CheckResult, ds: list[int], hs: list[int], dev) -> None:
    """Grouped-query attention: its own formula agrees, and 4 d^2 (+ 4 d) is rejected for every h_kv < h.
    Keeps the MQA counts (h_kv = 1, no biases) for the figure in ``res.series["mqa"]``."""
    mqa = res.series.setdefault("mqa", {})
    for dd in ds:
        gqa = [(hh, kv) for hh in (hs or divisors(dd)) for kv in divisors(hh) if kv < hh]
        for b in (True, False) if gqa else ():
            got = {(hh, kv): project_attention(dd, hh, b, dev, kv) for hh, kv in gqa}
            if not b:
                mqa |= {(dd, hh): n for (hh, kv), n in got.items() if kv == 1}
            bad = max(gqa, key=lambda k: abs(got[k] - formula(dd, k[0], b, k[1])))
            res.claims.append(
                Bound.of(
                    f"GQA CausalSelfAttention(d={dd}, bias={b}) = 2d^2 + 2 d h_kv d/h"
                    f"{' + biases' if b else ''} for all {len(gqa)} (h, h_kv<h) (worst)",
                    got[bad],
                    formula(dd, bad[0], b, bad[1]),
                    0,
                )
            )
            near = min(gqa, key=lambda k: abs(got[k] - formula(dd, k[0], b)))
            res.controls.append(
                Bound.of(
                    f"GQA CausalSelfAttention(d={dd}, bias={b}, h={near[0]}, h_kv={near[1]}) "
                    f"= {'4d^2 + 4d' if b else '4d^2'} (closest of all h_kv < h)",
                    got[near],
                    formula(dd, near[0], b),
                    0,
                )
            )


@with_options
def check(o) -> CheckResult:
    """Count the parameters of nn.MultiheadAttention and gpt.CausalSelfAttention, with and without biases, for
    every h of each width and at seeded random (d, h), and compare each with 4 d^2 (+ 4 d) exactly."""
    ds, hs = _sizes(o, "d"), _sizes(o, "heads")
    dev = pick_device(o.device)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    configs = _configs(ds, hs, o.samples, generator(dev, o.seed), dev)
    _mha_findings(res, _count(res, configs, dev), configs)
    _gqa_findings(res, ds, hs, dev)
    res.notes += NOTES
    return res


def figure(res: CheckResult):
    """Parameters over $d^2$ against $h$ for each width asked: `nn.MultiheadAttention` ($4$ for every $h$) and the MQA
    `CausalSelfAttention` ($2 + 2/h$), as counted by the check, beside the closed forms and a wrong $4/h$."""
    fig, ax = plotting.subplots(width=6.4, height=4.2)
    grid_rows = [r for r in res.table if r["src"] == "grid"]
    for dd in dict.fromkeys(r["d"] for r in grid_rows):
        rows = [r for r in grid_rows if r["d"] == dd]
        hl = [r["h"] for r in rows]
        line = ax.plot(hl, [r["torch"] / dd**2 for r in rows], "o", label=f"$d={dd}$: nn.MultiheadAttention")[0]
        mqa = [res.series["mqa"].get((dd, r["h"]), r["gpt"]) / dd**2 for r in rows]  # h = 1: MQA is MHA
        ax.plot(
            hl,
            mqa,
            "s",
            mfc="none",
            color=line.get_color(),
            label=f"$d={dd}$: CausalSelfAttention, $h_{{\\mathrm{{kv}}}}=1$ (MQA)",
        )
    hmax = max(r["h"] for r in grid_rows)
    grid = [2**k for k in range(0, hmax.bit_length())]
    ax.plot(grid, [4.0] * len(grid), "k-", lw=0.8, label="$4 d^2$ (any $h$)")
    ax.plot(grid, [2 + 2 / g for g in grid], "k:", lw=0.8, label="MQA $2 d^2 + 2 d^2/h$")
    ax.plot(grid, [4 / g for g in grid], "r--", lw=0.8, label="wrong: $4 d^2 / h$")
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="number of heads $h$",
        ylabel="parameters / $d^2$ (no biases)",
        title="Exercise 13.30: attention parameters do not depend on $h$",
    )
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

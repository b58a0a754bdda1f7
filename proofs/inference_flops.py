"""Exercise 13.29: a decoder-only Transformer spends about $2N$ FLOPs per generated token.

Count a multiply-add as 2 FLOPs. A token's activation row (length $a$) times a weight matrix
$a \\times b$ is $ab$ multiply-adds, and every weight matrix of every block is used once per
token, so the blocks cost $2N$ FLOPs per token, where $N$ is the number of weights that multiply
activations: $N = L(4d^2 + 8d^2) = 12Ld^2$ for standard attention ($W_Q, W_K, W_V, W_O$) and a
$4d$ GELU MLP. This is the non-embedding parameter count of Kaplan et al. (2020),
$2dL(2d_\\mathrm{attn} + d_\\mathrm{ff})$; biases, norm gains, softmax and GELU are lower order
and not counted. The embedding is a table lookup (0 FLOPs); the output layer is a $d \\times V$
matmul, $2dV$ FLOPs per token. Attention adds the products with other positions: the token at
position $i$ computes $i$ scores $q \\cdot k_j$ and sums $i$ value rows, $4id$ FLOPs per layer. Over
a causal sequence of $n$ tokens the mean is $2Ld(n+1)$, which is Kaplan's attention term
$2Ln_\\mathrm{ctx}d$ up to $n+1$ versus $n$. So

$$C_\\mathrm{forward} = 2N + 2Ln_\\mathrm{ctx}d + 2dV \\approx 2N
\\quad\\text{when}\\quad n_\\mathrm{ctx} \\ll 12d \\text{ and } V \\ll 12Ld.$$

The check counts FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` on the project's GPT
(``attn="manual"`` so that the attention matmuls are counted on the CPU too; no biases). A full
forward over $n$ tokens is counted exactly as $n(2N + 2dV) + 4Ln^2d$: the counter charges the whole
$n \\times n$ score matrix even though the causal mask throws half of it away (the dense
convention, twice Kaplan's). Decoding with the KV cache does exactly the causal work: the step at
position $t$ costs exactly $2N + 2dV + 4Ld(t+1)$. The same exact comparisons reject Kaplan's causal
term for the full forward and the formula without an attention term; the comparison that accepts
$\\approx 2N$ in the short-context regime rejects $6N$ (training), $N$, and $2N$ at a long context.
"""

from __future__ import annotations

import sympy as sp
import torch

from derive import counts
from derive.counts import L, V, d, h, n_ctx
from derive.engine import Derivation
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.gpt_flops import counted_gpt, decode_flops, forward_flops, linear_weights
from numeric.sizes import int_list
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.29"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Inference costs about $2N$ FLOPs per token ($N$ non-embedding parameters), "
    r"plus $2 L n_\mathrm{ctx} d$ for attention."
)
DEFAULT_SAMPLES = 3  # KV-cache decode positions measured per (width, context): first, middle, last
N_HEAD = 4
VOCAB = 65  # the character vocabulary of tiny Shakespeare
EPS = 0.10  # relative tolerance of the "about 2N" claim
MAX_WIDTH, MAX_CONTEXT, MAX_LAYERS, MAX_COUNT = 2048, 2048, 48, 16
# Cost on 2 CPU cores, measured: a GPT of 12 L d^2 float32 weights is built per width (L 8, d 2,048: 1.6 GB, 14 s);
# a counted full forward runs ~2.5e10 FLOP/s (d 1,024, n 2,048, L 2: 1.4e11 FLOPs, 6 s with the build); each counted
# decode step costs 6 ms (idle) to 110 ms (busy) of overhead on top of its FLOPs (2,048 positions at n 2,048, d 64:
# 14 s idle, 224 s on a busy machine), 0.1 s in the estimate. check_cost() turns these into an estimate, bounded
# by MAX_SECONDS and MAX_BYTES (the weights of the last two models, alive together while the next is built, and the
# n x n scores).
MAX_SECONDS, MAX_BYTES = 420, 4 * 10**9
# a decode position per (width, context) is measured at most once per position: more than the longest context
# (2,048) would be dropped, so that is the cap
MAX_SAMPLES = MAX_CONTEXT
SAMPLES_WHY = "one KV-cache decode position per position of the longest context; up to 0.1 s per position and width"
OPTIONS = [
    Option("--widths", str, "64,256", "comma-separated model widths d (multiples of the 4 heads, at most 2048)"),
    Option("--contexts", str, "16,64,256", "comma-separated context lengths n_ctx (at most 2048)"),
    Option(
        "--layers",
        int,
        2,
        "number of layers L",
        lo=1,
        hi=MAX_LAYERS,
        why="the module's range; the weights and time are bounded with the widths (12 L d^2 float32 per model)",
    ),
]
LIMITS = {  # the largest value of each size, and why
    "widths": (MAX_WIDTH, "a GPT of 12 L d^2 weights is built for each"),
    "contexts": (MAX_CONTEXT, "4 L n^2 d attention FLOPs per forward, n x n scores"),
}


def _sizes(o, name: str) -> list[int]:
    """The widths (multiples of the heads) or the contexts asked for: at least one, at most MAX_COUNT."""
    hi, why = LIMITS[name]
    multiple = N_HEAD if name == "widths" else 1
    out = int_list(name, getattr(o, name), hi, why, multiple, MAX_COUNT, "each adds models or passes")
    if not out:
        raise ValueError(f"{name}: give at least one value")
    return out


def _positions(n: int, samples: int) -> list[int]:
    """``samples`` decode positions spread evenly over 0..n-1, first and last included."""
    return sorted({round(k * (n - 1) / (samples - 1)) for k in range(samples)})


def check_cost(ws: list[int], cs: list[int], layers: int, samples: int) -> tuple[float, float]:
    """(seconds on 2 CPU cores, peak bytes) the check should take, from the measured rates above."""
    secs, nmax = 0.0, max(cs)
    for w in ws:
        n_blocks = 12 * layers * w * w
        secs += 3.4e-8 * n_blocks  # building the model
        per_tok = 2 * n_blocks + 2 * w * VOCAB
        for n in cs:
            steps = len(_positions(n, min(samples, n)))
            flops = n * per_tok + 4 * layers * n * n * w + steps * (per_tok + 4 * layers * w * n)
            secs += flops / 2.5e10 + 0.1 * steps
    alive = sum(w * w for w in ws[-2:])  # the next width's model is built while the last one is still held
    nbytes = 4 * 12 * layers * alive + 3 * 4 * N_HEAD * nmax * nmax + 4 * 16 * nmax * max(ws)
    return secs, nbytes


def validate(o) -> None:
    """Refuse bad grids, fewer than 3 decode positions or more than the shortest context, and grids
    whose estimated time or memory (:func:`check_cost`) is beyond MAX_SECONDS or MAX_BYTES."""
    ws, cs = _sizes(o, "widths"), _sizes(o, "contexts")
    if o.samples < 3:
        raise ValueError(f"samples: need at least 3 decode positions (first, middle, last), got {o.samples!r}")
    if o.samples > min(cs):  # positions are distinct: a context of n tokens has only n of them
        raise ValueError(
            f"samples: decode positions per context must be at most the shortest context ({min(cs)}), got {o.samples:,}"
        )
    secs, nbytes = check_cost(ws, cs, o.layers, o.samples)
    sizes = f"widths {','.join(map(str, ws))}, contexts {','.join(map(str, cs))}, L {o.layers}, {o.samples:,} positions"
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"layers: {sizes} would hold ~{nbytes / 1e9:.1f} GB (the last two models' 12 L d^2 float32 weights, "
            f"the n x n scores); at most {MAX_BYTES / 1e9:.0f} GB"
        )
    if secs > MAX_SECONDS:
        raise ValueError(
            f"samples: {sizes} would take ~{secs:,.0f} s on 2 CPU cores (model builds, counted forwards, ~0.1 s per "
            f"decode step); at most {MAX_SECONDS} s: give fewer or smaller sizes or --samples"
        )


# -- the derivation, in four groups of steps --------------------------------------------------------

N_BLOCKS = L * counts.block_matmul_params(d, h)  # 12 L d^2
KAPLAN = counts.forward_flops_per_token(N_BLOCKS, L, n_ctx, d, V, "kaplan")
F = sp.Function("F")


def derivation() -> Derivation:
    """Forward FLOPs per token: 2N for the blocks, the attention term (causal and dense), 2dV for the
    output layer, and the KV-cache decode step (four groups of steps)."""
    dx = Derivation(
        "Exercise 13.29: forward FLOPs per token of a decoder-only Transformer",
        assumptions=[
            r"a multiply-add is 2 FLOPs; a $(1 \times a)$ row times an $(a \times b)$ matrix is $2ab$ FLOPs",
            r"$L$ blocks of width $d$, $h$ heads of size $d/h$ ($h$ divides $d$), a $4d$ GELU MLP, vocabulary $V$",
            "biases, norms, softmax and GELU are elementwise and left out (lower order, as Kaplan et al.)",
            r"the embedding is a table lookup: 0 FLOPs; the output layer is a $d \times V$ matmul",
        ],
    )
    _weight_steps(dx)
    _attention_steps(dx)
    _total_steps(dx)
    _decode_steps(dx)
    return dx


def _weight_steps(dx: Derivation) -> None:
    """N = 12 L d^2 weights multiply activations, and the blocks cost 2N FLOPs per token."""
    N = sp.Symbol("N", positive=True)
    attn_w = counts.attention_params(d, h, bias=False)
    dx.eq(
        sp.Symbol("N_attn"),
        4 * d**2,
        r"attention weights $W_Q, W_K, W_V, W_O$ ($d \times d$ each; any $h$)",
        "exact",
        attn_w,
    )
    dx.eq(
        sp.Symbol("N_mlp"),
        8 * d**2,
        r"MLP weights $d \times 4d$ and $4d \times d$",
        "exact",
        counts.mlp_params(d, bias=False),
    )
    why = r"$N = L (N_\mathrm{attn} + N_\mathrm{mlp}) = 12 L d^2$, Kaplan's $2 d L (2 d_\mathrm{attn} + d_\mathrm{ff})$"
    dx.eq(N, 2 * d * L * (2 * d + 4 * d), why, "expand", N_BLOCKS)
    per_matrix = 2 * L * (d * d + d * d + d * d + d * d + d * 4 * d + 4 * d * d)
    why = r"each of the 6 matrices per block costs $2 \cdot \mathrm{rows} \cdot \mathrm{cols}$ per token: $2N$"
    dx.eq(F("blocks"), 2 * N_BLOCKS, why, "expand", per_matrix)


def _attention_steps(dx: Derivation) -> None:
    """Attention's products with other positions: 4 i d at position i, Kaplan's 2 L n_ctx d on the causal
    mean, and twice that over the whole n x n score matrix (what FlopCounterMode counts)."""
    i = sp.Symbol("i", positive=True, integer=True)
    per_head = h * (2 * i * (d / h) + 2 * i * (d / h))
    why = r"token $i$: $h$ heads $\times$ ($i$ scores of size $d/h$ + $i$ value rows of size $d/h$)"
    dx.eq(F("attention", i), 4 * i * d, why, "cancel", per_head)
    mean = sp.Sum(L * 4 * i * d, (i, 1, n_ctx)) / n_ctx
    dx.eq(
        mean,
        2 * L * d * (n_ctx + 1),
        r"causal mean over positions $i = 1, \ldots, n_\mathrm{ctx}$, all $L$ layers",
        "factor",
        mean.doit(),
    )
    kaplan = counts.attention_flops_per_token(L, n_ctx, d, "kaplan")
    why = r"Kaplan's $2 L n_\mathrm{ctx} d$ is this causal mean at large $n_\mathrm{ctx}$"
    dx.limit(2 * L * d * (n_ctx + 1) / kaplan, n_ctx, sp.oo, 1, why)
    dense = counts.attention_flops_per_token(L, n_ctx, d, "dense")
    full = sp.Sum(L * 4 * n_ctx * d, (i, 1, n_ctx)) / n_ctx
    why = (
        r"the full $n \times n$ score matrix (what FlopCounterMode counts, mask or not): "
        r"$4 L n_\mathrm{ctx} d$ per token"
    )
    dx.eq(full, dense, why, "factor", full.doit())
    dx.eq(F("dense") / F("Kaplan"), 2, "the dense count is twice Kaplan's causal convention", "cancel", dense / kaplan)


def _total_steps(dx: Derivation) -> None:
    """The output layer's 2dV, the total per token, and its excess over 2N, which vanishes as d grows."""
    N = sp.Symbol("N", positive=True)
    out = counts.forward_flops_per_token(0, L, n_ctx, d, V, "none")
    why = r"output layer: one $d \times V$ matmul per token (the embedding lookup is 0 FLOPs)"
    dx.eq(F("output"), 2 * d * V, why, "exact", out)
    total = 2 * N_BLOCKS + 2 * L * n_ctx * d + 2 * d * V
    dx.eq(F("forward"), total, "total per token (Kaplan's convention for attention)", "expand", KAPLAN)
    excess = n_ctx / (12 * d) + V / (12 * L * d)
    why = r"relative excess over $2N$: small when $n_\mathrm{ctx} \ll 12 d$ and $V \ll 12 L d$"
    dx.eq(F("forward") / (2 * N) - 1, excess, why, "cancel", KAPLAN / (2 * N_BLOCKS) - 1)
    dx.limit(
        KAPLAN / (2 * N_BLOCKS), d, sp.oo, 1, r"so $F / 2N \to 1$ as the width grows at fixed $n_\mathrm{ctx}$ and $V$"
    )


def _decode_steps(dx: Derivation) -> None:
    """A KV-cache decode step at position t, and the mean over a generation: Kaplan's formula with n_ctx + 1."""
    t = sp.Symbol("t", positive=True, integer=True)
    step_t = counts.forward_flops_per_token(N_BLOCKS, L, t + 1, d, V, "dense")
    why = (
        r"a KV-cache decode step at position $t$ attends to $t + 1$ keys: the dense term with $n_\mathrm{ctx} = t + 1$"
    )
    dx.eq(F("decode", t), 2 * N_BLOCKS + 2 * d * V + 4 * L * d * (t + 1), why, "expand", step_t)
    gen_mean = sp.Sum(step_t, (t, 0, n_ctx - 1)) / n_ctx
    mean = 2 * N_BLOCKS + 2 * d * V + 2 * L * d * (n_ctx + 1)
    why = r"mean over a generation of $n_\mathrm{ctx}$ tokens: Kaplan's formula with $n_\mathrm{ctx} + 1$"
    dx.eq(gen_mean, mean, why, "factor", gen_mean.doit())


# -- the check --------------------------------------------------------------------------------------


def _int(e) -> int:
    e = sp.sympify(e)
    if not e.is_integer:
        raise AssertionError(f"expected an integer count, got {e}")
    return int(e)


def _per_token(Nmm: int, layers: int, n: int, w: int, attention: str = "kaplan") -> int:
    """Forward FLOPs per token of the measured GPT at context n (derive.counts)."""
    return _int(counts.forward_flops_per_token(Nmm, layers, n, w, VOCAB, attention))


@with_options
def check(o) -> CheckResult:
    """Count a full forward and KV-cache decode steps at each width and context; compare each with its
    formula exactly, and the mean decode step with 2N where the corrections are small."""
    ws, cs = _sizes(o, "widths"), _sizes(o, "contexts")
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    Lv, nmax = o.layers, max(cs)
    ratio_claims, long_ctl = [], None
    for w in ws:
        model = counted_gpt(Lv, w, N_HEAD, nmax, VOCAB, dev, tie_weights=True).eval()
        Nmm = _int(Lv * counts.block_matmul_params(w, N_HEAD))
        res.claims.append(
            Bound.of(f"d={w}: block matmul weights of the model = 12 L d^2", linear_weights(model.h), Nmm, 0)
        )
        idx = torch.randint(0, VOCAB, (1, nmax), device=dev, generator=gen)
        for n in cs:
            tag = f"d={w} n={n}"
            mean, att_rel = _context_findings(res, model, idx, tag, Nmm, Lv, n, w, o.samples)
            if att_rel <= EPS / 2 and 2 * w * VOCAB / (2 * Nmm) <= EPS / 2:
                ratio_claims.append((tag, mean, Nmm))
            if att_rel >= 2 * EPS and (long_ctl is None or att_rel > long_ctl[3]):
                long_ctl = (tag, mean, Nmm, att_rel)
    _ratio_findings(res, ratio_claims, long_ctl)
    res.notes += [
        f"GPT with L={Lv}, h={N_HEAD}, V={VOCAB}, no biases, tied embeddings, attn='manual', float32; "
        "FLOPs from torch.utils.flop_counter.FlopCounterMode (2 per multiply-add)",
        "N = 12 L d^2 counts the block matmul weights; the non-embedding count N_nonemb also has the "
        "(2L + 1) d norm gains, which are elementwise (0 counted FLOPs)",
        "the embedding lookup and the position add record 0 FLOPs; the tied output layer is a d x V matmul (2dV)",
        "the full forward is counted dense (4 L n d per token, the whole n x n score matrix); KV-cache "
        "decoding is causal: its mean over t = 0..n-1 is 2N + 2dV + 2 L d (n+1), Kaplan's formula with n+1",
        f"decode positions per context: {o.samples} evenly spaced, first and last included; "
        "the 'about 2N' claim applies where both derived corrections (n+1)/12d and V/12Ld are <= 5%",
    ]
    return res


def _context_findings(res, model, idx, tag, Nmm, Lv, n, w, samples) -> tuple[float, float]:
    """The full forward over n tokens and the decode steps at ``samples`` positions, compared exactly with
    their formulas (controls: Kaplan's causal term, no attention term); a table row. Returns the mean
    decode step and the attention term's share of 2N."""
    f_fwd = forward_flops(model, idx[:, :n])
    dense, kaplan, bare = (n * _per_token(Nmm, Lv, n, w, a) for a in ("dense", "kaplan", "none"))
    res.claims.append(Bound.of(f"{tag}: full forward = n (2N + 2dV) + 4 L n^2 d (dense)", f_fwd, dense, 0))
    res.controls.append(
        Bound.of(f"{tag}: full forward = n (2N + 2dV + 2 L n d) (Kaplan's causal term)", f_fwd, kaplan, 0)
    )
    res.controls.append(Bound.of(f"{tag}: full forward = n (2N + 2dV) (no attention term)", f_fwd, bare, 0))
    steps = {}
    for t in _positions(n, samples):
        steps[t] = decode_flops(model, idx, t)
        want = _per_token(Nmm, Lv, t + 1, w, "dense")
        res.claims.append(Bound.of(f"{tag}: decode step t={t} = 2N + 2dV + 4 L d (t+1)", steps[t], want, 0))
    # cost is affine in t (checked exactly at every measured t), so the mean over t = 0..n-1 is the mean of the two ends
    mean = (steps[0] + steps[n - 1]) / 2
    res.table.append(
        {
            "d": w,
            "n_ctx": n,
            "N=12Ld^2": Nmm,
            "N_nonemb": model.num_params(non_embedding=True),
            "2N": 2 * Nmm,
            "2dV": 2 * w * VOCAB,
            "4Lnd": 4 * Lv * n * w,
            "fwd/token": f_fwd / n,
            "fwd/token/2N": f_fwd / n / (2 * Nmm),
            "decode mean": mean,
            "decode/2N": mean / (2 * Nmm),
        }
    )
    return mean, 2 * Lv * w * (n + 1) / (2 * Nmm)


def _ratio_findings(res, ratio_claims, long_ctl) -> None:
    """'About 2N' where both corrections are small (controls: 6N, N), and its rejection at the longest context."""
    for tag, mean, Nmm in ratio_claims:
        res.claims.append(Bound.of(f"{tag}: decode mean / 2N ~ 1 (within {EPS:.0%})", mean / (2 * Nmm), 1.0, EPS))
        res.controls.append(Bound.of(f"{tag}: decode mean / 6N ~ 1 (training's 6N)", mean / (6 * Nmm), 1.0, EPS))
        res.controls.append(Bound.of(f"{tag}: decode mean / N ~ 1", mean / Nmm, 1.0, EPS))
    if long_ctl is not None:
        tag, mean, Nmm, _ = long_ctl
        what = f"{tag}: decode mean / 2N ~ 1 at a long context (no attention term)"
        res.controls.append(Bound.of(what, mean / (2 * Nmm), 1.0, EPS))
    else:
        res.notes.append("no context is long enough (2 L d (n+1) >= 20% of 2N) for the long-context control")
    if not ratio_claims:
        res.notes.append("no (d, n_ctx) lies in the 'about 2N' regime ((n+1)/12d and V/12Ld both <= 5%)")


def figure(res: CheckResult):
    r"""Measured forward FLOPs per token over $2N$ against $n_\mathrm{ctx}$, per width, with the dense formula of the
    full forward and the causal (Kaplan, $n + 1$) mean of KV-cache decoding."""
    fig, ax = plotting.subplots()
    layers, cs = res.settings.layers, sorted({r["n_ctx"] for r in res.table})
    grid = sorted({round(max(cs) ** (k / 59)) for k in range(60)})
    for w in sorted({r["d"] for r in res.table}):
        rows = [r for r in res.table if r["d"] == w]
        Nmm = rows[0]["N=12Ld^2"]
        dense = [_per_token(Nmm, layers, n, w, "dense") / (2 * Nmm) for n in grid]
        causal = [_per_token(Nmm, layers, n + 1, w) / (2 * Nmm) for n in grid]
        line = ax.plot(grid, dense, "-", label=f"$d={w}$: full forward (dense formula)")[0]
        ax.plot(grid, causal, "--", color=line.get_color(), label=f"$d={w}$: KV-cache mean (Kaplan, $n+1$)")
        measured = [r["n_ctx"] for r in rows], [r["fwd/token/2N"] for r in rows]
        ax.plot(*measured, "o", color=line.get_color(), label=f"$d={w}$: FlopCounterMode")
    ax.axhline(1.0, color="k", lw=0.8, label="$2N$")
    ax.legend(fontsize=7)
    ax.set(xscale="log", xlabel=r"context length $n_\mathrm{ctx}$", ylabel="forward FLOPs per token / $2N$")
    ax.set_title(f"Exercise {NUMBER}: FLOPs per token ($L={layers}$, $V={VOCAB}$)")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

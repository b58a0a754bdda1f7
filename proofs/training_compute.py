"""Exercise 13.13: training a model of $N$ parameters on $D$ tokens costs about $C = 6ND$ FLOPs.

Count a multiply-add as 2 FLOPs. A weight matrix $W$ ($a \\times b$) meets each token's activation
row $x$ three times. The forward pass computes $y = xW$: $2ab$ FLOPs. The backward pass computes
the gradient for the layer below, $\\bar x = \\bar y W^\\top$ ($2ab$), and the weight gradient,
$\\bar W \\mathrel{+}= x^\\top \\bar y$ ($2ab$). So backward costs twice the forward, and per weight and
token training costs $2 + 4 = 6$ FLOPs; summed over all matrices ($N = \\sum_i a_i b_i$) and the
$D$ training tokens,

$$C = (2 + 4)ND = 6ND.$$

For 13B parameters on 2T tokens, $C = 6 \\cdot 1.3 \\times 10^{10} \\cdot 2 \\times 10^{12} = 1.56 \\times
10^{23}$ FLOPs. A petaFLOP/s-day is $10^{15} \\cdot 86400 = 8.64 \\times 10^{19}$ FLOPs, so that is
about 1,806 PF-days. At a stated model-FLOPs utilisation (MFU), it is $C / (\\text{peak} \\cdot
\\text{MFU} \\cdot 3600)$ GPU-hours: with an A100's 312 dense bf16 TFLOP/s at 40 % (the defaults;
an H100 SXM is 989), 347,222 GPU-hours, about 14 days on 1,024 GPUs.

What $6N$ leaves out: attention's products between positions ($6Ln_\\mathrm{ctx}d$ per token in
Kaplan's causal convention, a fraction $n_\\mathrm{ctx}/12d$ of $6N$ at $N = 12Ld^2$); parameters that
are not matmul weights (norm gains, position tables and an untied input embedding are looked up or
multiplied elementwise: 0 matmul FLOPs); and elementwise work (softmax, nonlinearities, the optimiser).

The check counts FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` on two small versions of
the project's GPT (``attn="manual"`` so that attention matmuls are counted on the CPU; no biases):
GPT-2 style (tied embedding) and LLaMA style (untied, SwiGLU, RoPE). Backward is exactly twice the
forward (so forward plus backward is exactly three forwards), and forward plus backward per token is
exactly $6N_\\mathrm{matmul} + 12Ln_\\mathrm{ctx}d$ (the counter charges the whole $n \\times n$ score
matrix), which is within 10 % of $6N$ at a short context. The same comparisons reject "backward
costs as much as forward", "2N per token for training" and the count without its attention term.
The PF-day conversion is checked against GPT-3's published 3,640 PF-days (175B parameters,
300B tokens; Brown et al. 2020, table D.1).
"""

from __future__ import annotations

import sympy as sp
import torch

from derive import counts
from derive.engine import Derivation
from models.gpt import swiglu_hidden
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.gpt_flops import counted_gpt, linear_weights, train_step_flops
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.13"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Training costs $C = 6 N D$ FLOPs (2 forward + 4 backward per parameter and "
    r"token): 13B $\times$ 2T $\to 1.56 \times 10^{23}$."
)
DEFAULT_SAMPLES = 1  # sequences per FlopCounterMode measurement (FLOP counts do not depend on the data)
MAX = dict(layers=12, width=1024, context=512, vocab=100_000, gpus=10**7, samples=64)
# The measured GPTs (both styles, forward and backward under FlopCounterMode) at every maximum with one sequence,
# 12 x 1,024, n_ctx 512, V = 10^5, took 102 s and 3.6 GB on 2 CPU cores (about 16 GFLOP/s); 8 sequences of 512
# tokens at V = 10^5 (d = 256) took 5.5 GB, mostly logits. The combination is bounded in validate() by the
# estimates training_cost() makes of both.
_GPT = "the measured GPT at L 12, d 1,024, n_ctx 512, V 10^5 takes 100 s and 3.6 GB on 2 CPU cores"
MAX_FLOPS = 6 * 10**12  # ~6 minutes at 16 GFLOP/s
MAX_BYTES = 6 * 10**9  # by the estimate, which runs ~30% above the measured peak: ~4.5 GB
MAX_SAMPLES = MAX["samples"]
SAMPLES_WHY = "FLOP counts do not depend on the data; 64 sequences at the defaults take 8 s, and memory grows with them"
POSITIVE = ("params", "tokens", "peak_tflops", "mfu")  # in (0, hi]: the declarations hold the closed bounds
_PEAK = "peak dense TFLOP/s of one GPU (A100 bf16: 312; H100 SXM bf16: 989), in (0, 1e9]"
_HEADS = "heads of that GPT (must divide width; even head size for RoPE)"
_HEADS_WHY = "a head needs an even size, at least 2, and width is at most 1,024"
OPTIONS = [
    Option("--params", float, 13e9, "N, parameters, in (0, 1e30]", lo=0.0, hi=1e30),
    Option("--tokens", float, 2e12, "D, training tokens, in (0, 1e30]", lo=0.0, hi=1e30),
    Option("--peak-tflops", float, 312.0, _PEAK, lo=0.0, hi=1e9),
    Option("--mfu", float, 0.4, "model FLOPs utilisation, in (0, 1]", lo=0.0, hi=1.0),
    Option(
        "--gpus", int, 1024, "GPUs, for the wall-clock days", lo=1, hi=MAX["gpus"], why="more than any cluster holds"
    ),
    Option("--layers", int, 2, "L of the GPT measured with FlopCounterMode", lo=1, hi=MAX["layers"], why=_GPT),
    Option("--width", int, 256, "d of that GPT", lo=1, hi=MAX["width"], why=_GPT),
    Option("--heads", int, 4, _HEADS, lo=1, hi=MAX["width"] // 2, why=_HEADS_WHY),
    Option("--context", int, 32, "tokens per sequence n_ctx of that GPT", lo=1, hi=MAX["context"], why=_GPT),
    Option("--vocab", int, 65, "V of that GPT (65: tiny Shakespeare's characters)", lo=1, hi=MAX["vocab"], why=_GPT),
]
EPS = 0.10  # relative tolerance of "about 6N"
PF_DAY = 10**15 * 86400  # FLOPs in a petaFLOP/s-day
GPT3 = dict(N=175e9, D=300e9, pf_days=3640)  # Brown et al. 2020, table D.1

N, D, a, b = sp.symbols("N D a b", positive=True)
peak, mfu = sp.symbols("P_peak u", positive=True)
C_EXPR = (2 + 4) * N * D  # the derivation's result, evaluated by check() at the given values


def _exact(v) -> sp.Rational:
    """A finite float as the exact decimal it was written as (13e9 -> 13000000000, 0.4 -> 2/5)."""
    return sp.Rational(repr(float(v)))


def training_flops(params, tokens) -> sp.Rational:
    """C = 6 N D FLOPs, exactly, for N ``params`` and D ``tokens`` (floats taken as the decimals written)."""
    return C_EXPR.subs({N: _exact(params), D: _exact(tokens)})


def pf_days(flops) -> sp.Rational:
    """``flops`` in petaFLOP/s-days (8.64e19 FLOPs each), exactly."""
    return sp.sympify(flops) / PF_DAY


def gpu_hours(flops, peak_tflops, mfu_) -> sp.Rational:
    """Hours of one GPU of ``peak_tflops`` dense TFLOP/s at utilisation ``mfu_`` to run ``flops``, exactly."""
    return sp.sympify(flops) / (_exact(peak_tflops) * 10**12 * _exact(mfu_) * 3600)


def derivation() -> Derivation:
    """C = 6 N D from one weight matrix, its value for 13B x 2T in FLOPs, PF-days and GPU-hours, and
    what 6N leaves out."""
    F, C = sp.Function("F"), sp.Function("C")
    L, d, V, n = counts.L, counts.d, counts.V, counts.n_ctx
    dx = Derivation(
        "Exercise 13.13: training compute $C = 6 N D$",
        assumptions=[
            "a multiply-add is 2 FLOPs; $D$ tokens, each one row of activations through every weight matrix",
            r"a weight matrix $W$ is $a \times b$; $N = \sum a b$ over the matrices (the parameters that multiply)",
            "elementwise work (norms, softmax, nonlinearities, the optimiser) is lower order and not counted",
        ],
    )
    dx.eq(F("forward"), 2 * D * a * b, "$y = x W$: $D$ rows of $a b$ multiply-adds", "exact", computed=D * (a * b) * 2)
    why = r"backward to the layer below: $dx = dy\,W^T$, $(D \times b)(b \times a)$"
    dx.eq(F("dx"), 2 * D * a * b, why, "exact", D * b * a * 2)
    why = r"backward to the weight: $dW = x^T dy$, $(a \times D)(D \times b)$"
    dx.eq(F("dW"), 2 * D * a * b, why, "exact", a * D * b * 2)
    dx.eq(F("backward") / F("forward"), 2, "backward is twice the forward", "cancel", (4 * D * a * b) / (2 * D * a * b))
    per_weight = (2 + 2 + 2) * D * a * b / (D * a * b)
    dx.eq(F("train") / (D * a * b), 6, "per weight and token: $2 + 4 = 6$ FLOPs", "cancel", per_weight)
    dx.eq(C(N, D), 6 * N * D, r"summed over all matrices, $N = \sum_i a_i b_i$", "expand", C_EXPR)
    c13 = training_flops(13e9, 2e12)
    dx.eq(
        C(13 * 10**9, 2 * 10**12), 156 * 10**21, r"13B parameters, 2T tokens: $1.56 \times 10^{23}$ FLOPs", "exact", c13
    )
    dx.eq(sp.Symbol("PF_day"), 864 * 10**17, "a petaFLOP/s-day: $10^{15}$ FLOP/s for 86400 s", "exact", PF_DAY)
    dx.eq(C(N, D) / sp.Symbol("PF_day"), sp.Rational(16250, 9), r"in PF-days: $\approx$ 1,806", "exact", pf_days(c13))
    hours, why = C(N, D) / (3600 * peak * mfu), r"GPU-hours at 312 TFLOP/s (A100 bf16) and 40% MFU: $\approx$ 347,222"
    dx.eq(hours, sp.Rational(3125000, 9), why, "exact", gpu_hours(c13, 312, 0.4))
    days = gpu_hours(c13, 312, 0.4) / (24 * 1024)
    dx.eq(
        hours / (24 * sp.Symbol("G")),
        sp.Rational(390625, 27648),
        r"days on $G = 1024$ GPUs: $\approx$ 14.1",
        "exact",
        days,
    )
    # what 6N leaves out, with the per-token forward FLOPs of derive.counts (N = 12 L d^2 as in Kaplan et al.)
    Nk = L * counts.block_matmul_params()
    kap = 3 * counts.forward_flops_per_token(Nk, L, n, d, V, "kaplan")
    why = "per token, with attention and the output layer"
    dx.eq(F("train") / D, 6 * Nk + 6 * L * n * d + 6 * d * V, why, "expand", kap)
    why = "their share of $6N$ at $N = 12 L d^2$"
    dx.eq(F("train") / (6 * N * D) - 1, n / (12 * d) + V / (12 * L * d), why, "cancel", kap / (6 * Nk) - 1)
    dense = 3 * counts.forward_flops_per_token(Nk, L, n, d, V, "dense")
    why = r"what FlopCounterMode counts: the whole $n \times n$ score matrix (twice Kaplan's term)"
    dx.eq(F("counted") / D, 6 * Nk + 12 * L * n * d + 6 * d * V, why, "expand", dense)
    return dx


# -- the FlopCounterMode check ------------------------------------------------------------------

STYLES = {
    "GPT-2 style (tied)": dict(),
    "LLaMA style (untied)": dict(pos="rope", norm="rmsnorm", mlp="swiglu", tie_weights=False),
}


def training_cost(layers: int, width: int, heads: int, context: int, vocab: int, samples: int) -> tuple[int, int]:
    """Upper estimates of the check's work: (FLOPs of both measured steps, peak bytes). FLOPs: 6 N_matmul + 12 L n d
    per token, two styles. Bytes: weights and gradients of the larger model (8 per parameter), logits and their
    gradients (~14 bytes per token and word), attention scores kept for backward (~12 bytes per score and layer)
    and ~80 bytes per token, layer and width of other activations."""
    n_mm = layers * (4 * width * width + max(8 * width * width, 3 * width * swiglu_hidden(width))) + vocab * width
    n_all = n_mm + vocab * width + context * width
    tok = samples * context
    flops = 2 * tok * (6 * n_mm + 12 * layers * context * width)
    nbytes = 8 * n_all + tok * (14 * vocab + 80 * layers * width) + 12 * layers * tok * heads * context
    return flops, nbytes


def validate(o) -> None:
    """Refuse zero where only a positive number makes sense, heads that do not split the width into
    even head sizes (RoPE), and a measured GPT whose FLOPs or memory (:func:`training_cost`) are too large."""
    for name in POSITIVE:
        if getattr(o, name) <= 0:
            raise ValueError(f"{name}: must be above 0, got {getattr(o, name):g}")
    if o.width % o.heads:
        raise ValueError(f"heads: must divide width={o.width}, got {o.heads}")
    if (o.width // o.heads) % 2:
        raise ValueError(f"heads: the head size width/heads must be even for RoPE, got {o.width}/{o.heads}")
    flops, nbytes = training_cost(o.layers, o.width, o.heads, o.context, o.vocab, o.samples)
    sizes = f"L {o.layers}, d {o.width}, n_ctx {o.context}, V {o.vocab:,}, {o.samples} sequence(s)"
    for over, what in (
        (
            flops > MAX_FLOPS,
            f"take {flops:.2g} FLOPs at {sizes}; at most {MAX_FLOPS:.0g} (~16 GFLOP/s on 2 CPU cores: ~6 minutes)",
        ),
        (
            nbytes > MAX_BYTES,
            f"hold ~{nbytes / 1e9:.1f} GB at {sizes}; at most {MAX_BYTES / 1e9:.0f} GB by the "
            "estimate (weights, gradients, logits)",
        ),
    ):
        if over:
            raise ValueError(f"samples: the measured steps would {what}; use fewer sequences or a smaller GPT")


@with_options
def check(o) -> CheckResult:
    """The answer for the options asked, the PF-day against GPT-3's published figure, and FlopCounterMode
    on a GPT-2-style and a LLaMA-style GPT: backward = 2 x forward, per token = 6 N_matmul + 12 L n d."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    C = training_flops(o.params, o.tokens)
    hrs = gpu_hours(C, o.peak_tflops, o.mfu)
    res.notes.append(
        f"Answer: C = 6 x {o.params:.4g} x {o.tokens:.4g} = {float(C):.4g} FLOPs = {float(pf_days(C)):,.0f} PF-days "
        f"= {float(hrs):,.0f} GPU-hours at {o.peak_tflops:g} TFLOP/s x {o.mfu:.0%} MFU "
        f"= {float(hrs) / o.gpus / 24:,.1f} days on {o.gpus:,} GPUs"
    )
    # the PF-day unit against a published figure
    g3 = float(pf_days(training_flops(GPT3["N"], GPT3["D"])))
    res.claims.append(Bound.of("GPT-3 175B x 300B: 6ND in PF-days / published 3,640", g3 / GPT3["pf_days"], 1, 0.01))
    g3h = float(training_flops(GPT3["N"], GPT3["D"])) / (10**15 * 3600)
    res.controls.append(Bound.of("GPT-3 with a PF-day of 1e15 x 3600 FLOPs (an hour)", g3h / GPT3["pf_days"], 1, 0.01))

    Lv, dv, nv, Vv = o.layers, o.width, o.context, o.vocab
    idx = torch.randint(0, Vv, (o.samples, nv), device=dev, generator=gen)
    tgt = torch.randint(0, Vv, (o.samples, nv), device=dev, generator=gen)
    for style, fields in STYLES.items():
        model = counted_gpt(Lv, dv, o.heads, nv, Vv, dev, **fields)
        fwd, bwd = train_step_flops(model, idx, tgt)
        _style_findings(res, style, model, fwd, bwd, o)
    res.notes += [
        f"GPT with L={Lv}, d={dv}, h={o.heads}, V={Vv}, n_ctx={nv}, no biases, attn='manual', {o.samples} "
        "sequence(s); FLOPs from torch.utils.flop_counter.FlopCounterMode (2 per multiply-add), forward and backward "
        "counted apart",
        "N_matmul = L x block matrices + the d x V output layer; 'not matmul' = norm gains, learned positions and an "
        "untied input table: they are in N but cost no matmul FLOPs (a lookup or an elementwise product)",
        "12Lnd: attention's QK^T and AV, forward and backward, counted over the whole n x n matrix (causal mask or "
        "not); relative to 6N it is n_ctx / 6d at N = 12 L d^2",
        f"defaults: an A100's {312} dense bf16 TFLOP/s at 40% MFU (an H100 SXM: 989); 1 PF-day = 8.64e19 FLOPs",
    ]
    return res


def _style_findings(res: CheckResult, style: str, model, fwd: int, bwd: int, o) -> None:
    """One style's counted step against its formulas (controls: backward = forward, no attention term,
    '2N for training'), 'about 6N' where the formula says so, and its table row."""
    Lv, dv, nv, Vv = o.layers, o.width, o.context, o.vocab
    n_tok = o.samples * nv
    ff = swiglu_hidden(dv) if "LLaMA" in style else None
    blocks = Lv * counts.block_matmul_params(dv, o.heads, "swiglu" if ff else "gelu", d_ff=ff)
    n_mm = int(blocks) + Vv * dv  # block matrices and the output layer
    per_tok = (fwd + bwd) / n_tok
    n_all = model.num_params()
    res.claims.append(
        Bound.of(f"{style}: nn.Linear weights = L x block matrices + V d", linear_weights(model), n_mm, 0)
    )
    res.claims.append(Bound.of(f"{style}: backward = 2 x forward", bwd, 2 * fwd, 0))
    res.claims.append(Bound.of(f"{style}: forward + backward = 3 x forward", fwd + bwd, 3 * fwd, 0))
    want = 3 * int(counts.forward_flops_per_token(blocks, Lv, nv, dv, Vv, "dense"))
    res.claims.append(Bound.of(f"{style}: per token = 6 N_matmul + 12 L n d", per_tok, want, 0))
    res.controls.append(Bound.of(f"{style}: backward = forward", bwd, fwd, 0))
    res.controls.append(Bound.of(f"{style}: per token = 6 N_matmul (no attention term)", per_tok, 6 * n_mm, 0))
    predicted = want / (6 * n_all)
    if abs(predicted - 1) <= EPS / 2:
        res.claims.append(Bound.of(f"{style}: per token / 6N ~ 1 (within {EPS:.0%})", per_tok / (6 * n_all), 1, EPS))
        res.controls.append(Bound.of(f"{style}: per token / 2N ~ 1 ('2N for training')", per_tok / (2 * n_all), 1, EPS))
    else:
        res.notes.append(
            f"{style}: 6N is {predicted - 1:+.1%} off here (attention or non-matmul parameters); "
            "no 'about 6N' claim at these sizes"
        )
    res.table.append(
        {
            "model": style,
            "N (all)": n_all,
            "N_matmul": n_mm,
            "not matmul": n_all - n_mm,
            "fwd/token": fwd / n_tok,
            "bwd/fwd": bwd / fwd,
            "6N_matmul": 6 * n_mm,
            "12Lnd": 12 * Lv * nv * dv,  # dense attention, forward + backward, per token
            "(fwd+bwd)/token": per_tok,
            "/6N": per_tok / (6 * n_all),
        }
    )


def figure(res: CheckResult):
    """Counted training FLOPs per token of each model against $6N$ and $6N + 12 L n d$."""
    import numpy as np

    rows = res.table
    fig, ax = plotting.subplots(width=7, height=4.2)
    x = np.arange(len(rows))
    ax.bar(x - 0.27, [r["(fwd+bwd)/token"] for r in rows], 0.27, label="counted (FlopCounterMode)", color="C0")
    ax.bar(x, [r["6N_matmul"] for r in rows], 0.27, label="$6N$ (matmul weights)", color="C7")
    ax.bar(x + 0.27, [r["6N_matmul"] + r["12Lnd"] for r in rows], 0.27, label="$6N + 12 L n d$", color="C2")
    ax.set_xticks(x, [r["model"] for r in rows], fontsize=8)
    ax.set(ylabel="training FLOPs per token", title=plotting.title(res, f"Exercise {NUMBER}: $C = 6ND$, per token"))
    ax.legend(fontsize=8)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

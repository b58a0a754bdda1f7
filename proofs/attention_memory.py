r"""Exercise 13.9: naive attention needs $O(n^2)$ memory, and at long context that term outgrows the weights and
the KV cache.

Naive attention (Vaswani et al. 2017, eq. 1) forms the scores $S = QK^\top/\sqrt{d_k}$ and the probabilities
$P = \mathrm{softmax}(S)$ before it multiplies by $V$: for a batch of $b$ sequences of $n$ tokens and $h$ heads,
$b h n^2$ numbers each, $s$ bytes per number, so $A = 2 b h n^2 s$ bytes per layer. Inference needs one layer's at
a time; training keeps two $n \times n$ tensors of every layer for the backward pass, $L A$ in all (autograd saves
$P$ for the softmax's gradient and the matrix multiplied by $V$, a second copy once dropout or a mask is applied). The
other memories grow at most linearly: the weights $P_\mathrm{w} s$ bytes are fixed, and the KV cache
($2 L b n d s$ bytes, ``derive.kv``) is linear in $n$. So the ratio to the KV cache, $h n / d$, grows without bound,
and the crossovers are closed forms: in training the scores exceed the weights at
$n^* = \sqrt{P_\mathrm{w} / (2 L b h)}$ and the KV cache at $n^* = d/h$, the head size; in inference at
$\sqrt{P_\mathrm{w} / (2 b h)}$ and $L d / h$. The bytes per number cancel. At $b = 1$: GPT-2 small (124,439,808
weights, ``derive.counts``) crosses its weights at $n = 657$ in training (2,277 in inference), LLaMA-7B
(6,738,415,616) at 1,814 (10,261), within their own context lengths; at $n = 4096$ LLaMA-7B's training keeps 64 GiB
of scores and probabilities against 12.6 GiB of bf16 weights.

The check measures, never computes from shapes: the peak tensor memory (``models.utils.memory.peak_bytes``: the
profiler's allocator events on the CPU, the allocator's counters on CUDA) of the project's written-out attention
(``models.attention``) on a grid of $n$, forward (no gradients) and forward plus backward, and fits the log-log
slope. The slope test's tolerance is derived, not tuned: with at least 2 tensors of $n \times n$ and at most 6 of
$n \times d_k$ (output, its gradient, the three input gradients, and the row statistics), the local log-log slope
of $a n^2 + c n + e$ lies within twice the non-quadratic share of 2, and a least-squares slope is a positive
average of local slopes. It also measures the bytes training keeps per layer (2 $n \times n$ tensors: a stack of
$L = 1, 2$ layers) and the peak's multiple of $b h n^2 s$. Controls: the same slope test rejects slope 2 for
PyTorch's fused SDPA (the flash kernel on the CPU, the memory-efficient one on CUDA, forced with ``sdpa_kernel``, so
it fails rather than fall back), which keeps $O(n)$; rejects "naive attention is linear"; and rejects "inference
keeps the $n \times n$ tensors too". Allocator counts are deterministic: a repeated measurement gives the same bytes
(checked), so no sampling error enters and a true claim cannot fail by chance.
"""

from __future__ import annotations

import math

import sympy as sp

from derive.engine import Derivation
from derive.kv import cache_bytes
from derive.model_styles import gpt2_params, llama_params
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.9"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Naive attention stores $2 b h n^2$ numbers per layer (scores and probabilities), so its memory grows like "
    r"$n^2$ and, past a closed-form $n^*$, exceeds the weights and the linear KV cache."
)
DEFAULT_SAMPLES = None  # allocator counts: deterministic, nothing sampled
# Peak of the check: the 3-layer training stack at max_n holds ~7 n x n float32 tensors per head (2 kept per layer
# below the top, 3 at the top layer's peak): 28 h n^2 bytes; measured 0.24 GB at n = 2,048, h = 2.
MAX_BYTES = 1 << 32
N_TENSORS_PEAK = 7
OPTIONS = [
    Option("--min-n", int, 256, "smallest context length n of the grid", lo=16, hi=1 << 14, why="see --max-n"),
    Option(
        "--max-n",
        int,
        2048,
        "largest context length of the grid min_n, 2 min_n, ..., max_n (at least 4 min_n)",
        lo=64,
        hi=1 << 14,
        why="~7 n x n float32 tensors per head at the peak: 2^14 at 1 head needs 7.5 GB; the bound is also "
        "checked with --heads (at most 4 GiB)",
    ),
    Option("--heads", int, 2, "heads h (batch b = 1)", lo=1, hi=64, why="memory grows with h n^2 (see --max-n)"),
    Option(
        "--head-dim",
        int,
        16,
        "head size d_k; the slope test needs min_n at least 9 d_k",
        lo=1,
        hi=256,
        why="the linear terms grow with d_k; a larger d_k needs a larger min_n to tell n^2 from n",
    ),
]
K_QUAD = 2  # n x n tensors naive attention holds at least at its peak: scores and probabilities
K_LIN = 6  # n x d_k tensors (or smaller) at most: output, its gradient, dq, dk, dv, and the row statistics
K_PEAK = 3  # n x n tensors at the written-out code's peak: `s` (held until return), softmax's input and output
MAX_TOL = 0.5  # a slope tolerance above this cannot tell n^2 (slope 2) from n (slope 1) with a margin
BYTES = 4  # float32

# -- derivation ------------------------------------------------------------------------------------

b, h, n, d, L, s, Pw = sp.symbols("b h n d L s P_w", positive=True)
MODELS = {  # (L, h, d, weights); weights from derive.counts through derive.model_styles
    "GPT-2 small": (12, 12, 768, gpt2_params(12, 768, 50257, 12, 1024)),
    "LLaMA-7B": (32, 32, 4096, llama_params(32, 4096, 32000, 32, 11008)),
}


def layer_bytes():
    """Bytes of one layer's scores and probabilities: $2 b h n^2 s$ (sympy)."""
    return 2 * b * h * n**2 * s


def kv_bytes():
    """Bytes of the KV cache of all layers at context n: $2 L b n d s$ (``derive.kv.cache_bytes``, h heads of d/h)."""
    return cache_bytes(n, L, h, d / h, s, b)


def crossovers() -> dict[str, sp.Expr]:
    """The context lengths where naive attention's bytes equal the weights' and the KV cache's, in training (L layers
    kept) and inference (one layer at a time): the positive roots, solved by sympy."""
    w = Pw * s
    out = {}
    for mode, m in (("training", L * layer_bytes()), ("inference", layer_bytes())):
        for what, other in (("weights", w), ("KV cache", kv_bytes())):
            (root,) = [r for r in sp.solve(sp.Eq(m, other), n) if r.is_positive]
            out[f"{mode} vs {what}"] = root
    return out


def derivation() -> Derivation:
    """Bytes of naive attention, its growth against the weights and the KV cache, the four crossovers, and their
    values for GPT-2 small and LLaMA-7B."""
    dx = Derivation(
        "Exercise 13.9: naive attention's memory is quadratic in $n$",
        assumptions=[
            "$b$ sequences of $n$ tokens, $L$ layers of $h$ heads, model width $d$ ($h$ divides $d$), "
            "$s$ bytes per number for weights, activations and cache alike; all positive",
            r"naive attention materialises the scores $S = Q K^T / \sqrt{d/h}$ and the probabilities "
            r"$P = \mathrm{softmax}(S)$, $b h n^2$ numbers each, per layer",
            "training keeps two such tensors per layer for the backward pass (the softmax's output for its gradient "
            "and the matrix multiplied by $V$, a second copy after dropout or masking); inference needs one layer's "
            "at a time",
            "$P_w$ weights; the KV cache holds a key and a value of $d$ numbers per token and layer",
        ],
    )
    A, M, KV, W = (sp.Function(x) for x in ("A", "M", "KV", "W"))
    dx.define(A(n), layer_bytes(), "scores and probabilities of one layer, $b h n^2$ numbers each")
    dx.define(M(n), L * layer_bytes(), "training keeps all $L$ layers' for the backward pass")
    dx.define(W(sp.Symbol("w")), Pw * s, "the weights: fixed in $n$")
    dx.eq(KV(n), 2 * L * b * n * d * s, "$K$ and $V$, $L$ layers, $h$ heads of $d/h$", "expand", computed=kv_bytes())
    m = L * layer_bytes()
    slope = lambda e: sp.diff(e, n) * n / e  # noqa: E731  the local log-log slope d log e / d log n
    dx.eq(sp.Symbol("slope_M"), 2, r"$n M'(n) / M(n)$: quadratic at every $n$", "cancel", computed=slope(m))
    dx.eq(sp.Symbol("slope_KV"), 1, "the KV cache is linear at every $n$", "cancel", computed=slope(kv_bytes()))
    ratio = m / kv_bytes()
    dx.eq(sp.Symbol("M/KV"), h * n / d, "naive attention over the KV cache", "cancel", computed=ratio)
    dx.limit(ratio, n, sp.oo, sp.oo, "grows without bound: at long context the $n^2$ term dominates")
    closed = {
        "training vs weights": sp.sqrt(Pw / (2 * L * b * h)),
        "training vs KV cache": d / h,
        "inference vs weights": sp.sqrt(Pw / (2 * b * h)),
        "inference vs KV cache": L * d / h,
    }
    for key, root in crossovers().items():
        dx.eq(sp.Symbol(f"n*({key})"), closed[key], f"{key}: the positive root; $s$ cancels", "simplify", root)
    for name, (nl, nh, nd, p) in MODELS.items():
        _model_steps(dx, name, nl, nh, nd, p)
    _llama_example(dx)
    return dx


def _model_steps(dx: Derivation, name: str, nl: int, nh: int, nd: int, p) -> None:
    """The model's weight count (derive.counts) and its four crossovers at b = 1, exact."""
    tag = name.split()[0]
    dx.eq(sp.Symbol(f"P_w({tag})"), p, f"{name}'s weights, counted by `derive.counts`", "exact", computed=p)
    sub = {L: nl, h: nh, d: nd, b: 1, Pw: p}
    got = sp.Matrix([[r.subs(sub) for r in crossovers().values()]])
    want = sp.Matrix([[sp.sqrt(sp.Rational(p, 2 * nl * nh)), nd // nh, sp.sqrt(sp.Rational(p, 2 * nh)), nl * nd // nh]])
    approx = ", ".join(f"{float(v):,.0f}" for v in want)
    why = f"{name} at $b = 1$ ($L = {nl}$, $h = {nh}$, $d = {nd}$): training vs weights, vs KV cache; inference vs "
    dx.eq(sp.MatrixSymbol(f"n*({tag})", 1, 4), want, why + f"weights, vs KV cache: {approx}", "simplify", got)


def _llama_example(dx: Derivation) -> None:
    """LLaMA-7B training at n = 4096, bf16: 64 GiB of scores and probabilities."""
    nl, nh, _, p = MODELS["LLaMA-7B"]
    got = (L * layer_bytes()).subs({L: nl, h: nh, b: 1, n: 4096, s: 2})
    dx.eq(sp.Symbol("M(LLaMA, 4096)"), 64 * 2**30, "LLaMA-7B training at $n = 4096$, bf16: 64 GiB", "exact", got)
    dx.holds(got, ">", 5 * p * 2, r"more than 5 times its bf16 weights ($12.6$ GiB)")


# -- measurement -----------------------------------------------------------------------------------


def grid(min_n: int, max_n: int) -> list[int]:
    """min_n, 2 min_n, ..., max_n."""
    return [min_n << i for i in range(int(math.log2(max_n // min_n)) + 1)]


def slope_tolerance(head_dim: int, min_n: int) -> float:
    """The slope test's tolerance: twice the largest share of non-quadratic bytes on the grid,
    $2 K_\\mathrm{lin} d_k / (K_\\mathrm{lin} d_k + K_\\mathrm{quad} n_\\mathrm{min})$ (module docstring)."""
    return 2 * K_LIN * head_dim / (K_LIN * head_dim + K_QUAD * min_n)


def validate(o) -> None:
    """A grid of at least 3 sizes on powers of two, a slope test that can tell n^2 from n, memory within bounds."""
    if o.max_n < 4 * o.min_n or grid(o.min_n, o.max_n)[-1] != o.max_n:
        raise ValueError(f"max_n: must be min_n ({o.min_n:,}) times a power of two >= 4, got {o.max_n:,}")
    if slope_tolerance(o.head_dim, o.min_n) > MAX_TOL:
        raise ValueError(
            f"min_n: with head_dim {o.head_dim} the slope test needs min_n >= {9 * o.head_dim:,} (tolerance "
            f"{slope_tolerance(o.head_dim, o.min_n):.2f} > {MAX_TOL} could not tell n^2 from n), got {o.min_n:,}"
        )
    need = N_TENSORS_PEAK * o.heads * o.max_n**2 * BYTES
    if need > MAX_BYTES:
        raise ValueError(f"max_n: {o.max_n:,} at {o.heads} heads needs ~{need / 2**30:.1f} GiB (at most 4 GiB)")


def _naive(q, k, v):
    from models.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(q, k, v)


def _fused(dev):
    """PyTorch's SDPA with only the backend that keeps O(n) memory on ``dev`` enabled (the CPU has the flash
    kernel, CUDA in float32 the memory-efficient one): with one backend allowed, torch raises rather than fall back."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = SDPBackend.FLASH_ATTENTION if dev.type == "cpu" else SDPBackend.EFFICIENT_ATTENTION

    def attn(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)

    return attn, backend.name


def _forward(attn, q, k, v):
    import torch

    def run():
        with torch.no_grad():
            return attn(q, k, v)

    return run


def _train(attn, q, k, v):
    """Forward and backward from the output; the input gradients are returned, so they count."""
    import torch

    def run():
        qq, kk, vv = (t.detach().requires_grad_() for t in (q, k, v))
        out = attn(qq, kk, vv)
        out.backward(torch.ones_like(out))
        return qq.grad, kk.grad, vv.grad

    return run


def _stack(attn, q, k, v, layers: int, grad: bool):
    """Forward only through ``layers`` stacked attentions (x <- attn(x, x, x) after the first), with autograd
    recording (``grad``: what training keeps until the backward pass) or not (inference); the output is returned."""
    import torch

    def run():
        with torch.set_grad_enabled(grad):
            x = attn(*(t.detach().requires_grad_(grad) for t in (q, k, v)))
            for _ in range(layers - 1):
                x = attn(x, x, x)
            return x

    return run


@with_options
def check(o) -> CheckResult:
    """Peak memory of written-out attention against n (forward; forward and backward), its slopes, the bytes kept per
    layer in training and the peak's multiple of $b h n^2 s$; controls: fused SDPA, slope 1, inference keeping."""
    from models.utils.device import describe, generator, pick_device
    from models.utils.memory import loglog_slope, peak_bytes

    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    ns, fused, backend = grid(o.min_n, o.max_n), *_fused(dev)
    unit = lambda nv: o.heads * nv * nv * BYTES  # noqa: E731  b h n^2 s bytes: one n x n tensor per head, b = 1
    inputs = {nv: [_randn(gen, dev, (1, o.heads, nv, o.head_dim)) for _ in range(3)] for nv in ns}
    peak_bytes(_train(_naive, *inputs[ns[0]]), dev)  # warm-up: one-time allocations (CUDA's cuBLAS workspace)
    rows = []
    for nv in ns:
        q, k, v = inputs[nv]
        rows.append(
            {
                "n": nv,
                "naive fwd": peak_bytes(_forward(_naive, q, k, v), dev),
                "naive fwd+bwd": peak_bytes(_train(_naive, q, k, v), dev),
                "SDPA fwd": peak_bytes(_forward(fused, q, k, v), dev),
                "SDPA fwd+bwd": peak_bytes(_train(fused, q, k, v), dev),
                "2 b h n^2 s": 2 * unit(nv),
            }
        )
    for row in rows:
        row["naive fwd+bwd / (b h n^2 s)"] = row["naive fwd+bwd"] / unit(row["n"])
    col = lambda key: [row[key] for row in rows]  # noqa: E731
    fits = {key: loglog_slope(ns, col(key)) for key in ("naive fwd", "naive fwd+bwd", "SDPA fwd", "SDPA fwd+bwd")}
    tol = slope_tolerance(o.head_dim, o.min_n)
    repeat = peak_bytes(_train(_naive, *inputs[ns[0]]), dev)

    top = ns[-2]  # the stacks at the next-largest n: the slack below is small there already, and it is 4 x cheaper
    q, k, v = inputs[top]
    stack = [peak_bytes(_stack(_naive, q, k, v, layers, grad=True), dev) for layers in (1, 2)]
    infer = [peak_bytes(_stack(_naive, q, k, v, layers, grad=False), dev) for layers in (1, 2)]
    kept, kept_inf = ((x[1] - x[0]) / unit(top) for x in (stack, infer))  # what the first layer leaves behind
    slack = K_LIN * o.head_dim / top  # n x d_k tensors in units of n x n ones
    multiple = rows[-2]["naive fwd+bwd / (b h n^2 s)"]

    lin = o.heads * ns[-1] * o.head_dim * BYTES  # one n x d_k tensor per head at the largest n
    shape = f"b = 1, h = {o.heads}, d_k = {o.head_dim}, float32"
    res = CheckResult(
        f"Exercise {NUMBER}: peak memory of naive attention against n ({shape})", describe(dev), None, o.seed
    )
    res.table = rows
    span = f"n = {ns[0]}..{ns[-1]}"
    res.claims += [
        Bound.of(f"naive attention, forward: log-log slope of peak bytes, {span}", fits["naive fwd"][0], 2, tol),
        Bound.of(f"naive attention, forward+backward: slope, {span}", fits["naive fwd+bwd"][0], 2, tol),
        Bound.of(f"training keeps per layer (n = {top}), in n x n tensors per head", kept, K_QUAD, slack),
        Bound.of(f"peak of forward+backward (n = {top}), in n x n tensors per head", multiple, K_PEAK, slack),
        Bound.of(f"the same measurement repeated (n = {ns[0]}): bytes", repeat, rows[0]["naive fwd+bwd"], 0),
    ]
    res.controls += [
        Bound.of(f"SDPA {backend} backend, forward+backward: slope is 2", fits["SDPA fwd+bwd"][0], 2, tol),
        Bound.of(f"SDPA {backend} backend, forward: slope is 2", fits["SDPA fwd"][0], 2, tol),
        Bound.of("naive attention is linear: forward+backward slope is 1", fits["naive fwd+bwd"][0], 1, tol),
        Bound.of(f"inference keeps the scores too: per layer (n = {top}), n x n tensors", kept_inf, K_QUAD, slack),
    ]
    res.notes += [
        f"Slope tolerance {tol:.3f} = 2 K_lin d_k / (K_lin d_k + K_quad min_n) with K_lin = {K_LIN} tensors of "
        f"n x d_k at most and K_quad = {K_QUAD} of n x n at least (module docstring): derived, not tuned. Fit "
        "stderrs (curvature from the linear terms, not noise): "
        + ", ".join(f"{key} {v[0]:.4f} ± {v[1]:.2g}" for key, v in fits.items())
        + ".",
        "Peak bytes are allocator counts: deterministic (the repeat gives the same bytes), so there is no sampling "
        "error and no false-alarm probability from chance; a true claim fails only if the derived bounds are wrong.",
        f"The written-out code's peak holds {K_PEAK} n x n tensors per head (measured {multiple:.4f}): `s` stays "
        "alive until it returns, beside the softmax's input and output. Training keeps 2 per layer (measured "
        f"{kept:.4f}: the softmax output and the masked copy multiplied by V); inference keeps {kept_inf:.4f}.",
        f"SDPA's {backend} backend keeps O(n): forward {rows[-1]['SDPA fwd'] / lin:.3g} and forward+backward "
        f"{rows[-1]['SDPA fwd+bwd'] / lin:.3g} tensors of n x d_k at n = {ns[-1]} (the output, its gradient, dq, "
        f"dk, dv and the kernel's per-thread buffers), slope {fits['SDPA fwd+bwd'][0]:.3f} (above).",
    ]
    return res


def _randn(gen, dev, shape):
    import torch

    return torch.randn(shape, generator=gen, device=dev)


# -- figure ----------------------------------------------------------------------------------------


def figure(res: CheckResult):
    """Peak memory of naive attention against $n$ on log-log axes, forward and forward plus backward, with the derived
    $2 b h n^2 s$ and PyTorch's fused SDPA, whose memory grows like $n$; all measured by the check, not recomputed
    (the slopes in the legend are fitted to the drawn points)."""
    from models.utils.memory import loglog_slope

    rows, o = res.table, res.settings
    ns = [row["n"] for row in rows]
    fig, ax = plotting.subplots(width=6.8, height=4.6)
    for key, style in (("naive fwd+bwd", "s-"), ("naive fwd", "o:"), ("SDPA fwd+bwd", "^-"), ("SDPA fwd", "v:")):
        ys = [row[key] for row in rows]
        ax.loglog(ns, ys, style, label=f"{key}: slope {loglog_slope(ns, ys)[0]:.3f}")
    unit = [o.heads * nv * nv * BYTES for nv in ns]
    ax.loglog(ns, [2 * u for u in unit], "k--", label="derived $2 b h n^2 s$: scores, probabilities")
    ax.loglog(ns, [K_PEAK * u for u in unit], "k:", lw=0.8, label=f"${K_PEAK} b h n^2 s$: the written-out code's peak")
    ax.set_xticks(ns, [str(nv) for nv in ns])
    ax.minorticks_off()
    ax.set(xlabel="context length $n$", ylabel="peak bytes above the inputs")
    what = f"Exercise {NUMBER}: attention memory, $h = {o.heads}$, $d_k = {o.head_dim}$, float32"
    ax.set_title(plotting.title(res, what), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

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

import sys

import sympy as sp
import torch

from derive import counts
from derive.counts import L, V, d, h, n_ctx
from derive.engine import Derivation
from models.gpt import GPT, GPTConfig
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.flops import count_flops
from proofs.cli import Option

NUMBER = "13.29"
CLAIM = "Inference costs about 2N FLOPs per token (N non-embedding parameters), plus 2 L n_ctx d for attention."
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


def _sizes(name: str, value, multiple: int = 1, maximum: int = 1 << 30, why: str = "") -> list[int]:
    """Parse '64,128' (or a list of ints) into sorted unique positive ints; ValueError names ``name``."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for p in parts:
        try:
            v = int(str(p).strip())
        except ValueError:
            raise ValueError(f"{name}: expected comma-separated integers, got {str(value)[:80]!r}") from None
        if v <= 0:
            raise ValueError(f"{name}: each must be at least 1, got {v:,}")
        if v > maximum:
            raise ValueError(f"{name}: each must be at most {maximum:,}{f' ({why})' if why else ''}, got {v:,}")
        if v % multiple:
            raise ValueError(f"{name}: each must be a multiple of {multiple}, got {v}")
        out.append(v)
    if not out:
        raise ValueError(f"{name}: give at least one value")
    out = sorted(set(out))
    if len(out) > MAX_COUNT:
        raise ValueError(f"{name}: at most {MAX_COUNT} distinct values (each adds models or passes), got {len(out):,}")
    return out


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


def _validate(widths, contexts, layers, samples):
    ws = _sizes("widths", widths, N_HEAD, MAX_WIDTH, "a GPT of 12 L d^2 weights is built for each")
    cs = _sizes("contexts", contexts, 1, MAX_CONTEXT, "4 L n^2 d attention FLOPs per forward, n x n scores")
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise ValueError(f"layers: must be an integer in [1, {MAX_LAYERS}], got {layers!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 3:
        raise ValueError(f"samples: need at least 3 decode positions (first, middle, last), got {samples!r}")
    if samples > min(cs):  # positions are distinct: a context of n tokens has only n of them
        raise ValueError(
            f"samples: decode positions per context must be at most the shortest context ({min(cs)}), got {samples:,}"
        )
    secs, nbytes = check_cost(ws, cs, layers, samples)
    sizes = f"widths {','.join(map(str, ws))}, contexts {','.join(map(str, cs))}, L {layers}, {samples:,} positions"
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
    return ws, cs


def validate(widths="64,256", contexts="16,64,256", layers=2, samples=DEFAULT_SAMPLES) -> None:
    """Refuse bad options before any work (the CLI calls this before the derivation)."""
    _validate(widths, contexts, layers, samples)


def derivation() -> Derivation:
    i, t = sp.symbols("i t", positive=True, integer=True)
    N, F = sp.Symbol("N", positive=True), sp.Function("F")
    N_blocks = L * counts.block_matmul_params(d, h)  # 12 L d^2
    kaplan = counts.forward_flops_per_token(N_blocks, L, n_ctx, d, V, "kaplan")
    dx = Derivation(
        "Exercise 13.29: forward FLOPs per token of a decoder-only Transformer",
        assumptions=[
            "a multiply-add is 2 FLOPs; a (1 x a) row times an (a x b) matrix is 2ab FLOPs",
            "L blocks of width d, h heads of size d/h (h divides d), a 4d GELU MLP, vocabulary V",
            "biases, norms, softmax and GELU are elementwise and left out (lower order, as Kaplan et al.)",
            "the embedding is a table lookup: 0 FLOPs; the output layer is a d x V matmul",
        ],
    )
    dx.eq(
        sp.Symbol("N_attn"),
        4 * d**2,
        "attention weights W_Q, W_K, W_V, W_O (d x d each; any h)",
        strategy="exact",
        computed=counts.attention_params(d, h, bias=False),
    )
    dx.eq(
        sp.Symbol("N_mlp"),
        8 * d**2,
        "MLP weights d x 4d and 4d x d",
        strategy="exact",
        computed=counts.mlp_params(d, bias=False),
    )
    dx.eq(
        N,
        2 * d * L * (2 * d + 4 * d),
        "N = L (N_attn + N_mlp) = 12 L d^2, Kaplan's 2 d L (2 d_attn + d_ff)",
        strategy="expand",
        computed=N_blocks,
    )
    per_matrix = 2 * L * (d * d + d * d + d * d + d * d + d * 4 * d + 4 * d * d)
    dx.eq(
        F("blocks"),
        2 * N_blocks,
        "each of the 6 matrices per block costs 2 rows cols per token: 2N",
        strategy="expand",
        computed=per_matrix,
    )
    dx.eq(
        F("attention", i),
        4 * i * d,
        "token i: h heads x (i scores of size d/h + i value rows of size d/h)",
        strategy="cancel",
        computed=h * (2 * i * (d / h) + 2 * i * (d / h)),
    )
    mean = sp.Sum(L * 4 * i * d, (i, 1, n_ctx)) / n_ctx
    dx.eq(
        mean,
        2 * L * d * (n_ctx + 1),
        "causal mean over positions i = 1..n_ctx, all L layers",
        strategy="factor",
        computed=mean.doit(),
    )
    dx.limit(
        2 * L * d * (n_ctx + 1) / counts.attention_flops_per_token(L, n_ctx, d, "kaplan"),
        n_ctx,
        sp.oo,
        1,
        "Kaplan's 2 L n_ctx d is this causal mean at large n_ctx",
    )
    dense = counts.attention_flops_per_token(L, n_ctx, d, "dense")
    dx.eq(
        sp.Sum(L * 4 * n_ctx * d, (i, 1, n_ctx)) / n_ctx,
        dense,
        "the full n x n score matrix (what FlopCounterMode counts, mask or not): 4 L n_ctx d per token",
        strategy="factor",
        computed=(sp.Sum(L * 4 * n_ctx * d, (i, 1, n_ctx)) / n_ctx).doit(),
    )
    dx.eq(
        F("dense") / F("Kaplan"),
        2,
        "the dense count is twice Kaplan's causal convention",
        strategy="cancel",
        computed=dense / counts.attention_flops_per_token(L, n_ctx, d, "kaplan"),
    )
    dx.eq(
        F("output"),
        2 * d * V,
        "output layer: one d x V matmul per token (the embedding lookup is 0 FLOPs)",
        strategy="exact",
        computed=counts.forward_flops_per_token(0, L, n_ctx, d, V, "none"),
    )
    dx.eq(
        F("forward"),
        2 * N_blocks + 2 * L * n_ctx * d + 2 * d * V,
        "total per token (Kaplan's convention for attention)",
        strategy="expand",
        computed=kaplan,
    )
    dx.eq(
        F("forward") / (2 * N) - 1,
        n_ctx / (12 * d) + V / (12 * L * d),
        "relative excess over 2N: small when n_ctx << 12 d and V << 12 L d",
        strategy="cancel",
        computed=kaplan / (2 * N_blocks) - 1,
    )
    dx.limit(kaplan / (2 * N_blocks), d, sp.oo, 1, "so F / 2N -> 1 as the width grows at fixed n_ctx and V")
    step_t = counts.forward_flops_per_token(N_blocks, L, t + 1, d, V, "dense")
    dx.eq(
        F("decode", t),
        2 * N_blocks + 2 * d * V + 4 * L * d * (t + 1),
        "a KV-cache decode step at position t attends to t + 1 keys: the dense term with n_ctx = t + 1",
        strategy="expand",
        computed=step_t,
    )
    gen_mean = sp.Sum(step_t, (t, 0, n_ctx - 1)) / n_ctx
    dx.eq(
        gen_mean,
        2 * N_blocks + 2 * d * V + 2 * L * d * (n_ctx + 1),
        "mean over a generation of n_ctx tokens: Kaplan's formula with n_ctx + 1",
        strategy="factor",
        computed=gen_mean.doit(),
    )
    return dx


# -- numerics ------------------------------------------------------------------------------------


def _counted(fn) -> int:
    """Total FLOPs recorded while ``fn()`` runs under no_grad (inference)."""
    with torch.no_grad():
        return count_flops(fn)[1]


def _model(width: int, layers: int, block: int, dev) -> GPT:
    cfg = GPTConfig(
        block_size=block,
        vocab_size=VOCAB,
        n_layer=layers,
        n_head=N_HEAD,
        n_embd=width,
        bias=False,
        attn="manual",
        tie_weights=True,
    )
    return GPT(cfg).to(dev).eval()


def block_matmul_weights(model: GPT) -> int:
    """Weights of the Linear layers inside the blocks (the N of the FLOP count), read off the model."""
    return sum(m.weight.numel() for m in model.h.modules() if isinstance(m, torch.nn.Linear))


def measure_forward(model: GPT, idx) -> int:
    """FLOPs of one full forward over ``idx`` (1, n)."""
    return _counted(lambda: model(idx))


def measure_decode(model: GPT, idx, t: int) -> int:
    """FLOPs of the KV-cache decode step at position t. The cache is marked as holding t earlier
    positions without running the prefill: their key/value entries do not change the count."""
    cache = model.new_cache(1, t + 1)
    cache.length = t
    return _counted(lambda: model(idx[:, t : t + 1], cache=cache))


def _positions(n: int, samples: int) -> list[int]:
    return sorted({round(k * (n - 1) / (samples - 1)) for k in range(samples)})


def _int(e) -> int:
    e = sp.sympify(e)
    if not e.is_integer:
        raise AssertionError(f"expected an integer count, got {e}")
    return int(e)


def check(
    device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, widths="64,256", contexts="16,64,256", layers: int = 2
) -> CheckResult:
    ws, cs = _validate(widths, contexts, layers, samples)
    dev = pick_device(device)
    gen = generator(dev, seed)
    res = CheckResult(CLAIM, describe(dev), samples, seed)
    Lv, nmax = layers, max(cs)
    ratio_claims, long_ctl = [], None
    for w in ws:
        model = _model(w, Lv, nmax, dev)
        Nmm = _int(Lv * counts.block_matmul_params(w, N_HEAD))
        res.claims.append(
            Bound.of(f"d={w}: block matmul weights of the model = 12 L d^2", block_matmul_weights(model), Nmm, 0)
        )
        idx = torch.randint(0, VOCAB, (1, nmax), device=dev, generator=gen)
        for n in cs:
            sub = dict(N=Nmm, L=Lv, n_ctx=n, d=w, V=VOCAB)
            dense = n * _int(counts.forward_flops_per_token(**sub, attention="dense"))
            f_fwd = measure_forward(model, idx[:, :n])
            tag = f"d={w} n={n}"
            res.claims.append(Bound.of(f"{tag}: full forward = n (2N + 2dV) + 4 L n^2 d (dense)", f_fwd, dense, 0))
            res.controls.append(
                Bound.of(
                    f"{tag}: full forward = n (2N + 2dV + 2 L n d) (Kaplan's causal term)",
                    f_fwd,
                    n * _int(counts.forward_flops_per_token(**sub)),
                    0,
                )
            )
            res.controls.append(
                Bound.of(
                    f"{tag}: full forward = n (2N + 2dV) (no attention term)",
                    f_fwd,
                    n * _int(counts.forward_flops_per_token(**sub, attention="none")),
                    0,
                )
            )
            steps = {}
            for t in _positions(n, samples):
                steps[t] = measure_decode(model, idx, t)
                want = _int(counts.forward_flops_per_token(**(sub | dict(n_ctx=t + 1)), attention="dense"))
                res.claims.append(Bound.of(f"{tag}: decode step t={t} = 2N + 2dV + 4 L d (t+1)", steps[t], want, 0))
            # cost is affine in t (checked exactly at every measured t), so the mean over t = 0..n-1
            # is the mean of the two end steps
            mean = (steps[0] + steps[n - 1]) / 2
            att_rel, out_rel = 2 * Lv * w * (n + 1) / (2 * Nmm), 2 * w * VOCAB / (2 * Nmm)
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
            if att_rel <= EPS / 2 and out_rel <= EPS / 2:
                ratio_claims.append((tag, mean, Nmm))
            if att_rel >= 2 * EPS and (long_ctl is None or att_rel > long_ctl[3]):
                long_ctl = (tag, mean, Nmm, att_rel)
    for tag, mean, Nmm in ratio_claims:
        res.claims.append(Bound.of(f"{tag}: decode mean / 2N ~ 1 (within {EPS:.0%})", mean / (2 * Nmm), 1.0, EPS))
        res.controls.append(Bound.of(f"{tag}: decode mean / 6N ~ 1 (training's 6N)", mean / (6 * Nmm), 1.0, EPS))
        res.controls.append(Bound.of(f"{tag}: decode mean / N ~ 1", mean / Nmm, 1.0, EPS))
    if long_ctl is not None:
        tag, mean, Nmm, _ = long_ctl
        res.controls.append(
            Bound.of(f"{tag}: decode mean / 2N ~ 1 at a long context (no attention term)", mean / (2 * Nmm), 1.0, EPS)
        )
    else:
        res.notes.append("no context is long enough (2 L d (n+1) >= 20% of 2N) for the long-context control")
    if not ratio_claims:
        res.notes.append("no (d, n_ctx) lies in the 'about 2N' regime ((n+1)/12d and V/12Ld both <= 5%)")
    res.notes += [
        f"GPT with L={Lv}, h={N_HEAD}, V={VOCAB}, no biases, tied embeddings, attn='manual', float32; "
        "FLOPs from torch.utils.flop_counter.FlopCounterMode (2 per multiply-add)",
        "N = 12 L d^2 counts the block matmul weights; the non-embedding count N_nonemb also has the "
        "(2L + 1) d norm gains, which are elementwise (0 counted FLOPs)",
        "the embedding lookup and the position add record 0 FLOPs; the tied output layer is a d x V matmul (2dV)",
        "the full forward is counted dense (4 L n d per token, the whole n x n score matrix); KV-cache "
        "decoding is causal: its mean over t = 0..n-1 is 2N + 2dV + 2 L d (n+1), Kaplan's formula with n+1",
        f"decode positions per context: {samples} evenly spaced, first and last included; "
        "the 'about 2N' claim applies where both derived corrections (n+1)/12d and V/12Ld are <= 5%",
    ]
    return res


def figure(path, device=None, seed: int = 0, widths="64,256", contexts="16,64,256", layers: int = 2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    ws, cs = _validate(widths, contexts, layers, DEFAULT_SAMPLES)
    dev = pick_device(device)
    gen = generator(dev, seed)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    grid = sorted({round(max(cs) ** (k / 59)) for k in range(60)})
    for w in ws:
        model = _model(w, layers, max(cs), dev)
        Nmm = _int(layers * counts.block_matmul_params(w, N_HEAD))
        idx = torch.randint(0, VOCAB, (1, max(cs)), device=dev, generator=gen)
        meas = [measure_forward(model, idx[:, :n]) / n / (2 * Nmm) for n in cs]
        sub = dict(N=Nmm, L=layers, d=w, V=VOCAB)
        dense = [float(counts.forward_flops_per_token(**sub, n_ctx=n, attention="dense")) / (2 * Nmm) for n in grid]
        causal = [
            float(counts.forward_flops_per_token(**sub, n_ctx=n + 1, attention="kaplan")) / (2 * Nmm) for n in grid
        ]
        line = ax.plot(grid, dense, "-", label=f"d={w}: full forward (dense formula)")[0]
        ax.plot(grid, causal, "--", color=line.get_color(), label=f"d={w}: KV-cache mean (Kaplan, n+1)")
        ax.plot(cs, meas, "o", color=line.get_color(), label=f"d={w}: FlopCounterMode")
    ax.axhline(1.0, color="k", lw=0.8, label="2N")
    ax.set_xscale("log")
    ax.set_xlabel("context length n_ctx")
    ax.set_ylabel("forward FLOPs per token / 2N")
    ax.set_title(f"Exercise 13.29: FLOPs per token (L={layers}, V={VOCAB})")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

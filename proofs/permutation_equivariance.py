r"""Exercise 13.2: self-attention without positional encoding is permutation-equivariant.

In plain words: attention compares every token with every other token by content alone, and sums the
values with weights that come from those comparisons. Nothing in it says which token came first. So
if the input rows are shuffled, each output row is computed from the same content as before and lands
where its input row went: the outputs are shuffled the same way, and nothing else changes. A causal
mask or a positional encoding is exactly what ties a row to its place, and either breaks this.

Write $S(X) = X W_Q (X W_K)^T / \sqrt{d_k}$ and $\mathrm{Attn}(X) = \mathrm{softmax}(S(X))\, X W_V$, the
softmax taken row by row. For a permutation matrix $P$ (so $P^T P = I$):

$$S(PX) = P\,S(X)\,P^T, \qquad \mathrm{softmax}(P S P^T) = P\,\mathrm{softmax}(S)\,P^T,$$

the first because $(PX) W = P (X W)$, the second because the softmax acts on each row on its own
(permuting the rows of $S$ permutes its output rows) and a row's normaliser $\sum_k e^{S_{ik}}$ does not
depend on the order of its terms (permuting the columns permutes the output columns). Hence
$\mathrm{Attn}(PX) = P\,\mathrm{softmax}(S)\,P^T P\, X W_V = P\,\mathrm{Attn}(X)$. The derivation proves,
for a symbolic $3 \times 3$ input $X$ and symbolic $3 \times 3$ projections $W_Q, W_K, W_V$, each of
these identities for every one of the six $3 \times 3$ permutation matrices, and the lemma for a
symbolic score matrix $S$ (every step proved by sympy, none spot-checked). It also shows the causal
mask breaking it: swapping tokens 1 and 2 moves the first output row by $w (v_2 - v_1)$ with a weight
$w > 0$, where $v_i$ is the value row of token $i$.

The check runs the project's own modules in float64 on random inputs, random weights and a random
permutation other than the identity per trial: ``models.gpt.CausalSelfAttention`` with ``causal=False``
(the sdpa kernel and the by-hand softmax of exercise 13.19), and the stack of bidirectional Blocks and
final norm of ``models.encoder.Encoder`` without its position table. Each satisfies
$\max |f(PX) - P f(X)| \le 10^{-12}$ (rounding reaches about $2 \times 10^{-15}$). The same comparison
rejects five plausible wrong claims, each off by order 1: that the causal attention, the causal stack
(the same weights, ``causal=True``), the stack with the encoder's learned positions added to the input,
the stack with the sinusoidal table added, or the attention with RoPE (``pos="rope"``, whose scores
depend on relative positions) is equivariant too.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import sympy as sp
import torch

from derive.engine import Derivation
from models.encoder import Encoder
from models.gpt import Block, CausalSelfAttention, GPTConfig
from models.positional import sinusoidal_table
from models.utils.device import describe, generator, one_thread, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options
from proofs.prenorm_postnorm import random_state

NUMBER = "13.2"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Self-attention without positional encoding is permutation-equivariant: "
    r"$\mathrm{Attn}(PX) = P\,\mathrm{Attn}(X)$ for every permutation matrix $P$."
)
DEFAULT_SAMPLES = 8  # random trials: fresh weights, inputs and a permutation other than the identity each
# Per trial: 2 L Blocks (12 d^2 float64 weights each, with their state dicts and float32 init copies), 4 attention
# layers (4 d^2 each), and one layer's 2 x 4 heads x T^2 float64 scores at a time. Measured on one thread of 2 busy
# CPU cores (load 8), per trial: defaults 0.03 s; d 2,048, L 1, T 8: 11.7 s, 1.3 GB; d 1,024, L 4, T 16: 7.9 s,
# 1.0 GB; d 64, L 1, T 2,048: 12.3 s, 0.87 GB; d 128, L 8, T 512: 6.7 s, 0.16 GB; d 32, L 48, T 8: 0.59 s. A fit
# that covers these: 260 L d^2 + 220 T^2 + 200 L T d bytes, 0.03 + L (0.012 + 2.5e-6 d^2 + 3e-8 T d^2 + 3e-6 T^2) s.
MAX_D, MAX_T, MAX_LAYERS, MAX_BYTES, MAX_SECONDS = 2048, 4096, 48, 1 << 32, 420
MAX_SAMPLES = 10_000
SAMPLES_WHY = "the check's time grows linearly: about 0.03 to 0.06 s per trial at the defaults on 2 busy CPU cores"
OPTIONS = [
    Option(
        "--d-model",
        int,
        16,
        "width d of the inputs and blocks (a multiple of 8: 4 heads of even size, for the RoPE control)",
        lo=8,
        hi=MAX_D,
        why="2 L float64 Blocks of 12 d^2 weights with copies, ~260 L d^2 bytes: 2,048 with 4 layers needs 4.4 GB "
        "(validate refuses more than 4.3 GB)",
    ),
    Option(
        "--tokens",
        int,
        6,
        "number of tokens T, the rows that are permuted (at least 2, so that a permutation moves one)",
        lo=2,
        hi=MAX_T,
        why="one layer's 2 x 4 heads x T^2 float64 scores in copies, ~220 T^2 bytes: 4,096 needs 3.7 GB",
    ),
    Option(
        "--layers",
        int,
        2,
        "number L of Blocks in the bidirectional stack (and in the causal control)",
        lo=1,
        hi=MAX_LAYERS,
        why="time grows linearly in L, ~0.012 s per layer even at d 8 (48 layers of d 32: 0.6 s per trial)",
    ),
]
N_HEAD = 4
BATCH = 2
EQUAL_TOL = 1e-12  # float64: outputs are O(1), eps 2.2e-16, so 1e-12 is ~4,500 ulps; rounding reaches ~1e-15

# -- derivation ----------------------------------------------------------------------------------

PERMS = list(itertools.permutations(range(3)))  # sigma; P e_j = e_sigma(j), so (P X)_i = X_{sigma^-1(i)}


def perm_matrix(sigma) -> sp.Matrix:
    """The permutation matrix P with P[sigma[j], j] = 1: (P X) moves row j of X to row sigma[j]."""
    n = len(sigma)
    return sp.Matrix(n, n, lambda i, j: 1 if sigma[j] == i else 0)


def symbols(name: str) -> sp.Matrix:
    """A 3 x 3 matrix of real symbols name_11 .. name_33."""
    return sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def softmax(S: sp.Matrix) -> sp.Matrix:
    """Row-wise softmax: e^{S_ij} / sum_k e^{S_ik}; an entry of -oo (a masked key) gets weight 0."""
    E = S.applyfunc(sp.exp)
    return sp.Matrix(S.rows, S.cols, lambda i, j: E[i, j] / sum(E[i, k] for k in range(S.cols)))


def scores(X: sp.Matrix, WQ: sp.Matrix, WK: sp.Matrix) -> sp.Matrix:
    """S(X) = X W_Q (X W_K)^T / sqrt(d_k), with d_k the number of columns of W_Q."""
    return X * WQ * (X * WK).T / sp.sqrt(WQ.cols)


def attention(X, WQ, WK, WV, mask=None) -> sp.Matrix:
    """softmax(S(X) + mask) X W_V (Vaswani et al. 2017, eq. 1), one head, exact."""
    S = scores(X, WQ, WK)
    return softmax(S if mask is None else S + mask) * X * WV


CAUSAL = sp.Matrix(3, 3, lambda i, j: 0 if j <= i else -sp.oo)  # query i sees keys j <= i


def _all(f) -> sp.Matrix:
    """The six 3 x 3 matrices f(P) side by side (3 x 18), one per permutation matrix P."""
    return sp.Matrix.hstack(*(f(perm_matrix(s)) for s in PERMS))


def _zero_for_all(dx: Derivation, name: str, f, reason: str, strategy: str) -> None:
    dx.eq(sp.MatrixSymbol(name, 3, 18), sp.zeros(3, 18), reason, strategy, computed=_all(f))


def derivation() -> Derivation:
    """For symbolic 3 x 3 X, W_Q, W_K, W_V and S, every one of the six 3 x 3 permutation matrices P:
    P^T P = I, S(PX) = P S(X) P^T, (PX) W_V = P X W_V, softmax(P S P^T) = P softmax(S) P^T (rows and
    columns separately, then together), and Attn(PX) = P Attn(X); then the causal mask breaking it."""
    dx = Derivation(
        "Exercise 13.2: attention without positions is permutation-equivariant",
        assumptions=[
            "$X$, $W_Q$, $W_K$, $W_V$ and $S$ are $3 \\times 3$ matrices of independent real symbols; "
            "$d_k = 3$; no positional encoding",
            r"$P_1, \ldots, P_6$ are the six $3 \times 3$ permutation matrices; each matrix $D$ below holds "
            r"six $3 \times 3$ blocks side by side, one per $P_k$",
        ],
    )
    X, WQ, WK, WV, S = (symbols(n) for n in ("x", "q", "k", "v", "s"))
    ms = lambda n: sp.MatrixSymbol(n, 3, 3)  # noqa: E731
    dx.define(ms("S(X)"), ms("X") * ms("W_Q") * (ms("X") * ms("W_K")).T / sp.sqrt(3), "the scores")
    i, j, k = sp.symbols("i j k", integer=True, positive=True)
    s_ = sp.IndexedBase("S")
    dx.define(
        sp.IndexedBase("softmax(S)")[i, j],
        sp.exp(s_[i, j]) / sp.Sum(sp.exp(s_[i, k]), (k, 1, 3)),
        "the softmax, row by row",
    )
    dx.define(ms("Attn(X)"), ms("softmax(S(X))") * ms("X") * ms("W_V"), "one attention head")
    eye = sp.eye(3)
    _zero_for_all(
        dx, "D_I", lambda P: P.T * P - eye, "$D_I$: $P_k^T P_k - I = 0$, a permutation is orthogonal", "expand"
    )
    A = scores(X, WQ, WK)
    _zero_for_all(
        dx,
        "D_S",
        lambda P: scores(P * X, WQ, WK) - P * A * P.T,
        "$D_S$: $S(P_k X) - P_k S(X) P_k^T = 0$, since $(P_k X) W = P_k (X W)$: rows and columns of the scores permute",
        "expand",
    )
    _zero_for_all(dx, "D_V", lambda P: P * X * WV - P * (X * WV), "$D_V$: the values permute with the rows", "expand")
    soft = softmax(S)
    _zero_for_all(
        dx,
        "D_row",
        lambda P: softmax(P * S) - P * soft,
        r"$D_{\mathrm{row}}$: $\mathrm{softmax}(P_k S) - P_k\,\mathrm{softmax}(S) = 0$ for symbolic $S$: "
        "the softmax acts on each row on its own",
        "cancel",
    )
    _zero_for_all(
        dx,
        "D_col",
        lambda P: softmax(S * P.T) - soft * P.T,
        r"$D_{\mathrm{col}}$: $\mathrm{softmax}(S P_k^T) - \mathrm{softmax}(S) P_k^T = 0$: a row's sum "
        r"$\sum_k e^{S_{ik}}$ does not depend on the order of its terms",
        "cancel",
    )
    _zero_for_all(
        dx,
        "D_soft",
        lambda P: softmax(P * S * P.T) - P * soft * P.T,
        r"$D_{\mathrm{soft}}$: together, $\mathrm{softmax}(P_k S P_k^T) = P_k\,\mathrm{softmax}(S)\,P_k^T$",
        "cancel",
    )
    attn = attention(X, WQ, WK, WV)
    _zero_for_all(
        dx,
        "D_Attn",
        lambda P: attention(P * X, WQ, WK, WV) - P * attn,
        r"$D_{\mathrm{Attn}}$: hence $\mathrm{Attn}(P_k X) = P_k\,\mathrm{softmax}(S)\,P_k^T P_k X W_V = "
        r"P_k\,\mathrm{Attn}(X)$, checked on the whole expression in $X$, $W_Q$, $W_K$, $W_V$",
        "cancel",
    )
    _causal_steps(dx, S, symbols("v"))
    return dx


def _causal_steps(dx: Derivation, S: sp.Matrix, V: sp.Matrix) -> None:
    """With the causal mask M, swapping tokens 1 and 2 moves the first output row by w (v_2 - v_1), w > 0."""
    P = perm_matrix((1, 0, 2))
    out = lambda S_, V_: softmax(S_ + CAUSAL) * V_  # noqa: E731 - softmax(S + M) V: scores and values given
    diff = (out(P * S * P.T, P * V) - P * out(S, V))[0, :]
    w = sp.exp(S[1, 0]) / (sp.exp(S[1, 0]) + sp.exp(S[1, 1]))
    dx.eq(
        sp.MatrixSymbol("d_c", 1, 3),
        w * (V[1, :] - V[0, :]),
        r"the causal mask $M$ ($M_{ij} = -\infty$ for $j > i$) breaks it: for the swap $P$ of tokens 1 and 2, "
        r"$d_c$, the first row of $\mathrm{softmax}(P S P^T + M) P V - P\,\mathrm{softmax}(S + M) V$, is "
        r"$w (v_2 - v_1)$: token 2 alone at first, against token 2 after token 1",
        "cancel",
        computed=diff,
    )
    dx.holds(w, ">", 0, "the weight $w$ is positive, so $d_c$ is not zero unless the value rows $v_1 = v_2$")


# -- numerics ------------------------------------------------------------------------------------


def trial_cost(d_model: int, tokens: int, layers: int) -> tuple[float, float]:
    """(bytes, seconds) of one trial on one thread of 2 busy CPU cores, from the measurements above."""
    d, t, n = d_model, tokens, layers
    nbytes = 260 * n * d * d + 220 * t * t + 200 * n * t * d
    return nbytes, 0.03 + n * (0.012 + 2.5e-6 * d * d + 3e-8 * t * d * d + 3e-6 * t * t)


def validate(o) -> None:
    """d_model a multiple of 8; one trial's memory and all trials' time within the budget."""
    if o.d_model % (2 * N_HEAD):
        raise ValueError(
            f"d_model: must be a multiple of {2 * N_HEAD} ({N_HEAD} heads of even size, for RoPE), got {o.d_model!r}"
        )
    nbytes, seconds = trial_cost(o.d_model, o.tokens, o.layers)
    if nbytes > MAX_BYTES:
        big = "d_model" if 260 * o.layers * o.d_model**2 >= 220 * o.tokens**2 else "tokens"  # the larger term
        raise ValueError(
            f"{big}: d_model {o.d_model:,}, {o.tokens:,} tokens and {o.layers} layers would hold ~{nbytes / 1e9:.1f} "
            f"GB (260 L d^2 + 220 T^2 + 200 L T d bytes); at most {MAX_BYTES / 1e9:.1f} GB"
        )
    if o.samples * seconds > MAX_SECONDS:
        raise ValueError(
            f"samples: {o.samples:,} trials at d_model {o.d_model:,}, {o.tokens:,} tokens, {o.layers} layers would "
            f"take ~{o.samples * seconds:,.0f} s on 2 CPU cores ({seconds:.2g} s each); at most {MAX_SECONDS} s"
        )


def permutation(tokens: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of range(tokens) other than the identity (tokens >= 2), drawn with ``gen``."""
    ident = torch.arange(tokens, device=gen.device)
    while True:
        perm = torch.randperm(tokens, generator=gen, device=gen.device)
        if not torch.equal(perm, ident):
            return perm


def equivariance_error(f, x: torch.Tensor, perm: torch.Tensor) -> float:
    """max |f(PX) - P f(X)| for x (B, T, d) and P moving row perm[i] to row i: (PX)_i = X_perm[i]."""
    with torch.no_grad():
        return float((f(x[:, perm]) - f(x)[:, perm]).abs().max())


def _stack(blocks, final_norm):
    """x (B, T, d) -> the blocks in turn, then the final norm; no embedding, no positions."""

    def f(x):
        for b in blocks:
            x = b(x)
        return final_norm(x)

    return f


def models(d_model: int, tokens: int, layers: int, gen: torch.Generator, dev) -> dict:
    """The maps compared, all float64 and in eval mode, with seeded random weights (``random_state``):
    the claims (bidirectional attention with two kernels; the encoder's Blocks and final norm without
    positions) and the controls (the same weights made causal, or with positions added or rotated in)."""
    cfg = GPTConfig(block_size=tokens, vocab_size=2, n_layer=layers, n_head=N_HEAD, n_embd=d_model, pos="learned")
    enc = Encoder(cfg).to(device=dev, dtype=torch.float64).eval()  # the one encoder: Blocks with causal=False
    with torch.no_grad():
        for b in enc.h:
            b.load_state_dict(random_state(b, gen))
        enc.wpe.weight.copy_(torch.randn(tokens, d_model, generator=gen, device=dev, dtype=torch.float64))

    def like(module, causal=None, **changes):  # a copy of ``module``'s weights in a module built from cfg + changes
        c = replace(cfg, **changes)
        kind = Block if isinstance(module, Block) else CausalSelfAttention
        new = kind(c, module.attn.layer if kind is Block else 0, causal=causal).to(device=dev, dtype=torch.float64)
        new.load_state_dict(module.state_dict())  # after the cast: the float64 weights, not float32 roundings
        return new.eval()

    attn = enc.h[0].attn  # models.gpt.CausalSelfAttention with causal=False
    stack = _stack(enc.h, enc.ln_f)
    causal_stack = _stack([like(b, causal=True) for b in enc.h], enc.ln_f)
    sinus = sinusoidal_table(tokens, d_model, dtype=torch.float64, device=dev)
    return {
        "attention (sdpa)": attn,
        "attention (by hand)": like(attn, causal=False, attn="manual"),
        "encoder stack": stack,
        "causal attention": like(attn, causal=True),
        "causal stack": causal_stack,
        "stack + learned positions": lambda x: stack(x + enc.wpe.weight),
        "stack + sinusoidal positions": lambda x: stack(x + sinus),
        "attention with RoPE": like(attn, causal=False, pos="rope"),
    }


# (map, what is claimed); each claim: the largest error over trials <= EQUAL_TOL; each control: the smallest
CLAIMS = [
    ("attention (sdpa)", "`CausalSelfAttention`, causal=False, sdpa kernel"),
    ("attention (by hand)", "`CausalSelfAttention`, causal=False, by-hand softmax"),
    ("encoder stack", "the encoder's {L} bidirectional Blocks and final norm, no positions"),
]
CONTROLS = [
    ("causal attention", "the same attention with causal=True"),
    ("causal stack", "the same {L} Blocks with causal=True"),
    ("stack + learned positions", "the stack with the encoder's learned positions added to the input"),
    ("stack + sinusoidal positions", "the stack with the sinusoidal table added to the input"),
    ("attention with RoPE", "the same attention with RoPE"),
]


def trial(d_model: int, tokens: int, layers: int, gen: torch.Generator, dev) -> dict:
    """One random trial: fresh weights, inputs x (BATCH, T, d) ~ N(0, 1) and a permutation other than the
    identity; returns max |f(PX) - P f(X)| per map, and under ``_show`` the encoder stack's f(X), f(PX) and
    the permutation (CPU tensors, for the figure)."""
    maps = models(d_model, tokens, layers, gen, dev)
    x = torch.randn(BATCH, tokens, d_model, generator=gen, device=dev, dtype=torch.float64)
    perm = permutation(tokens, gen)
    out = {name: equivariance_error(f, x, perm) for name, f in maps.items()}
    with torch.no_grad():
        f = maps["encoder stack"]
        out["_show"] = (f(x)[0].cpu(), f(x[:, perm])[0].cpu(), perm.cpu())
    return out


@with_options
def check(o) -> CheckResult:
    """``samples`` trials: the project's bidirectional attention and encoder stack satisfy f(PX) = P f(X) to
    1e-12 in float64; controls: the causal mask, added learned or sinusoidal positions, and RoPE break it."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    rows = []
    # one CPU thread: these matmuls are small, and on 2 busy cores a second thread made a trial 20 to 40 times
    # slower; the global RNG (used by the modules' own init, then overwritten) is the caller's again after
    with one_thread(), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
        for i in range(o.samples):
            r = trial(o.d_model, o.tokens, o.layers, gen, dev)
            res.series.setdefault("show", r.pop("_show"))  # the first trial's, for the figure
            rows.append(r)
            res.table.append({"trial": i} | r)
    n = f"over {o.samples} trials"
    for name, what in CLAIMS:
        claim = f"f(PX) = P f(X) for {what.format(L=o.layers)} (largest max|diff| {n})"
        res.claims.append(Bound.of(claim, max(r[name] for r in rows), 0.0, EQUAL_TOL))
    for name, what in CONTROLS:
        claim = f"f(PX) = P f(X) also for {what.format(L=o.layers)} (smallest max|diff| {n})"
        res.controls.append(Bound.of(claim, min(r[name] for r in rows), 0.0, EQUAL_TOL))
    worst = max(c.measured for c in res.claims)
    least = min(c.measured for c in res.controls)
    res.notes += [
        f"float64, d={o.d_model}, h={N_HEAD}, T={o.tokens}, L={o.layers}, batch {BATCH}, biases, eval mode; per trial "
        "fresh seeded weights, inputs N(0, 1) and a uniformly random permutation other than the identity",
        f"an exact identity, not a Monte Carlo estimate: no standard error, and the verdict is deterministic at a "
        f"seed; the tolerance {EQUAL_TOL:g} (about 4,500 ulps of the O(1) outputs) is fixed in advance, and the "
        f"largest rounding error measured, {worst:.2g}, is {EQUAL_TOL / max(worst, 1e-300):,.0f} times below it",
        f"the causal mask and positional encodings break equivariance: their smallest error, {least:.2g}, is "
        f"{least / EQUAL_TOL:.1g} times the tolerance",
    ]
    return res


def figure(res: CheckResult):
    """Left: the encoder stack's outputs $f(X)$ and $f(PX)$ of the first trial, each row labelled by the input token
    it belongs to; right: $\\max|f(PX) - P f(X)|$ of the equivariant maps and of the controls, against the tolerance."""
    import numpy as np

    o = res.settings
    fx, fpx, perm = res.series["show"]
    fig, (a, b, c) = plotting.subplots(3, width=14, height=4.6, gridspec_kw={"width_ratios": [1, 1, 1.6]})
    lim = float(max(fx.abs().max(), fpx.abs().max()))
    for ax, y, rows, name in [(a, fx, range(o.tokens), "$f(X)$"), (b, fpx, perm.tolist(), "$f(PX)$")]:
        ax.imshow(y.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_yticks(range(o.tokens), [f"token {t + 1}" for t in rows], fontsize=8)
        ax.set(xlabel="feature", title=f"{name}: encoder stack, $L = {o.layers}$")
    b.text(0.5, -0.2, "the rows of $f(X)$, moved with their tokens", transform=b.transAxes, ha="center", fontsize=8)
    findings = [(name, f, False) for (name, _), f in zip(CLAIMS, res.claims)]
    findings += [(name, f, True) for (name, _), f in zip(CONTROLS, res.controls)]
    floor = 1e-18  # an exact zero drawn at the bottom of the log axis
    ys = np.arange(len(findings))
    c.barh(ys, [max(f.measured, floor) for _, f, _ in findings], color=["C3" if ctl else "C0" for *_, ctl in findings])
    c.axvline(EQUAL_TOL, color="k", ls="--", lw=1, label=f"tolerance {EQUAL_TOL:g}")
    c.set_yticks(ys, [name for name, *_ in findings], fontsize=8)
    c.invert_yaxis()
    c.set(xscale="log", xlabel=r"$\max|f(PX) - P f(X)|$ (blue: claims, largest; red: controls, smallest)")
    c.set_title(plotting.title(res, "equivariance error"), fontsize=9)
    c.legend(fontsize=8, loc="upper right")
    fig.suptitle("Exercise 13.2: permuting the tokens permutes the outputs, unless a mask or positions say where")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

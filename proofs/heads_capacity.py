"""Exercise 13.4: more heads, same weights, narrower heads: what a head can no longer express.

With $d_\\mathrm{model} = 512$ and $h = 8$ heads, $d_k = d_\\mathrm{model}/h = 64$; with $h = 64$,
$d_k = 512/64 = 8$. The weight count does not move: $4 d^2$ for every $h$ (exercise 13.30, the same
formula from ``derive.counts``). What moves is the shape of each head. A head's scores are
$S = Q K^T / \\sqrt{d_k}$ with $Q, K$ of shape $n \\times d_k$, and a product through an inner
dimension $d_k$ has rank at most $d_k$ (the lemma: every column of $Q K^T$ is a combination of the
$d_k$ columns of $Q$). So at $h = 64$ every head's $n \\times n$ score matrix has rank at most 8, however
long the sequence. Measured *after* the softmax the limit is invisible: the entrywise exponential
raises the rank (a rank-1 $2 \\times 2$ example is proved to become rank 2), and the attention
matrices come out full rank $n$. So the rank is measured before the softmax, and both are shown.

What the limit costs (Bhojanapalli et al. 2020, "Low-rank bottleneck in multi-head attention
models"). Softmax ignores a constant added to a row, so a target pattern $P$ is reproduced exactly
by logits $S$ if and only if $S = L + c 1^T$ with $L = \\log P$; centring each row,
$L_c = L (I - 1 1^T/n)$, removes that freedom. With inputs $X$ ($n \\times d_\\mathrm{model}$) of full
row rank, $d_\\mathrm{model} \\ge n$, the head's logits $X W_Q W_K^T X^T / \\sqrt{d_k}$ can be any
$n \\times n$ matrix of rank at most $d_k$ (proved for a symbolic $2 \\times 3$ $X$ with $W_Q$ built
from the adjugate of $X X^T$). Hence (the capacity lemma) one head reproduces $P$ exactly if and
only if $d_k \\ge d_k^* = \\mathrm{rank}(L_c)$, and below $d_k^*$ its error stays bounded away from
zero. A generic pattern (softmax of a full-rank random matrix) has $d_k^* = n - 1$; a pattern made
by a rank-$r$ head has $d_k^* = r$. The check fits $W_Q, W_K$ ($d_\\mathrm{model} = 2n$) by Adam
to both kinds of target over $n = 32$ positions and plots the best error reached (the mean total
variation between the rows of $P$ and of the head's pattern: the share of attention misplaced)
against $d_k$: it falls to near zero at $d_k = 8 = r$ for the rank-8 target and only at
$d_k = 31 = n - 1$ for the generic one; below, the error shrinks with the singular values of
$L_c$ a rank-$d_k$ head must drop (the truncated-SVD head, drawn dashed, is an explicit head
with that error). Sharp is not the hard case: a permutation pattern is the argmax of rank-2
logits $c \\cos(\\theta_{\\pi(i)} - \\theta_j)$ (points on a circle), and as $c$ grows it gets as
sharp as wanted; it is graded, many-sided patterns that need width.

What many small heads buy instead: not richer patterns per head but more of them, 64 different
attention patterns per layer (each of score rank at most 8) instead of 8 (each of rank at most 64),
mixed by $W_O$, so a layer can look in more places at once.

The check, in float64: the ranks (``torch.linalg.matrix_rank``, its default tolerance
$\\sigma_1 n \\varepsilon$) of every head's scores before and after the softmax, for
``models.gpt.CausalSelfAttention`` at $d = 512$ with $h = 8$ and $h = 64$ (seeded weights,
bidirectional), on ``samples`` random sequences of $n = 96 > 64$ positions; integers compared
exactly, with the singular-value margins printed. Controls: "the post-softmax matrix also has rank
at most $d_k$" and "the pre-softmax matrix has rank $n$" are rejected. Then the fits: the
threshold, fixed in advance, is a mean total variation of 0.01: 1% of each row's attention
misplaced, where uniform attention misplaces a third, and where Adam, in float64, ends below
$10^{-3}$ at every $d_k \\ge d_k^*$ after the default 300 steps (near $10^{-5}$ after 2,000; its
floor is the step budget, not the head). Claims: every $d_k \\ge d_k^*$ gets below it, and Adam's
head is nowhere worse than the explicit truncated-SVD head by more than it; controls: $d_k = 1$ and $d_k = d_k^*/2$
reproducing the pattern are rejected. ``--fit-n``, ``--target-rank`` and ``--steps`` run it larger.
"""

from __future__ import annotations

import contextlib
import math

import sympy as sp
import torch

from derive import counts
from derive.counts import d, h
from derive.engine import Derivation
from models.gpt import CausalSelfAttention, GPTConfig
from models.utils.device import describe, generator, one_thread, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.4"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"At $d_\mathrm{model} = 512$, $h = 64$ heads keep the $4 d^2$ weights of $h = 8$ but cut $d_k$ from 64 to 8: "
    r"each head's scores $Q K^T$ have rank at most $d_k$ (before the softmax), and one head reproduces an attention "
    r"pattern only if $d_k$ reaches the rank of its centred log-pattern."
)
D_MODEL, HEADS = 512, (8, 64)  # the exercise's width and its two head counts
DEFAULT_SAMPLES = 2  # random input sequences whose 72 per-head score matrices are measured
# Time, measured on one CPU core of a busy machine (load ~8 on 2 cores): the rank part costs ~1e-7 s x tokens^3 per
# sequence (2 x 72 SVDs of n x n float64: 0.18 s at 96 tokens, 1.9 s at 256, 12.6 s at 512); the fit ~5 ms per Adam
# step plus ~4e-9 s x grid x fit_n^3 (2.2 s for the default 300 steps at fit_n 32; 72 ms a step at fit_n 128).
RANK_S, STEP_S, STEP_WORK_S = 1e-7, 5e-3, 4e-9
MAX_SECONDS = 300  # each part's estimate is refused above five minutes
MAX_SAMPLES = 64
SAMPLES_WHY = "time: ~1e-7 s x tokens^3 per sequence, 64 sequences of 96 tokens take ~6 s on a busy CPU core"
TOL_TV = 0.01  # mean total variation: 1% of the attention mass misplaced, stated in advance
LR = 0.05  # Adam, cosine-annealed to 0 over --steps
PERM_GAP = 20.0  # the rank-2 permutation logits c cos(theta_pi(i) - theta_j) lead the nearest rival by 20
OPTIONS = [
    Option(
        "--tokens",
        int,
        96,
        "positions n of the sequences whose score ranks are measured (above 64, the d_k of h = 8)",
        lo=65,
        hi=512,
        why="time: 2 x 72 SVDs of n x n per sequence, ~13 s per sequence at 512 on a busy CPU core",
    ),
    Option(
        "--fit-n",
        int,
        32,
        "positions n of the target patterns the single head is fitted to (d_model = 2n)",
        lo=4,
        hi=128,
        why="time: ~70 ms per Adam step at 128 on a busy CPU core (300 steps: ~25 s)",
    ),
    Option(
        "--target-rank",
        int,
        8,
        "rank r of the logits that make the low-rank target (at most fit-n/2)",
        lo=1,
        hi=64,
        why="at most half of --fit-n, whose bound is 128",
    ),
    Option(
        "--steps",
        int,
        300,
        "Adam steps per fit (all d_k and both targets are fitted together)",
        lo=10,
        hi=20_000,
        why="time: ~7 ms per step at the defaults on a busy CPU core, 20,000 steps ~2.5 minutes",
    ),
]


def grid(n: int, r: int) -> list[int]:
    """The d_k values fitted: powers of two up to ``n``, the two thresholds r and n - 1, and their halves."""
    powers = {2**k for k in range(n.bit_length()) if 2**k <= n}
    return sorted(powers | {r, max(r // 2, 1), n - 1, max((n - 1) // 2, 1)})


def seconds(o) -> tuple[float, float]:
    """Estimated CPU seconds of the rank part and of the fit on one busy core (the constants above)."""
    rank = o.samples * RANK_S * o.tokens**3
    fit = o.steps * (STEP_S + STEP_WORK_S * len(grid(o.fit_n, o.target_rank)) * o.fit_n**3)
    return rank, fit


def validate(o) -> None:
    """The low-rank target must sit well below the generic one (r <= n/2), and each part's time is bounded."""
    if o.target_rank > o.fit_n // 2:
        raise ValueError(
            f"target_rank: must be at most half of fit_n={o.fit_n}, so that the two targets' thresholds "
            f"(r and n - 1) are apart; got {o.target_rank}"
        )
    rank, fit = seconds(o)
    if rank > MAX_SECONDS:
        raise ValueError(
            f"samples: {o.samples} sequences of tokens={o.tokens} would take ~{rank:.0f} s (~1e-7 s x tokens^3 each "
            f"on a busy CPU core), more than {MAX_SECONDS} s; give fewer samples or tokens"
        )
    if fit > MAX_SECONDS:
        raise ValueError(
            f"steps: {o.steps:,} Adam steps at fit_n={o.fit_n} would take ~{fit:.0f} s on a busy CPU core, "
            f"more than {MAX_SECONDS} s; give fewer steps or positions"
        )


# -- the derivation ------------------------------------------------------------------------------


def derivation() -> Derivation:
    """d_k at h = 8 and 64; 4 d^2 weights free of h; rank(QK^T) <= d_k (a lemma, and a proved 3 x 3 instance);
    softmax raises the rank (a proved 2 x 2 example); the shift invariance and the capacity lemma."""
    dx = Derivation(
        "Exercise 13.4: heads, head size and what one head can express",
        assumptions=[
            r"$d_\mathrm{model} = d$, $h$ heads, $h$ divides $d$ and $d_k = d/h$",
            r"head scores $S = Q K^T / \sqrt{d_k}$ with $Q = X W_Q$, $K = X W_K$ of shape $n \times d_k$",
        ],
    )
    P = sp.Function("P")
    dx.eq(sp.Symbol("d_k(h=8)"), 64, r"$d_k = 512/8$", "exact", computed=counts.head_dim(D_MODEL, 8))
    dx.eq(sp.Symbol("d_k(h=64)"), 8, r"$d_k = 512/64$", "exact", computed=counts.head_dim(D_MODEL, 64))
    mha = counts.attention_params(d, h, bias=False)
    dx.eq(P(h), 4 * d**2, "the attention weights, as counted in exercise 13.30 (`derive.counts`)", "expand", mha)
    dx.eq(sp.Derivative(P(h), h), 0, "free of $h$", "exact", computed=sp.diff(mha, h))
    dx.eq(
        P(64) - P(8),
        0,
        r"at $d = 512$: $1{,}048{,}576$ weights with 8 heads and with 64",
        "exact",
        computed=counts.attention_params(D_MODEL, 64, False) - counts.attention_params(D_MODEL, 8, False),
    )
    dx.eq(
        sp.Symbol("P_head(64)/P_head(8)"),
        sp.Rational(1, 8),
        "but each of the 64 heads holds an eighth of the weights of one of the 8",
        "exact",
        computed=counts.attention_head_params(D_MODEL, 64) / counts.attention_head_params(D_MODEL, 8),
    )
    _rank_steps(dx)
    _capacity_steps(dx)
    return dx


def _rank_steps(dx: Derivation) -> None:
    """rank(QK^T) <= d_k: a 3 x 3 instance proved, the general case from the lemma; the softmax raises the rank."""
    Q, K = sp.Matrix(3, 2, sp.symbols("q1:7")), sp.Matrix(3, 2, sp.symbols("k1:7"))
    dx.eq(
        sp.Determinant(sp.MatrixSymbol("Q", 3, 2) * sp.MatrixSymbol("K", 3, 2).T),
        0,
        r"three positions, $d_k = 2$: the $3 \times 3$ scores are singular for every $Q$, $K$",
        "expand",
        computed=(Q * K.T).det(),
    )
    lemma = dx.lemma(
        "Lemma (rank of a product)",
        r"an $n \times m$ matrix times an $m \times n$ one has rank at most $m$, the inner dimension: every column "
        r"of $A B$ is a combination of the $m$ columns of $A$",
    )
    m = sp.Symbol("m", positive=True, integer=True)  # n = 8 + m positions, m >= 1
    dx.holds(
        sp.Min(8 + m, 8),
        "<",
        8 + m,
        r"so $\mathrm{rank}(Q K^T) \le \min(n, d_k)$, which at $h = 64$ ($d_k = 8$) is below $n = 8 + m$ for every "
        r"sequence longer than 8: each head's score matrix is singular",
        lemma=lemma,
    )
    S = sp.Matrix([[1], [2]]) * sp.Matrix([[0, 1]])  # rank-1 scores u v^T
    E = S.applyfunc(sp.exp)
    A = sp.Matrix(2, 2, lambda i, j: E[i, j] / sum(E.row(i)))
    dx.eq(sp.Determinant(sp.MatrixSymbol("S", 2, 2)), 0, r"the rank-1 scores $S = (1, 2)^T (0, 1)$", "exact", S.det())
    det_a = sp.E * (sp.E - 1) / ((1 + sp.E) * (1 + sp.E**2))
    dx.eq(sp.Symbol("det(softmax(S))"), det_a, "and their row-wise softmax", "simplify", computed=A.det())
    dx.holds(det_a, ">", 0, "is nonzero: the softmax raised the rank from 1 to 2, so ranks after it show nothing")


def _capacity_steps(dx: Derivation) -> None:
    """Softmax ignores row shifts; centred log-patterns have rank at most n - 1; any rank-d_k logits are a head's."""
    s, c = sp.symbols("s1:4", real=True), sp.Symbol("c", real=True)
    soft = lambda v: sp.Matrix([[sp.exp(x) / sum(sp.exp(y) for y in v) for x in v]])  # noqa: E731
    dx.eq(
        sp.Symbol("softmax(s + c) - softmax(s)"),
        sp.zeros(1, 3),
        "softmax ignores a constant added to a row, so a pattern fixes its logits only up to row shifts",
        "simplify",
        computed=soft([x + c for x in s]) - soft(s),
    )
    centred = sp.Matrix([[x - sum(s) / 3 for x in s]])
    dx.eq(
        sp.Symbol("L_c 1"),
        0,
        r"the centred log-pattern $L_c = L (I - 1 1^T/n)$ has $L_c 1 = 0$, so its rank is at most $n - 1$",
        "expand",
        computed=sum(centred),
    )
    X = sp.Matrix(2, 3, sp.symbols("x1:7", real=True))
    u, v = sp.Matrix(sp.symbols("u1:3", real=True)), sp.Matrix(sp.symbols("v1:3", real=True))
    G = X * X.T
    adj = G.adjugate()
    Xs, D = sp.MatrixSymbol("X", 2, 3), sp.Symbol("D")
    Wq, Wk = sp.MatrixSymbol("W_Q", 3, 1), sp.MatrixSymbol("W_K", 3, 1)
    us, vs = sp.MatrixSymbol("u", 2, 1), sp.MatrixSymbol("v", 2, 1)
    dx.eq(
        Xs * Wq * Wk.T * Xs.T - D**2 * us * vs.T,
        sp.zeros(2, 2),
        r"any rank-1 logits $u v^T$ are a head's ($n = 2$, $d_\mathrm{model} = 3$, symbolic $X$, $u$, $v$): with "
        r"$W_Q = X^T \mathrm{adj}(X X^T) u$, $W_K = X^T \mathrm{adj}(X X^T) v$ and $D = \mathrm{det}(X X^T)$, "
        r"divide $W_Q$ by $D^2 \ne 0$ when $X$ has full row rank",
        "expand",
        computed=X * (X.T * adj * u) * (X.T * adj * v).T * X.T - G.det() ** 2 * u * v.T,
    )
    lemma = dx.lemma(
        "Lemma (capacity)",
        r"with $X$ of full row rank $n$ ($d_\mathrm{model} \ge n$) the logits $X W_Q W_K^T X^T / \sqrt{d_k}$ range "
        r"over all $n \times n$ matrices of rank at most $d_k$, so one head reproduces $P$ exactly if and only if "
        r"$d_k \ge d_k^* = \mathrm{rank}(L_c)$; below, softmax outputs near $P$ would need rank-$d_k$ logits near "
        r"$L_c$ after centring, and a limit of rank-$d_k$ matrices has rank at most $d_k$",
    )
    n = sp.Symbol("n", positive=True, integer=True)
    dx.holds(
        n - 1,
        "<",
        n,
        r"so $d_k = n - 1$ always suffices, and a generic pattern (rank $n - 1$ after centring) needs all of it",
        lemma=lemma,
    )


# -- the check: ranks before and after the softmax --------------------------------------------


def attention_layer(n_head: int, tokens: int, gen: torch.Generator, dev) -> CausalSelfAttention:
    """``models.gpt.CausalSelfAttention`` at d = 512 with ``n_head`` heads, bidirectional, float64, with seeded
    weights N(0, 1/512) (so queries and keys of unit-variance inputs have unit-variance entries) and biases
    N(0, 0.1^2). Built on the meta device first, so the global RNG is never touched."""
    cfg = GPTConfig(block_size=tokens, vocab_size=1, n_layer=1, n_head=n_head, n_embd=D_MODEL, bias=True)
    with torch.device("meta"):
        attn = CausalSelfAttention(cfg, causal=False)
    attn = attn.to_empty(device=dev).to(torch.float64)
    with torch.no_grad():
        for name, p in attn.named_parameters():
            r = torch.randn(p.shape, generator=gen, device=dev, dtype=p.dtype)
            p.copy_(r / math.sqrt(D_MODEL) if name.endswith("weight") else 0.1 * r)
    return attn


def head_scores(attn: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Each head's scores Q K^T / sqrt(d_k) before the softmax, with the module's own projections: x (B, n, d)
    -> (B, h, n, n). (Q and K are n x d_k whatever the biases, so the rank bound holds with them.)"""
    B, n, C = x.shape
    nh = attn.cfg.n_head
    q, k, _ = attn.c_attn(x).split([C, C, C], dim=2)
    q, k = (t.view(B, n, nh, C // nh).transpose(1, 2) for t in (q, k))  # (B, h, n, d_k)
    return q @ k.transpose(-1, -2) / math.sqrt(C // nh)  # (B, h, n, n)


def spectra(scores: torch.Tensor) -> dict:
    """Ranks (``torch.linalg.matrix_rank``, default tolerance) and singular values over the largest, before and
    after the softmax: {"pre"|"post": (ranks (B, h), sigma/sigma_1 (B, h, n))}."""
    out = {}
    for when, m in (("pre", scores), ("post", scores.softmax(-1))):
        sv = torch.linalg.svdvals(m)
        out[when] = (torch.linalg.matrix_rank(m), sv / sv[..., :1])
    return out


def _rank_findings(res: CheckResult, o, gen, dev) -> None:
    n, eps = o.tokens, torch.finfo(torch.float64).eps
    for nh in HEADS:
        dk = D_MODEL // nh
        attn = attention_layer(nh, n, gen, dev)
        x = torch.randn(o.samples, n, D_MODEL, generator=gen, device=dev, dtype=torch.float64)
        with torch.no_grad():
            found = spectra(head_scores(attn, x))
        (pre, pre_sv), (post, post_sv) = found["pre"], found["post"]
        res.series.setdefault("spectra", {})[nh] = {  # the first sequence's heads, for the figure
            "before": (pre_sv[0].cpu(), pre[0].tolist()),
            "after": (post_sv[0].cpu(), post[0].tolist()),
        }
        heads = f"{o.samples} x {nh} heads"
        worst_pre = int(max(pre.flatten().tolist(), key=lambda r: abs(r - dk)))
        res.claims.append(
            Bound.of(f"h = {nh}: pre-softmax rank of Q K^T = d_k = {dk} ({heads}, worst)", worst_pre, dk, 0)
        )
        worst_post = int(min(post.flatten().tolist()))
        res.claims.append(Bound.of(f"h = {nh}: post-softmax rank = n = {n} ({heads}, lowest)", worst_post, n, 0))
        excess = int(min(max(0, r - dk) for r in post.flatten().tolist()))
        res.controls.append(
            Bound.of(f"h = {nh}: post-softmax rank <= d_k = {dk} too (smallest excess over d_k)", excess, 0, 0)
        )
        res.controls.append(Bound.of(f"h = {nh}: pre-softmax rank = n = {n} (highest)", int(pre.max()), n, 0))
        tol = n * eps
        res.notes.append(
            f"h = {nh}, d_k = {dk}, n = {n}: rank tolerance sigma_1 n eps = {tol:.1e} sigma_1; pre-softmax "
            f"sigma_{dk + 1}/sigma_1 <= {float(pre_sv[..., dk].max()):.1e}, post-softmax sigma_n/sigma_1 >= "
            f"{float(post_sv[..., -1].min()):.1e}: no rank sits near the tolerance"
        )


# -- the check: what the rank limit costs -----------------------------------------------------


def targets(n: int, r: int, gen: torch.Generator, dev) -> dict[str, torch.Tensor]:
    """Two target patterns (n, n), rows summing to 1: softmax of an n x n N(0, 1) matrix ("generic") and softmax
    of rank-r logits U V^T / sqrt(r) with N(0, 1) entries ("rank r"), so both have unit-variance logits."""
    f64 = {"generator": gen, "device": dev, "dtype": torch.float64}
    z = torch.randn(n, n, **f64)
    u, v = torch.randn(n, r, **f64), torch.randn(n, r, **f64)
    return {"generic": z.softmax(-1), f"rank {r}": (u @ v.T / math.sqrt(r)).softmax(-1)}


def centred_log(p: torch.Tensor) -> torch.Tensor:
    """L_c = log P (I - 1 1^T / n): the logits of P with each row's mean removed, (n, n)."""
    logp = p.log()
    return logp - logp.mean(-1, keepdim=True)


def tv(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the total variation (1/2) sum_j |p_ij - q_ij|: the share of attention misplaced."""
    return 0.5 * (p - q).abs().sum(-1).mean(-1)


def svd_head(p: torch.Tensor, dks: list[int]) -> list[float]:
    """The error of an explicit head per d_k: the best rank-d_k approximation of L_c (truncated SVD) as logits."""
    u, s, vh = torch.linalg.svd(centred_log(p))
    return [float(tv(p, ((u[:, :k] * s[:k]) @ vh[:k]).softmax(-1))) for k in dks]


def fit_heads(ps: torch.Tensor, dks: list[int], steps: int, gen: torch.Generator) -> torch.Tensor:
    """Fit one head per (target, d_k) by Adam: logits X W_Q W_K^T X^T / sqrt(d_k) with X a fixed N(0, 1)
    (n, 2n) input and W_Q, W_K (2n, d_k), minimising the mean row KL(P || softmax); all fits run batched, the
    narrower heads as masked columns of a d_k = max width. ps (T, n, n) -> best mean TV reached (T, len(dks))."""
    f64 = {"generator": gen, "device": ps.device, "dtype": torch.float64}
    T, n, _ = ps.shape
    wide, width = max(dks), 2 * n
    x = torch.randn(n, width, **f64)  # full row rank n, well conditioned
    keep = (torch.arange(wide, device=ps.device) < torch.tensor(dks, device=ps.device)[:, None]).double()  # (G, D)
    keep = keep[None, :, None, :]  # (1, G, 1, D)
    scale = torch.tensor(dks, device=ps.device, dtype=torch.float64).rsqrt()[None, :, None, None]
    wq, wk = (torch.randn(T, len(dks), width, wide, **f64).div_(math.sqrt(width)).requires_grad_() for _ in "qk")
    p = ps[:, None]  # (T, 1, n, n)
    logp = p.log()
    opt = torch.optim.Adam([wq, wk], lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best = torch.full((T, len(dks)), math.inf, device=ps.device, dtype=torch.float64)
    for _ in range(steps):
        s = (x @ (wq * keep)) @ (x @ (wk * keep)).transpose(-1, -2) * scale  # (T, G, n, n)
        logq = s.log_softmax(-1)
        loss = (p * (logp - logq)).sum(-1).mean(-1).sum()  # sum over fits of each fit's mean row KL
        with torch.no_grad():
            best = torch.minimum(best, tv(p, logq.exp()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return best


def permutation_tv(n: int, gen: torch.Generator, dev) -> float:
    """The error of rank-2 logits c cos(theta_pi(i) - theta_j) (theta_j = 2 pi j / n) against the hard pattern of a
    random permutation pi: sharp patterns are cheap. c = PERM_GAP / (1 - cos(2 pi / n)), so each row's target logit
    leads its nearest rival by PERM_GAP and the error is about 2 exp(-PERM_GAP) whatever n."""
    perm = torch.randperm(n, generator=gen, device=dev)
    theta = 2 * math.pi * torch.arange(n, device=dev, dtype=torch.float64) / n
    pts = torch.stack([theta.cos(), theta.sin()], 1)  # (n, 2): points on a circle
    c = PERM_GAP / (1 - math.cos(2 * math.pi / n))
    logits = c * pts[perm] @ pts.T  # (n, n), rank 2
    return float(tv(torch.eye(n, device=dev, dtype=torch.float64)[perm], logits.softmax(-1)))


def _fit_findings(res: CheckResult, o, gen, dev) -> None:
    n, r = o.fit_n, o.target_rank
    dks = grid(n, r)
    pats = targets(n, r, gen, dev)
    best = fit_heads(torch.stack(list(pats.values())), dks, o.steps, gen).tolist()
    need = {"generic": n - 1, f"rank {r}": r}
    ref = {name: svd_head(p, dks) for name, p in pats.items()}
    for i, (name, p) in enumerate(pats.items()):
        got = dict(zip(dks, best[i]))
        dstar = need[name]
        res.claims.append(
            Bound.of(
                f"{name}: rank of the centred log-pattern L_c (the predicted d_k*)",
                int(torch.linalg.matrix_rank(centred_log(p))),
                dstar,
                0,
            )
        )
        above = [k for k in dks if k >= dstar]
        worst = max(above, key=got.get)
        res.claims.append(
            Bound.of(
                f"{name}: one head reproduces it for every d_k >= {dstar} (worst: d_k = {worst}; mean TV)",
                got[worst],
                0.0,
                TOL_TV,
            )
        )
        gap = max(dks, key=lambda k: got[k] - ref[name][dks.index(k)])
        res.claims.append(
            Bound.of(
                f"{name}: Adam's head is no worse than the truncated-SVD head (largest excess, d_k = {gap})",
                max(0.0, got[gap] - ref[name][dks.index(gap)]),
                0.0,
                TOL_TV,
            )
        )
        for k, why in ((1, "d_k = 1"), (max(dstar // 2, 1), f"half the needed rank, d_k = {max(dstar // 2, 1)}")):
            res.controls.append(Bound.of(f"{name}: one head with {why} reproduces it (mean TV)", got[k], 0.0, TOL_TV))
        res.notes.append(f"{name}: mean TV of uniform attention {float(tv(p, torch.full_like(p, 1 / n))):.3f}")
    res.claims.append(
        Bound.of(
            f"a hard permutation pattern from rank-2 logits (logit gap {PERM_GAP:g}; mean TV)",
            permutation_tv(n, gen, dev),
            0.0,
            TOL_TV,
        )
    )
    for k in dks:
        row = {"d_k": k}
        for i, name in enumerate(pats):
            row[f"{name} TV"] = best[i][dks.index(k)]
            row[f"{name} SVD TV"] = ref[name][dks.index(k)]
        res.table.append(row)
    res.series["fit"] = {"d_k": dks, "best": dict(zip(pats, best)), "svd": ref, "need": need}


@with_options
def check(o) -> CheckResult:
    """Ranks of every head's scores before and after the softmax (h = 8 and 64 at d = 512, ``samples`` random
    sequences of ``tokens`` positions), then one head fitted by Adam to a generic and a rank-r pattern at each d_k."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    with one_thread() if dev.type == "cpu" else contextlib.nullcontext():  # tiny batched SVDs: threads only contend
        _rank_findings(res, o, gen, dev)
        _fit_findings(res, o, gen, dev)
    res.notes += [
        "ranks are integers compared exactly (tolerance 0): nothing is estimated, so there is no standard error; "
        "the margins above say how far every singular value is from the rank tolerance",
        f"fits: one seeded Adam run per (target, d_k), lr {LR} cosine-annealed over {o.steps} steps, d_model = "
        f"2n = {2 * o.fit_n}, float64; 'TV' is the best mean total variation reached, judged against {TOL_TV} "
        "(fixed in advance), not a statistic; 'SVD TV' is the explicit head whose logits are the truncated SVD of L_c",
        "what many small heads buy: not sharper patterns per head but more of them, 64 patterns of score rank "
        "at most 8 per layer instead of 8 of rank at most 64, mixed by W_O",
    ]
    return res


def figure(res: CheckResult):
    """Left: singular values of every head's scores over the largest, before the softmax (they drop to rounding after
    $d_k$) and after it (full rank); right: the best error one head reaches against $d_k$, for a generic and a
    low-rank target, beside the truncated-SVD head and the threshold."""
    o, fit = res.settings, res.series["fit"]
    fig, (a, b) = plotting.subplots(2, width=12, height=4.8)
    floor = 1e-18  # an exact zero drawn at the bottom of the log axis
    styles = {64: ("C1", "C3"), 8: ("C0", "C2")}  # (before, after) colours; h = 8 drawn last, on top
    for nh in (64, 8):
        dk, idx = D_MODEL // nh, range(1, o.tokens + 1)
        for when, color in zip(("before", "after"), styles[nh]):
            sv, ranks = res.series["spectra"][nh][when]
            rank = f"rank {min(ranks)}" + (f" to {max(ranks)}" if max(ranks) > min(ranks) else "")  # as measured
            for row in sv:
                a.plot(idx, row.clamp_min(floor).numpy(), color=color, lw=0.6, alpha=0.35)
            label = f"$h = {nh}$, $d_k = {dk}$: {when} the softmax, {rank} ({len(sv)} heads)"
            a.plot([], [], color=color, label=label)
    a.axhline(
        o.tokens * torch.finfo(torch.float64).eps, color="k", lw=0.8, ls="--", label=r"rank tolerance $n \varepsilon$"
    )
    a.set(yscale="log", ylim=(floor / 2, 3), xlabel="index $i$ of the singular value", ylabel=r"$\sigma_i / \sigma_1$")
    a.set_title(f"each head's $n \\times n$ scores, one sequence of $n = {o.tokens}$", fontsize=10)
    a.legend(fontsize=7, loc="center right")
    lo = 1e-17
    for (name, best), color in zip(fit["best"].items(), ("C4", "C5")):
        need = fit["need"][name]
        b.plot(fit["d_k"], [max(v, lo) for v in best], "o-", color=color, label=f"{name} target: Adam's best")
        svd = [max(v, lo) for v in fit["svd"][name]]
        b.plot(fit["d_k"], svd, "s--", color=color, lw=0.8, ms=3, mfc="none", label=f"{name}: truncated-SVD head")
        b.axvline(need, color=color, lw=0.6, ls=":")
        b.annotate(f"$d_k^* = {need}$", (need, 1e-12), color=color, fontsize=8, rotation=90, ha="right", va="bottom")
    b.axhline(TOL_TV, color="k", lw=0.8, ls="--", label=f"threshold {TOL_TV} (1% misplaced)")
    b.set_xscale("log", base=2)
    powers = [k for k in fit["d_k"] if k & (k - 1) == 0]
    b.set_xticks(powers, [str(k) for k in powers])
    b.set_xticks([k for k in fit["d_k"] if k not in powers], minor=True)
    b.set(
        yscale="log", ylim=(lo / 3, 2), xlabel="$d_k$ of the single head", ylabel="mean total variation to the target"
    )
    b.set_title(f"one head fitted by Adam to a pattern over $n = {o.fit_n}$ positions ({o.steps} steps)", fontsize=10)
    b.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        r"Exercise 13.4: $d_k = d_\mathrm{model}/h$ bounds the rank of each head's scores, and with it the patterns"
    )
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

"""FAVOR+ attention (Choromanski et al., 2021): softmax attention approximated in O(n r d) time
with r positive orthogonal random features, beside the exact O(n^2 d) reference.

For x, y in R^d and w ~ N(0, I_d), E[exp(w·x - |x|^2/2) exp(w·y - |y|^2/2)] = exp(x·y), so
phi(x) = exp(W x - |x|^2/2) / sqrt(r) gives phi(x)·phi(y), an unbiased estimate of exp(x·y) with
positive terms only. Feeding q / d^(1/4) and k / d^(1/4) makes it estimate exp(q·k / sqrt(d)), the
unnormalised softmax weight, and attention becomes D^-1 (phi(Q) (phi(K)^T V)): the bracket is
r x d, so no n x n matrix is ever formed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

STABILIZE = (None, "row", "global")


def _positive(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    return v


def orthogonal_gaussian(
    r: int, d: int, generator: torch.Generator | None = None, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """r random feature rows in R^d (shape (r, d)): ceil(r/d) independent blocks of d orthonormal
    rows (QR of a Gaussian matrix, signs fixed so the block is Haar-distributed), each row then
    scaled by an independent chi_d norm, so every row is marginally N(0, I_d) while rows within
    a block are exactly orthogonal (orthogonal random features, Yu et al. 2016, as FAVOR+ uses them).
    ValueError naming ``r`` or ``d`` unless it is a positive integer."""
    _positive("r", r), _positive("d", d)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    g = torch.randn(math.ceil(r / d), d, d, generator=generator, device=device, dtype=torch.float64)  # (blocks, d, d)
    q, rr = torch.linalg.qr(g)  # (blocks, d, d), one QR per block
    q = q * torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar: fix each column's sign
    w = q.transpose(-2, -1).reshape(-1, d)[:r]  # (r, d): rows of each block orthonormal
    norms = torch.randn(r, d, generator=generator, device=device, dtype=torch.float64).norm(dim=1)  # chi_d
    return (w * norms.unsqueeze(1)).to(dtype)  # (r, d)


def _exponent(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """z = W x - |x|^2/2, shape (..., n, r) for x (..., n, d), w (r, d): phi(x) = exp(z) / sqrt(r)."""
    if x.size(-1) != w.size(-1):
        raise ValueError(f"w: feature rows have dimension {w.size(-1)}, inputs have {x.size(-1)}")
    return x @ w.T - x.pow(2).sum(-1, keepdim=True) / 2  # (..., n, r) - (..., n, 1)


def positive_features(x: torch.Tensor, w: torch.Tensor, stabilize: str | None = None) -> torch.Tensor:
    """phi(x) = exp(w·x - |x|^2/2) / sqrt(r), shape (..., n, r) for x (..., n, d), w (r, d): the positive
    random features of Choromanski et al. 2021, Lemma 1.

    ``stabilize`` subtracts a maximum m of the exponent before exp, which multiplies phi by
    exp(-m). In attention, output row i is sum_j (phi(q_i)·phi(k_j)) v_j / sum_j phi(q_i)·phi(k_j),
    so a factor that depends on i only ("row": max over each query's own features) or is one
    constant for all keys ("global": max over every key and feature of one (batch, head)) cancels
    between numerator and denominator. None gives the unbiased kernel estimator itself.

    The cancellation is exact arithmetic only. In floating point "global" lets one key's maximum
    push another key's features below the smallest float (exp(-104) in float32), and in causal
    attention that key may come later, so :func:`favor_attention` does not use "global"; it
    stabilises in log space instead (see there)."""
    if stabilize not in STABILIZE:
        raise ValueError(f"stabilize: unknown {stabilize!r}; choose from {STABILIZE}")
    z = _exponent(x, w)  # (..., n, r)
    if stabilize == "row":
        z = z - z.amax(-1, keepdim=True).detach()
    elif stabilize == "global":
        z = z - z.amax((-2, -1), keepdim=True).detach()
    return torch.exp(z) / math.sqrt(w.size(0))  # (..., n, r)


def trig_features(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The older trigonometric features exp(|x|^2/2) [sin(w·x), cos(w·x)] / sqrt(r), shape (..., n, 2r):
    also unbiased for exp(x·y) (random Fourier features, Rahimi & Recht 2007, times exp(|x|^2/2)), but their
    products can be negative (a negative-control baseline)."""
    z = x @ w.T  # (..., n, r)
    scale = torch.exp(x.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(w.size(0))  # (..., n, 1)
    return torch.cat([torch.sin(z), torch.cos(z)], dim=-1) * scale  # (..., n, 2r)


def _signed_parts(v: torch.Tensor) -> torch.Tensor:
    """(a, b) stacked on the last axis, shape (..., n, 2 dv), with a - b = v and a, b > 0, so that
    log a and log b are finite: a = (|v| + v)/2 + mu, b = (|v| - v)/2 + mu. The shift mu is a
    detached 2^-8 |v| (it cancels in a - b and adds no gradient; the rounding of a - b grows by a
    factor 1 + 2^-7 at most, against |v|); a zero
    entry gets 2^-8 eps max_c |v_jc| of its own row (1 for an all-zero row) and every mu is at least
    the smallest normal float, so no log is -inf and no gradient is 0 * inf. (|v| +- v)/2, not
    relu, keeps d(a - b)/dv = 1 at v = 0. Each mu depends on v_j alone, so causality is kept."""
    av = v.abs()  # (..., n, dv)
    fi = torch.finfo(v.dtype)
    with torch.no_grad():
        row = av.amax(-1, keepdim=True)  # (..., n, 1)
        row = torch.where(row > 0, row, torch.ones_like(row))
        mu = (torch.maximum(av, fi.eps * row) * 2.0**-8).clamp(min=fi.tiny)  # (..., n, dv)
    return torch.cat([(av + v) / 2 + mu, (av - v) / 2 + mu], dim=-1)  # (..., n, 2 dv)


def favor_attention(q, k, v, w, causal: bool = False, features: str = "positive"):
    """D^-1 (phi(Q) (phi(K)^T V)) for q, k (..., n, d), v (..., n, dv), w (r, d): O(n r d) time,
    O(n r + r d) memory; no n x n matrix is formed. ``causal`` uses prefix sums over keys j <= i
    (O(n r dv) time and memory). Source: Choromanski et al. 2021, "Rethinking Attention with
    Performers" (FAVOR+).

    Stabilisers (positive features). With z = W x - |x|^2/2 for x = q / d^(1/4) or k / d^(1/4),
    row i is sum_f e^{zq_if} sum_j e^{zk_jf} v_j / sum_f e^{zq_if} sum_j e^{zk_jf}; the 1/sqrt(r) of
    phi cancels. Any factor constant in j cancels in exact arithmetic, but in floating point it
    must also keep every term that matters representable:

    * non-causal: keys are divided by their per-feature maximum e^{K_f}, K_f = max_j zk_jf, and
      e^{K_f} is carried into the query side, whose exponent zq_if + K_f is then reduced by its
      row maximum. Feature f* at that maximum has query factor 1 and key sum >= 1, so D_i >= 1.
    * causal: a maximum over all keys would let a later key underflow an earlier one (and so
      change an earlier output), so the prefix sums are kept in log space, where no reference
      point is needed: L_if = log sum_{j<=i} e^{zk_jf} (``logcumsumexp``), and V is split as
      a - b with a, b > 0 so that the numerator's prefix sums log sum_{j<=i} e^{zk_jf} a_jc are
      logcumsumexps too. Row i is reduced by c_i = max_f (zq_if + L_if), which depends on keys
      j <= i only, so D_i = sum_f e^{zq_if + L_if - c_i} >= 1 and |N_i| <= D_i max_{j<=i} |v_j|.

    D_i >= 1 for any finite input; a denominator that is not finite and positive (inf or nan in
    q or k, or overflow of |x|^2) raises ValueError instead of being hidden. The log-space terms
    carry a relative rounding error of about eps |z| (the size of the exponents), as the features
    themselves do. ``features="trig"`` (the negative-control baseline) has no stabiliser, and its
    denominator may be negative; one that is zero or not finite raises too."""
    if q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q, k, v: incompatible shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if causal and q.size(-2) != k.size(-2):
        raise ValueError(f"causal: needs as many queries as keys, got {q.size(-2)} and {k.size(-2)}")
    if features not in ("positive", "trig"):
        raise ValueError(f"features: unknown {features!r}; choose 'positive' or 'trig'")
    s = q.size(-1) ** -0.25  # (q s)·(k s) = q·k / sqrt(d)
    if features == "trig":
        qp, kp = trig_features(q * s, w), trig_features(k * s, w)  # (..., n, 2r)
        if causal:  # row i sees keys j <= i: prefix sums over j of phi(k_j) v_j^T and phi(k_j)
            kv = torch.cumsum(kp.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., n, 2r, dv)
            num = (qp.unsqueeze(-2) @ kv).squeeze(-2)  # (..., n, dv)
            den = (qp * torch.cumsum(kp, dim=-2)).sum(-1, keepdim=True)  # (..., n, 1)
        else:
            num = qp @ (kp.transpose(-2, -1) @ v)  # (..., n, dv)
            den = qp @ kp.sum(-2).unsqueeze(-1)  # (..., n, 1)
    elif causal:
        zq, zk = _exponent(q * s, w), _exponent(k * s, w)  # (..., n, r)
        lk = torch.logcumsumexp(zk, dim=-2)  # (..., n, r): log sum_{j<=i} e^{zk_jf}
        t = zq + lk  # (..., n, r)
        c = t.amax(-1, keepdim=True).detach()  # (..., n, 1): keys j <= i only
        den = torch.exp(t - c).sum(-1, keepdim=True)  # (..., n, 1), >= 1
        ab = _signed_parts(v)  # (..., n, 2 dv)
        lab = torch.logcumsumexp(zk.unsqueeze(-1) + ab.log().unsqueeze(-2), dim=-3)  # (..., n, r, 2 dv)
        nab = torch.exp((zq - c).unsqueeze(-1) + lab).sum(-2)  # (..., n, 2 dv)
        num = nab[..., : v.size(-1)] - nab[..., v.size(-1) :]  # (..., n, dv)
    else:
        zq, zk = _exponent(q * s, w), _exponent(k * s, w)  # (..., n, r)
        kmax = zk.amax(-2, keepdim=True).detach()  # (..., 1, r): per-feature maximum over keys
        kp = torch.exp(zk - kmax)  # (..., n, r): each feature's largest key term is 1
        t = zq + kmax  # (..., n, r)
        qp = torch.exp(t - t.amax(-1, keepdim=True).detach())  # (..., n, r): each row's largest is 1
        num = qp @ (kp.transpose(-2, -1) @ v)  # (..., n, dv)
        den = qp @ kp.sum(-2).unsqueeze(-1)  # (..., n, 1): a matmul, not mv, so it is counted as FLOPs
    if not bool(((den != 0) & torch.isfinite(den)).all()):
        raise ValueError("q, k, v: a softmax denominator is zero or not finite (inf or nan in the inputs?)")
    return num / den  # (..., n, dv)


def exact_attention(q, k, v, causal: bool = False):
    """softmax(q k^T / sqrt(d)) v for q, k (..., n, d), v (..., n, dv) -> (..., n, dv), written out (the n x n
    reference); ``causal`` masks keys j > i."""
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (..., n, n)
    if causal:
        n = att.size(-1)
        mask = torch.ones(n, n, dtype=torch.bool, device=att.device).tril()  # (n, n)
        att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1) @ v  # (..., n, dv)


class PerformerAttention(nn.Module):
    """Multi-head self-attention with FAVOR+ in place of softmax(QK^T/sqrt(d_head))V.

    The (r, d_head) feature matrix is a buffer, shared by the heads; :meth:`redraw` replaces
    it with fresh orthogonal features from an explicit generator (Performers redraw during training)."""

    def __init__(
        self,
        d: int,
        n_heads: int,
        r: int,
        causal: bool = False,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        _positive("d", d), _positive("n_heads", n_heads), _positive("r", r)
        if d % n_heads:
            raise ValueError(f"n_heads: must divide d={d}, got {n_heads}")
        self.d, self.n_heads, self.r, self.causal = d, n_heads, r, causal
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)  # q, k, v
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.register_buffer("w", orthogonal_gaussian(r, d // n_heads, generator), persistent=True)

    @torch.no_grad()
    def redraw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw fresh features (on the buffer's device, with ``generator`` if given) and return them."""
        w = orthogonal_gaussian(self.r, self.w.size(1), generator, device=self.w.device, dtype=self.w.dtype)
        self.w.copy_(w)
        return self.w

    def forward(self, x):
        """x (B, T, d) -> (B, T, d); ValueError if the last dimension is not d."""
        B, T, C = x.size()
        if C != self.d:
            raise ValueError(f"x: last dimension must be d={self.d}, got {C}")
        nh = self.n_heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hd)
        v = v.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hd)
        y = favor_attention(q, k, v, self.w, causal=self.causal)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.c_proj(y)  # (B, T, C)

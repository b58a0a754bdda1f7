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
    a block are exactly orthogonal."""
    _positive("r", r), _positive("d", d)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    g = torch.randn(math.ceil(r / d), d, d, generator=generator, device=device, dtype=torch.float64)
    q, rr = torch.linalg.qr(g)  # (blocks, d, d), one QR per block
    q = q * torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar: fix each column's sign
    w = q.transpose(-2, -1).reshape(-1, d)[:r]  # (r, d): rows of each block orthonormal
    norms = torch.randn(r, d, generator=generator, device=device, dtype=torch.float64).norm(dim=1)  # chi_d
    return (w * norms.unsqueeze(1)).to(dtype)


def positive_features(x: torch.Tensor, w: torch.Tensor, stabilize: str | None = None) -> torch.Tensor:
    """phi(x) = exp(w·x - |x|^2/2) / sqrt(r), shape (..., n, r) for x (..., n, d), w (r, d).

    ``stabilize`` subtracts a maximum m of the exponent before exp, which multiplies phi by
    exp(-m). In attention, output row i is sum_j (phi(q_i)·phi(k_j)) v_j / sum_j phi(q_i)·phi(k_j),
    so a factor that depends on i only ("row": max over each query's own features) or is one
    constant for all keys ("global": max over every key and feature of one (batch, head)) cancels
    between numerator and denominator. None gives the unbiased kernel estimator itself."""
    if stabilize not in STABILIZE:
        raise ValueError(f"stabilize: unknown {stabilize!r}; choose from {STABILIZE}")
    if x.size(-1) != w.size(-1):
        raise ValueError(f"w: feature rows have dimension {w.size(-1)}, inputs have {x.size(-1)}")
    z = x @ w.T - x.pow(2).sum(-1, keepdim=True) / 2  # (..., n, r)
    if stabilize == "row":
        z = z - z.amax(-1, keepdim=True).detach()
    elif stabilize == "global":
        z = z - z.amax((-2, -1), keepdim=True).detach()
    return torch.exp(z) / math.sqrt(w.size(0))


def trig_features(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The older trigonometric features exp(|x|^2/2) [sin(w·x), cos(w·x)] / sqrt(r), shape (..., n, 2r):
    also unbiased for exp(x·y), but their products can be negative (a negative-control baseline)."""
    z = x @ w.T  # (..., n, r)
    scale = torch.exp(x.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(w.size(0))
    return torch.cat([torch.sin(z), torch.cos(z)], dim=-1) * scale


def favor_attention(q, k, v, w, causal: bool = False, features: str = "positive"):
    """D^-1 (phi(Q) (phi(K)^T V)) for q, k (..., n, d), v (..., n, dv), w (r, d): O(n r d) time,
    O(n r + r d) memory; no n x n matrix is formed. ``causal`` uses prefix sums (O(n r dv) memory)."""
    if q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q, k, v: incompatible shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if causal and q.size(-2) != k.size(-2):
        raise ValueError(f"causal: needs as many queries as keys, got {q.size(-2)} and {k.size(-2)}")
    s = q.size(-1) ** -0.25  # (q s)·(k s) = q·k / sqrt(d)
    if features == "positive":
        qp = positive_features(q * s, w, "row")  # (..., n, r)
        kp = positive_features(k * s, w, "global")  # (..., n, r)
    elif features == "trig":
        qp, kp = trig_features(q * s, w), trig_features(k * s, w)  # (..., n, 2r)
    else:
        raise ValueError(f"features: unknown {features!r}; choose 'positive' or 'trig'")
    if causal:  # row i sees keys j <= i: prefix sums over j of phi(k_j) v_j^T and phi(k_j)
        kv = torch.cumsum(kp.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., n, r, dv)
        num = (qp.unsqueeze(-2) @ kv).squeeze(-2)  # (..., n, dv)
        den = (qp * torch.cumsum(kp, dim=-2)).sum(-1, keepdim=True)  # (..., n, 1)
    else:
        kv = kp.transpose(-2, -1) @ v  # (..., r, dv)
        num = qp @ kv  # (..., n, dv)
        den = qp @ kp.sum(-2).unsqueeze(-1)  # (..., n, 1): a matmul, not mv, so it is counted as FLOPs
    return num / den.masked_fill(den == 0, 1.0)  # a fully underflowed row (num = 0 too) gives 0, not nan


def exact_attention(q, k, v, causal: bool = False):
    """softmax(q k^T / sqrt(d)) v, written out (the n x n reference)."""
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (..., n, n)
    if causal:
        n = att.size(-1)
        mask = torch.ones(n, n, dtype=torch.bool, device=att.device).tril()
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
        B, T, C = x.size()
        if C != self.d:
            raise ValueError(f"x: last dimension must be d={self.d}, got {C}")
        nh = self.n_heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, nh, C // nh).transpose(1, 2)
        v = v.view(B, T, nh, C // nh).transpose(1, 2)
        y = favor_attention(q, k, v, self.w, causal=self.causal)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

"""Exact attention in tiles with an online softmax (FlashAttention), forward and backward, in plain PyTorch.

softmax(q kᵀ/√d) v is computed one (query block, key block) tile at a time. Each query row keeps a running
maximum m, a running sum l = Σ exp(s - m) and an unnormalised output o = Σ exp(s - m) v; a new key block is
folded in by :func:`merge`, which rescales the old state by exp(m_old - m_new). At the end o / l is the exact
attention output, and m + log l the log-sum-exp of the row. Only the output and the log-sum-exp, O(N) numbers
per head, are kept for the backward pass, which recomputes each tile's probabilities from the log-sum-exp
instead of storing the N x N matrix (Dao et al. 2022, FlashAttention, Algorithms 1-2 and appendix B;
Dao 2023, FlashAttention-2, Algorithms 1-2, for the log-sum-exp form used here). The tiles are a Python loop
for the reader: this is the algorithm, not a fast kernel (``models.flash_triton`` is the kernel).
"""

from __future__ import annotations

import math

import torch


def merge(m1, l1, o1, m2, l2, o2, rescale: bool = True):
    """The online-softmax merge of two blocks' partial states (the rule ``proofs.flash_attention`` proves).

    A block of scores s with values v has the state m = max s, l = Σ exp(s - m), o = Σ exp(s - m) v. The state
    of both blocks together is m = max(m1, m2), l = e^{m1-m} l1 + e^{m2-m} l2, o = e^{m1-m} o1 + e^{m2-m} o2,
    so o / l is the softmax-weighted sum over all the scores (FlashAttention, Algorithm 1, lines 10-12).
    m and l are (..., L, 1), o is (..., L, d_v); a row with no score yet has m = -inf, l = 0, o = 0.
    ``rescale=False`` drops the factors e^{m_i - m} (a wrong merge, the checks' negative control).
    Returns (m, l, o) with the same shapes; raises nothing."""
    m = torch.maximum(m1, m2)
    if not rescale:
        return m, l1 + l2, o1 + o2
    shift = m.masked_fill(m == -math.inf, 0.0)  # both rows empty: e^{-inf - 0} = 0, not e^{-inf + inf} = nan
    a1, a2 = torch.exp(m1 - shift), torch.exp(m2 - shift)
    return m, a1 * l1 + a2 * l2, a1 * o1 + a2 * o2


def _query_blocks(n: int, block_q: int):
    """The query blocks: slices of ``block_q`` rows (the last may be shorter)."""
    return [slice(i, min(i + block_q, n)) for i in range(0, n, block_q)]


def _key_blocks(rows: slice, n: int, causal: bool, block_k: int, device=None):
    """Yield (key slice, causal mask or None) for the key blocks the query block ``rows`` may see.

    Causal: a key block that starts after the last query of ``rows`` is skipped; a block that reaches above
    the diagonal gets the boolean mask (bq, bk), True where query i may see key j (j <= i)."""
    for j in range(0, rows.stop if causal else n, block_k):
        cols = slice(j, min(j + block_k, n))
        mask = None
        if causal and cols.stop - 1 > rows.start:
            i, j = (
                torch.arange(rows.start, rows.stop, device=device),
                torch.arange(cols.start, cols.stop, device=device),
            )
            mask = i[:, None] >= j[None, :]
        yield cols, mask


def _scores(q, k, mask):
    """The tile's scores q kᵀ/√d (B, H, bq, bk) in the dtype of q, -inf where ``mask`` is False."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return s if mask is None else s.masked_fill(~mask, -math.inf)


# The accumulator is one precision wider than the inputs, as GPU kernels sum fp16 and bf16 products in float32:
# float32 inputs in float64 (summing the tiles in float32 gives dq up to 3.6 times plain float32 attention's error
# at the first causal rows, where D = rowsum(dO o O) fails to cancel dP exactly), float64 stays float64.
ACCUMULATE = {torch.float16: torch.float32, torch.bfloat16: torch.float32, torch.float32: torch.float64}


def _acc(t):
    """``t`` in its accumulation dtype (:data:`ACCUMULATE`; float64 and other dtypes stay as they are)."""
    return t.to(ACCUMULATE.get(t.dtype, t.dtype))


def _validate(q, k, v, block_q, block_k) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or not t.is_floating_point():
            raise ValueError(f"{name}: expected a float tensor (B, H, N, d), got {getattr(t, 'shape', type(t))}")
        if 0 in t.shape:
            raise ValueError(f"{name}: every dimension must be at least 1, got shape {tuple(t.shape)}")
        if t.dtype != q.dtype or t.device != q.device:
            raise ValueError(f"{name}: dtype and device must be q's ({q.dtype}, {q.device}), got {t.dtype}, {t.device}")
    if k.shape != q.shape:
        raise ValueError(f"k: shape {tuple(k.shape)} must equal q's {tuple(q.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v: shape {tuple(v.shape)} must match q's (B, H, N) = {tuple(q.shape[:3])}")
    for name, b in (("block_q", block_q), ("block_k", block_k)):
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"{name}: must be a positive integer, got {b!r}")


def flash_forward(q, k, v, causal: bool = False, block_q: int = 64, block_k: int = 64, rescale: bool = True):
    """The tiled forward pass: (o, lse) for q, k (B, H, N, d) and v (B, H, N, d_v) of one float dtype.

    o (B, H, N, d_v) in q's dtype is softmax(q kᵀ/√d + causal mask) v; lse (B, H, N) is each row's log-sum-exp
    m + log l of the scaled scores, in the accumulation dtype (:data:`ACCUMULATE`: float32 for half inputs,
    float64 otherwise).
    Query blocks of ``block_q`` rows meet key blocks of ``block_k`` columns (the last block may be shorter);
    the state held per query block is m, ell (bq, 1) and o (bq, d_v), and one (bq, bk) tile of scores.
    ``rescale=False`` merges without e^{m_old - m_new}: a wrong answer, for negative controls only.
    Raises ValueError naming the argument for a bad shape, dtype, device or block size."""
    _validate(q, k, v, block_q, block_k)
    B, H, N, _ = q.shape
    dtype = q.dtype
    q, k, v = _acc(q), _acc(k), _acc(v)
    out = torch.empty(B, H, N, v.size(-1), dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, N, dtype=q.dtype, device=q.device)
    for rows in _query_blocks(N, block_q):
        m = torch.full((B, H, rows.stop - rows.start, 1), -math.inf, dtype=q.dtype, device=q.device)
        ell = torch.zeros_like(m)  # the running sum (the paper's l)
        o = torch.zeros(B, H, rows.stop - rows.start, v.size(-1), dtype=q.dtype, device=q.device)
        for cols, mask in _key_blocks(rows, N, causal, block_k, q.device):
            s = _scores(q[..., rows, :], k[..., cols, :], mask)  # (B, H, bq, bk)
            m_new = s.amax(-1, keepdim=True)  # (B, H, bq, 1): this block's state ...
            p = torch.exp(s - m_new.masked_fill(m_new == -math.inf, 0.0))  # a fully masked row: p = 0
            m, ell, o = merge(m, ell, o, m_new, p.sum(-1, keepdim=True), p @ v[..., cols, :], rescale)  # ... folded in
        out[..., rows, :] = o / ell
        lse[..., rows] = (m + torch.log(ell)).squeeze(-1)
    return out.to(dtype), lse


def flash_backward(q, k, v, o, lse, do, causal: bool, block_q: int, block_k: int):
    """Gradients (dq, dk, dv) of attention from the saved output ``o`` and log-sum-exp ``lse`` alone.

    Per tile: P = exp(s - lse) (recomputed, never stored), dV += Pᵀ dO, dP = dO Vᵀ, dS = P (dP - D) with
    D = rowsum(dO ∘ O), dQ += dS K/√d, dK += dSᵀ Q/√d (FlashAttention-2, Algorithm 2; FlashAttention,
    appendix B.2, eq. for D). Shapes as :func:`flash_forward`; accumulates in the dtype ``lse`` has."""
    acc = lse.dtype
    q, k, v, o, do = (t.to(acc) for t in (q, k, v, o, do))
    scale = 1.0 / math.sqrt(q.size(-1))
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    D = (do * o).sum(-1, keepdim=True)  # (B, H, N, 1)
    n = q.size(-2)
    for rows in _query_blocks(n, block_q):
        for cols, mask in _key_blocks(rows, n, causal, block_k, q.device):
            p = torch.exp(_scores(q[..., rows, :], k[..., cols, :], mask) - lse[..., rows, None])  # (B, H, bq, bk)
            dv[..., cols, :] += p.transpose(-2, -1) @ do[..., rows, :]
            ds = p * (do[..., rows, :] @ v[..., cols, :].transpose(-2, -1) - D[..., rows, :])  # (B, H, bq, bk)
            dq[..., rows, :] += ds @ k[..., cols, :] * scale
            dk[..., cols, :] += ds.transpose(-2, -1) @ q[..., rows, :] * scale
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """Tiled attention as an autograd Function: saves q, k, v, the output and the log-sum-exp, no N x N tensor."""

    @staticmethod
    def forward(ctx, q, k, v, causal, block_q, block_k):
        o, lse = flash_forward(q, k, v, causal, block_q, block_k)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.tiling = (causal, block_q, block_k)
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = flash_backward(q, k, v, o, lse, do, *ctx.tiling)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def flash_attention(q, k, v, causal: bool = False, block_q: int = 64, block_k: int = 64):
    """Exact softmax(q kᵀ/√d) v by tiles, with gradients, keeping O(N) state per head (FlashAttention).

    q, k (B, H, N, d) and v (B, H, N, d_v) of one float dtype and device -> (B, H, N, d_v) in that dtype; half
    inputs are accumulated in float32, float32 and float64 inputs in float64 (:data:`ACCUMULATE`). ``causal``
    lets query i see keys j <= i. Equal to ``models.attention.scaled_dot_product_attention(q, k, v,
    is_causal=causal)`` up to rounding, forward and backward. Raises ValueError naming the argument for a bad
    shape, dtype, device or block size (FlashAttention, Dao et al. 2022; FlashAttention-2, Dao 2023)."""
    _validate(q, k, v, block_q, block_k)
    return FlashAttention.apply(q, k, v, bool(causal), block_q, block_k)

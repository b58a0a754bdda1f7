"""FlashAttention in Triton: exact attention softmax(q kᵀ/√d) v with O(n) memory, forward and backward
(Dao et al. 2022, "FlashAttention", Algorithm 1; Dao 2023, "FlashAttention-2", Algorithms 1 and 2).

The algorithm of ``models.flash`` (the tiled PyTorch version a reader can follow), as GPU kernels:

* forward, one program per (block of ``BLOCK_M`` queries, batch·head): the query block stays in
  registers while blocks of ``BLOCK_N`` keys and values stream past; each block's scores update the
  running maximum m, the running sum ℓ and the unnormalised output o by the online-softmax merge
  (rescale the old state by exp(m_old − m_new)); at the end o/ℓ is written, and the log-sum-exp
  m + log ℓ of each row: the only state kept for the backward (O(n), no n×n matrix);
* backward, three kernels: ``D_i = Σ_c dO_ic O_ic`` per row (preprocess); per key block, dK and dV
  summed over the query blocks; per query block, dQ summed over the key blocks. Both recompute the
  probabilities P_ij = exp(s_ij − lse_i) from the saved log-sum-exp, and dS = P ∘ (dP − D). dQ has its
  own kernel instead of atomic adds, so the gradients are deterministic.

Scores are scaled by log2(e)/√d so the kernels use exp2; the saved log-sum-exp is in the same base-2
units. Inputs are bf16 or fp16 on CUDA (float32 too under Triton's interpreter); every accumulation
(scores, ℓ, o, dK, dV, dQ) is float32, and P and dS are rounded to the input dtype before their
matrix products, as in FlashAttention-2. Causal masking keeps key j <= query i (top-left aligned).

Triton is imported lazily: this module, and the package, work without it. Set
``TRITON_INTERPRET=1`` *before* triton is first imported to run the kernels on the CPU with numpy
(slow, for tests). The kernels are written from the papers' algorithms, not from Triton's tutorial.

Tested with: Triton 3.8.0's interpreter on the CPU (torch 2.13.0, numpy 2.4): forward and gradients in float32
and fp16 within the 2x rule of ``tests/test_flash_triton.py`` (bf16 ``tl.dot`` is wrong in that interpreter, so
bf16 is tested on CUDA only). The kernels compile for sm_90 with Triton 3.8.0, but they have not yet run on a GPU:
the CUDA tests and ``python -m models.flash_bench`` on a GPU are the pending measurement.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

import torch

HEAD_DIMS = (16, 32, 64, 128)  # powers of two (tl.arange), >= 16 (tl.dot); 64 and 128 are tested on CUDA
LOG2E = 1.4426950408889634
# Forward configurations tried by the autotuner on CUDA: (BLOCK_M, BLOCK_N, num_warps, num_stages).
FWD_CONFIGS = ((128, 64, 4, 3), (128, 128, 8, 3), (128, 64, 8, 3), (64, 64, 4, 3))
# Backward blocks on CUDA by head dim: (BLOCK_M queries, BLOCK_N keys, num_warps, num_stages), one set for
# both backward kernels; small enough that dK, dV (BLOCK_N x d float32 each) stay in registers at d = 128.
BWD_CONFIG = {16: (64, 64, 4, 2), 32: (64, 64, 4, 2), 64: (64, 64, 4, 2), 128: (64, 64, 8, 2)}
INTERPRETED_BLOCKS = (32, 16)  # (BLOCK_M, BLOCK_N) under the interpreter: several blocks even at small n

# Filled in by _build(); the kernel bodies below refer to these names as globals.
tl: Any = None
_KERNELS: dict[str, Any] | None = None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def available(device: torch.device | str | None = None) -> bool:
    """Whether the kernels can run for tensors on ``device`` (default CUDA): triton can be found and either
    the device is CUDA with a GPU present, or TRITON_INTERPRET=1 (the numpy interpreter, any device)."""
    dev = torch.device("cuda" if device is None else device)
    try:
        if importlib.util.find_spec("triton") is None:
            return False
    except (ImportError, ValueError):
        return False
    return _interpreting() or (dev.type == "cuda" and torch.cuda.is_available())


# -- kernel bodies (plain functions here; _build() wraps them with triton.jit) ---------------


def _fwd_block(
    acc,
    m_i,
    l_i,
    q,
    k_ptrs,
    v_ptrs,
    offs_m,
    offs_n,
    lo,
    hi,
    n,
    qk_scale,
    D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASK: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    # key blocks [lo, hi): the online-softmax update of (m, l, acc) for the query block q (BLOCK_M, D)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASK:  # the last, partial key block, or the diagonal blocks of a causal mask
            k = tl.load(k_ptrs + start_n * D, mask=cols[:, None] < n, other=0.0)
            v = tl.load(v_ptrs + start_n * D, mask=cols[:, None] < n, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * D)
            v = tl.load(v_ptrs + start_n * D)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # (BLOCK_M, BLOCK_N) scores, base-2 units
        if MASK:
            keep = cols[None, :] < n
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None])
            s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: every row has seen key 0 by its first block
        alpha = tl.exp2(m_i - m_new)  # exp(m_old - m_new): rescales the old state
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, m_i, l_i


def _fwd_kernel(
    Q, K, V, Out, LSE, n, qk_scale, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr
):
    # one program: BLOCK_M queries of one (batch, head); q, k, v, o contiguous (B*H, n, D); lse (B*H, n)
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    base = bh * n * D
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    q = tl.load(Q + base + offs_m[:, None] * D + offs_d[None, :], mask=offs_m[:, None] < n, other=0.0)
    k_ptrs = K + base + offs_n[:, None] * D + offs_d[None, :]
    v_ptrs = V + base + offs_n[:, None] * D + offs_d[None, :]
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    if CAUSAL:  # keys below the block's diagonal need no mask; the diagonal blocks do (BLOCK_M % BLOCK_N == 0)
        full = start_m
        end = tl.minimum(start_m + BLOCK_M, n)
    else:  # whole key blocks need no mask; the partial last one does
        full = (n // BLOCK_N) * BLOCK_N
        end = n
    acc, m_i, l_i = _fwd_block(
        acc, m_i, l_i, q, k_ptrs, v_ptrs, offs_m, offs_n, 0, full, n, qk_scale, D, BLOCK_N, False, CAUSAL
    )
    acc, m_i, l_i = _fwd_block(
        acc, m_i, l_i, q, k_ptrs, v_ptrs, offs_m, offs_n, full, end, n, qk_scale, D, BLOCK_N, True, CAUSAL
    )
    acc = acc / l_i[:, None]
    rows = offs_m < n
    tl.store(LSE + bh * n + offs_m, m_i + tl.log2(l_i), mask=rows)  # log-sum-exp in base 2
    tl.store(Out + base + offs_m[:, None] * D + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=rows[:, None])


def _bwd_preprocess(Out, DO, DELTA, n, D: tl.constexpr, BLOCK_M: tl.constexpr):
    # D_i = sum_c dO_ic O_ic = sum_j P_ij dP_ij: the row term of dS = P (dP - D)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(1).to(tl.int64)
    offs_d = tl.arange(0, D)
    ptrs = bh * n * D + offs_m[:, None] * D + offs_d[None, :]
    rows = offs_m < n
    o = tl.load(Out + ptrs, mask=rows[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + ptrs, mask=rows[:, None], other=0.0).to(tl.float32)
    tl.store(DELTA + bh * n + offs_m, tl.sum(o * do, 1), mask=rows)


def _bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DK,
    DV,
    n,
    qk_scale,
    sm_scale,
    D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    # one program: BLOCK_N keys of one (batch, head); dV = sum_i P^T dO, dK = scale * sum_i dS^T Q
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1).to(tl.int64)
    base = bh * n * D
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    kv = base + offs_n[:, None] * D + offs_d[None, :]
    k = tl.load(K + kv, mask=offs_n[:, None] < n, other=0.0)
    v = tl.load(V + kv, mask=offs_n[:, None] < n, other=0.0)
    dk = tl.zeros([BLOCK_N, D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, D], dtype=tl.float32)
    lo = 0
    if CAUSAL:  # queries before the block see none of its keys
        lo = (start_n // BLOCK_M) * BLOCK_M
    for start_m in range(lo, n, BLOCK_M):
        rows = start_m + offs_m
        qo = base + rows[:, None] * D + offs_d[None, :]
        q = tl.load(Q + qo, mask=rows[:, None] < n, other=0.0)
        do = tl.load(DO + qo, mask=rows[:, None] < n, other=0.0)
        lse = tl.load(LSE + bh * n + rows, mask=rows < n, other=0.0)
        delta = tl.load(DELTA + bh * n + rows, mask=rows < n, other=0.0)
        keep = (rows[None, :] < n) & (offs_n[:, None] < n)
        if CAUSAL:
            keep = keep & (offs_n[:, None] <= rows[None, :])
        s_t = tl.dot(k, tl.trans(q)) * qk_scale  # (BLOCK_N, BLOCK_M): scores transposed, base 2
        p_t = tl.where(keep, tl.exp2(s_t - lse[None, :]), 0.0)  # P^T recomputed from the log-sum-exp
        dv += tl.dot(p_t.to(do.dtype), do)
        dp_t = tl.dot(v, tl.trans(do))  # (dO V^T)^T
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q)
    tl.store(DK + kv, (dk * sm_scale).to(DK.dtype.element_ty), mask=offs_n[:, None] < n)
    tl.store(DV + kv, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < n)


def _bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    DQ,
    n,
    qk_scale,
    sm_scale,
    D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    # one program: BLOCK_M queries of one (batch, head); dQ = scale * sum_j dS K
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    base = bh * n * D
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    qo = base + offs_m[:, None] * D + offs_d[None, :]
    rows = offs_m < n
    q = tl.load(Q + qo, mask=rows[:, None], other=0.0)
    do = tl.load(DO + qo, mask=rows[:, None], other=0.0)
    lse = tl.load(LSE + bh * n + offs_m, mask=rows, other=0.0)
    delta = tl.load(DELTA + bh * n + offs_m, mask=rows, other=0.0)
    dq = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    hi = n
    if CAUSAL:  # keys after the block's last query are unseen
        hi = tl.minimum(start_m + BLOCK_M, n)
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        kv = base + cols[:, None] * D + offs_d[None, :]
        k = tl.load(K + kv, mask=cols[:, None] < n, other=0.0)
        v = tl.load(V + kv, mask=cols[:, None] < n, other=0.0)
        keep = rows[:, None] & (cols[None, :] < n)
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = tl.dot(q, tl.trans(k)) * qk_scale
        p = tl.where(keep, tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v))
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k)
    tl.store(DQ + qo, (dq * sm_scale).to(DQ.dtype.element_ty), mask=rows[:, None])


_JIT_NAMES = ("_fwd_block", "_fwd_kernel", "_bwd_preprocess", "_bwd_dkdv_kernel", "_bwd_dq_kernel")


def _build() -> dict[str, Any]:
    """Import triton and wrap the kernel bodies above with triton.jit (once per process); on CUDA the
    forward is also wrapped with triton.autotune over FWD_CONFIGS, keyed on (n, D, CAUSAL)."""
    global _KERNELS, tl
    if _KERNELS is not None:
        return _KERNELS
    try:
        import triton
        import triton.language as tl_mod
    except ImportError as e:
        raise RuntimeError(f"triton is not importable: {e}") from None
    tl = tl_mod
    g = globals()
    jitted = {name: triton.jit(g[name]) for name in _JIT_NAMES}
    g.update(jitted)  # the kernels call _fwd_block through this module's globals
    configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s) for bm, bn, w, s in FWD_CONFIGS]
    jitted["_fwd_tuned"] = triton.autotune(configs, key=["n", "D", "CAUSAL"])(jitted["_fwd_kernel"])
    _KERNELS = jitted
    return jitted


# -- host side -------------------------------------------------------------------------------


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4:
        raise ValueError(f"q: expected shape (B, H, N, d), got {tuple(q.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"k, v: must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.size(-1) not in HEAD_DIMS:
        raise ValueError(f"q: head dim d must be one of {HEAD_DIMS}, got {q.size(-1)}")
    if q.size(2) < 1 or q.size(0) * q.size(1) < 1:
        raise ValueError(f"q: needs at least one query, batch and head, got shape {tuple(q.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v: must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    allowed = (torch.float16, torch.bfloat16) + ((torch.float32,) if _interpreting() else ())
    if q.dtype not in allowed:
        raise ValueError(f"q: dtype must be one of {[str(t) for t in allowed]}, got {q.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v: must be on one device, got {q.device}, {k.device}, {v.device}")
    if not available(q.device):
        raise ValueError(
            f"q: the Triton kernel cannot run on {q.device} (needs triton and CUDA, or TRITON_INTERPRET=1)"
        )


def _grid(blocks: int, n: int, bh: int) -> tuple[int, int]:
    return (-(-n // blocks), bh)


def _forward(q, k, v, causal: bool, blocks: tuple[int, int] | None):
    """o (B, H, N, d) and the base-2 log-sum-exp (B*H, N) float32; ``blocks`` (BLOCK_M, BLOCK_N) fixes the
    launch shape, else the autotuner picks it on CUDA (the interpreter uses INTERPRETED_BLOCKS)."""
    kern = _build()
    b, h, n, d = q.shape
    o = torch.empty_like(q)
    lse = torch.empty((b * h, n), dtype=torch.float32, device=q.device)
    scale = LOG2E / math.sqrt(d)
    if blocks is None and _interpreting():
        blocks = INTERPRETED_BLOCKS
    if blocks is None:
        grid = lambda meta: _grid(meta["BLOCK_M"], n, b * h)
        kern["_fwd_tuned"][grid](q, k, v, o, lse, n, scale, D=d, CAUSAL=causal)
    else:
        bm, bn = blocks
        if bm % bn:
            raise ValueError(f"blocks: BLOCK_M must be a multiple of BLOCK_N, got {blocks}")
        kern["_fwd_kernel"][_grid(bm, n, b * h)](q, k, v, o, lse, n, scale, D=d, BLOCK_M=bm, BLOCK_N=bn, CAUSAL=causal)
    return o, lse


def _backward(q, k, v, o, lse, do, causal: bool, blocks: tuple[int, int] | None):
    kern = _build()
    b, h, n, d = q.shape
    if blocks is None:
        bm, bn, warps, stages = (*INTERPRETED_BLOCKS, 1, 1) if _interpreting() else BWD_CONFIG[d]
    else:
        (bm, bn), warps, stages = blocks, 4, 2
    launch = {} if _interpreting() else {"num_warps": warps, "num_stages": stages}
    delta = torch.empty_like(lse)
    kern["_bwd_preprocess"][_grid(bm, n, b * h)](o, do, delta, n, D=d, BLOCK_M=bm)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    qk_scale, sm_scale = LOG2E / math.sqrt(d), 1.0 / math.sqrt(d)
    args = (n, qk_scale, sm_scale)
    kern["_bwd_dkdv_kernel"][_grid(bn, n, b * h)](
        q, k, v, do, lse, delta, dk, dv, *args, D=d, BLOCK_M=bm, BLOCK_N=bn, CAUSAL=causal, **launch
    )
    kern["_bwd_dq_kernel"][_grid(bm, n, b * h)](
        q, k, v, do, lse, delta, dq, *args, D=d, BLOCK_M=bm, BLOCK_N=bn, CAUSAL=causal, **launch
    )
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, blocks):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = _forward(q, k, v, causal, blocks)
        ctx.save_for_backward(q, k, v, o, lse)  # O(n) per head beyond the inputs: o and the log-sum-exp
        ctx.causal, ctx.blocks = causal, blocks
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernels' gradients have no graph: refuse a double backward
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, o, lse, do.contiguous(), ctx.causal, ctx.blocks)
        return dq, dk, dv, None, None


def triton_flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, blocks: tuple[int, int] | None = None
) -> torch.Tensor:
    """softmax(q kᵀ/√d (+ causal mask)) v by the FlashAttention kernels, differentiable in q, k, v.

    q, k, v: (B, H, N, d), one dtype (bf16 or fp16; float32 only under TRITON_INTERPRET=1), one device
    (CUDA, or any under the interpreter), d in ``HEAD_DIMS``. Returns (B, H, N, d) in the input dtype.
    ``causal``: query i sees keys j <= i. ``blocks``: (BLOCK_M, BLOCK_N) to fix the launch shape (tests),
    BLOCK_M a multiple of BLOCK_N, both powers of two >= 16; default: autotuned forward on CUDA.
    Raises ValueError naming the argument for bad shapes, dtypes or devices, or when triton cannot run;
    RuntimeError when triton cannot be imported.
    """
    _check(q, k, v)
    if blocks is not None:
        ok = isinstance(blocks, (tuple, list)) and len(blocks) == 2
        ok = ok and all(isinstance(b, int) and not isinstance(b, bool) and b >= 16 and not b & (b - 1) for b in blocks)
        if not ok or blocks[0] % blocks[1]:
            raise ValueError(
                f"blocks: must be two powers of two >= 16, the first a multiple of the second, got {blocks}"
            )
        blocks = (int(blocks[0]), int(blocks[1]))
    return _FlashAttention.apply(q, k, v, bool(causal), blocks)

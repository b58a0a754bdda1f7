"""Fused Monte Carlo of the dot product q·k on a GPU: a Triton kernel draws the components of
q and k in registers from a Philox counter, forms each dot product, and keeps only per-program
power sums, so no sample is ever written to memory.

Layout of the random numbers. The seed (the Philox key) is one int64 drawn from the explicit
``torch.Generator`` passed in, so the same generator seed gives the same result and successive
calls draw fresh seeds. Dot product ``i`` (counted from 0 within a call) uses the Philox
counters ``i * C + j`` for ``j < C`` (int64, so 1e10 samples are fine), and each counter yields
four independent 32-bit words w0..w3. No counter is used twice, so every component of q and of
k comes from its own bits:

* gaussian, ``C = ceil(d_k / 2)``: (w0, w1) give two components of q and (w2, w3) two of k by
  Box-Muller, q = r_q (cos a, sin a) with r_q = sqrt(-2 ln u(w0)), a = 2 pi w1 / 2^32 (k alike).
  Their contribution to q·k is computed as r_q r_k cos(a - b), the same number as
  q_0 k_0 + q_1 k_1 with half the transcendental work. An odd last component uses
  r_q cos(a) r_k cos(b).
* uniform, ``C = ceil(d_k / 2)``: w0, w1 give two components of q and w2, w3 two of k, each
  2 sqrt(3) t with t uniform on (-1/2, 1/2), so the variance is 1.
* rademacher, ``C = ceil(d_k / 64)``: the bits of (w0, w1) are 64 signs of q and those of
  (w2, w3) 64 signs of k; q·k = d_k - 2 * (number of differing bits), by popcount.

Each program reduces ``BLOCK * ITERS`` dot products to four float32 power sums per lane
(sum x, x^2, x^3, x^4); these are added in float64 and written out. In torch, on the device,
each program's sums become float64 central moments, which are combined exactly as the
pairwise update of Pébay (2008) in ``numeric.montecarlo.Moments`` would, in one vectorised
pass. E[x] = 0 by construction, so the raw sums do not cancel.

Triton is imported lazily: this module, and the package, work without it. Set
``TRITON_INTERPRET=1`` *before* triton is first imported to run the kernel on the CPU with
numpy (slow, for tests).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from typing import Any

import torch

from numeric.montecarlo import Moments

DISTRIBUTIONS = ("gaussian", "rademacher", "uniform")
_DIST_CODE = {name: i for i, name in enumerate(DISTRIBUTIONS)}

# Launch shapes: (BLOCK dot products per step, ITERS steps per program, warps per program).
COMPILED_CONFIG = (512, 64, 4)  # sm_90: 69 registers, no spills
INTERPRETED_CONFIG = (32768, 1, 1)  # numpy: few, wide steps
MAX_PROGRAMS = 1 << 16  # programs per launch; bigger requests are split into several launches
_INT64_MAX = (1 << 63) - 1


class FusedError(RuntimeError):
    """The fused kernel could not be built or run (Triton missing, compile or launch error)."""


# Filled in by _build(); the kernel bodies below refer to these names as globals.
tl: Any = None
libdevice: Any = None
_KERNELS: dict[str, Any] | None = None
_broken: str | None = None  # why the auto-dispatched fused path was given up, if it was
_fast_broken: bool = False  # the fast-math variant failed once; use the accurate one


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def triton_installed() -> bool:
    """Whether the ``triton`` package can be found (``importlib.util.find_spec``), without importing it."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


def available(device: torch.device | str | None = None) -> bool:
    """Whether the fused kernel can run for tensors on ``device`` (default CUDA): triton is
    importable and either the device is CUDA with a GPU present, or TRITON_INTERPRET=1
    (the numpy interpreter, any device)."""
    dev = torch.device("cuda" if device is None else device)
    if not triton_installed():
        return False
    if _interpreting():
        return True
    return dev.type == "cuda" and torch.cuda.is_available()


def use_fused(device: torch.device | str, fused: bool | None = None) -> bool:
    """The dispatch rule of ``numeric.dotprod.dot_product_moments``: ``fused=False`` never,
    ``fused=True`` always (ValueError if unavailable), ``None`` on CUDA when available and
    not given up after an earlier failure. Any other ``fused`` raises ValueError.

    Examples
    --------
    >>> use_fused("cpu"), use_fused("cuda", fused=False)  # never chosen by itself off CUDA
    (False, False)
    """
    dev = torch.device(device)
    if fused is False:
        return False
    if fused is True:
        if not available(dev):
            why = "triton is not installed" if not triton_installed() else "it needs CUDA or TRITON_INTERPRET=1"
            raise ValueError(f"fused: the fused Triton path is not available on {dev.type} ({why})")
        return True
    if fused is not None:
        raise ValueError(f"fused: must be True, False or None, got {fused!r}")
    return dev.type == "cuda" and _broken is None and available(dev)


def give_up(err: BaseException) -> None:
    """Record that the auto-dispatched fused path failed, and say so once on stderr."""
    global _broken
    if _broken is None:
        _broken = str(err)
        print(f"note: fused Triton path failed ({err}); falling back to the chunked torch path", file=sys.stderr)


def status() -> str:
    """One line on the state of the fused path (for reports)."""
    if not triton_installed():
        return "triton not installed"
    if _broken is not None:
        return f"given up: {_broken}"
    if _interpreting():
        return "triton interpreter, accurate math"
    try:
        fast = "accurate" if _fast_broken or not libdevice_ok() else "fast"
    except FusedError:
        fast = "accurate"
    return f"triton compiled, {fast} math for the Gaussian components"


# -- kernel bodies (plain functions here; _build() wraps them with triton.jit) ---------------


def _uniform01(w):
    # uint32 -> (0, 1]: w / 2^32 + 2^-33, never 0 so the log is finite
    return w.to(tl.float32) * 2.3283064365386963e-10 + 1.1641532182693481e-10


def _centered(w):
    # uint32 -> (-1/2, 1/2): the word read as int32, over 2^32, half a step off centre
    return (w.to(tl.int32, bitcast=True).to(tl.float32) + 0.5) * 2.3283064365386963e-10


def _angle(w):
    # uint32 (or a wrapped difference of two) -> an angle in [-pi, pi), the same mod 2 pi as 2 pi w / 2^32
    return w.to(tl.int32, bitcast=True).to(tl.float32) * 1.4629180792671596e-09


def _log2(x, FAST: tl.constexpr):
    if FAST:
        y = libdevice.fast_log2f(x)
    else:
        y = tl.log2(x)
    return y


def _cos(x, FAST: tl.constexpr):
    if FAST:
        y = libdevice.fast_cosf(x)
    else:
        y = tl.cos(x)
    return y


def _radii(w0, w2, FAST: tl.constexpr):
    # r_q r_k = sqrt(-2 ln u0) sqrt(-2 ln u2) = 2 ln 2 sqrt(log2 u0 * log2 u2)
    lq = _log2(_uniform01(w0), FAST)
    lk = _log2(_uniform01(w2), FAST)
    return 1.3862943611198906 * tl.sqrt(tl.maximum(lq * lk, 0.0))


def _popcount16(x):
    # bits set in int32 values below 2^16
    x = x - ((x >> 1) & 0x5555)
    x = (x & 0x3333) + ((x >> 2) & 0x3333)
    x = (x + (x >> 4)) & 0x0F0F
    return (x + (x >> 8)) & 0x1F


def _popcount32(w):
    return _popcount16((w & 0xFFFF).to(tl.int32)) + _popcount16((w >> 16).to(tl.int32))


def _philox(seed, ctr):
    # Philox4x32-10 of the counter (low word of ctr, high word, 0, 0) under the key (low, high
    # word of seed): the same four words as tl.randint4x(seed, ctr), with each 32 x 32-bit
    # product formed once as a 64-bit product (one IMAD.WIDE) instead of separate hi and lo.
    c0 = ctr.to(tl.uint32)
    c1 = (ctr >> 32).to(tl.uint32)
    c2 = c0 * 0
    c3 = c0 * 0
    s = seed.to(tl.uint64)
    for r in tl.static_range(10):
        k0 = ((s & 0xFFFFFFFF) + r * 0x9E3779B9).to(tl.uint32)  # the key schedule, mod 2^32
        k1 = ((s >> 32) + r * 0xBB67AE85).to(tl.uint32)
        p0 = c0.to(tl.uint64) * 0xD2511F53
        p2 = c2.to(tl.uint64) * 0xCD9E8D57
        c0 = (p2 >> 32).to(tl.uint32) ^ c1 ^ k0
        c2 = (p0 >> 32).to(tl.uint32) ^ c3 ^ k1
        c1 = p2.to(tl.uint32)
        c3 = p0.to(tl.uint32)
    return c0, c1, c2, c3


def _dot_gaussian(seed, ctr, d_k, BLOCK: tl.constexpr, FAST: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for j in range(d_k // 2):
        w0, w1, w2, w3 = _philox(seed, ctr + j)
        acc += _radii(w0, w2, FAST) * _cos(_angle(w1 - w3), FAST)
    if d_k % 2 == 1:
        w0, w1, w2, w3 = _philox(seed, ctr + d_k // 2)
        acc += _radii(w0, w2, FAST) * _cos(_angle(w1), FAST) * _cos(_angle(w3), FAST)
    return acc


def _dot_uniform(seed, ctr, d_k, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for j in range(d_k // 2):
        w0, w1, w2, w3 = _philox(seed, ctr + j)
        acc += _centered(w0) * _centered(w2) + _centered(w1) * _centered(w3)
    if d_k % 2 == 1:
        w0, w1, w2, w3 = _philox(seed, ctr + d_k // 2)
        acc += _centered(w0) * _centered(w2)
    return acc * 12.0  # (2 sqrt 3)^2


def _dot_rademacher(seed, ctr, d_k, mask0, mask1, BLOCK: tl.constexpr):
    differ = tl.zeros([BLOCK], dtype=tl.int32)
    for j in range(d_k // 64):
        w0, w1, w2, w3 = _philox(seed, ctr + j)
        differ += _popcount32(w0 ^ w2) + _popcount32(w1 ^ w3)
    if d_k % 64 != 0:  # the last 1..63 components: the low bits kept by mask0, mask1
        w0, w1, w2, w3 = _philox(seed, ctr + d_k // 64)
        differ += _popcount32((w0 ^ w2) & mask0) + _popcount32((w1 ^ w3) & mask1)
    return (d_k - 2 * differ).to(tl.float32)


def _moments_kernel(
    params_ptr,
    out_ptr,
    samples_ptr,
    DIST: tl.constexpr,
    BLOCK: tl.constexpr,
    ITERS: tl.constexpr,
    FAST: tl.constexpr,
    STORE: tl.constexpr,
):
    # params (int64): seed, index of this launch's first sample, samples in this launch, d_k,
    # counters per sample, and the bit masks of the last Rademacher counter. d_k is read at run
    # time, not compiled in, so one compiled kernel serves every d_k.
    pid = tl.program_id(0).to(tl.int64)
    seed = tl.load(params_ptr)
    base = tl.load(params_ptr + 1)
    n = tl.load(params_ptr + 2)
    d_k = tl.load(params_ptr + 3).to(tl.int32)
    calls = tl.load(params_ptr + 4)
    mask0 = tl.load(params_ptr + 5).to(tl.uint32)
    mask1 = tl.load(params_ptr + 6).to(tl.uint32)
    lanes = tl.arange(0, BLOCK)
    first = pid * (BLOCK * ITERS)
    s1 = tl.zeros([BLOCK], dtype=tl.float32)
    s2 = tl.zeros([BLOCK], dtype=tl.float32)
    s3 = tl.zeros([BLOCK], dtype=tl.float32)
    s4 = tl.zeros([BLOCK], dtype=tl.float32)
    for it in range(ITERS):
        local = first + it * BLOCK + lanes
        valid = local < n
        ctr = (base + local) * calls
        if DIST == 0:
            x = _dot_gaussian(seed, ctr, d_k, BLOCK, FAST)
        elif DIST == 1:
            x = _dot_rademacher(seed, ctr, d_k, mask0, mask1, BLOCK)
        else:
            x = _dot_uniform(seed, ctr, d_k, BLOCK)
        if STORE:
            tl.store(samples_ptr + local, x, mask=valid)
        x = tl.where(valid, x, 0.0)
        x2 = x * x
        s1 += x
        s2 += x2
        s3 += x2 * x
        s4 += x2 * x2
    out = out_ptr + pid * 4
    tl.store(out, tl.sum(s1.to(tl.float64), axis=0))
    tl.store(out + 1, tl.sum(s2.to(tl.float64), axis=0))
    tl.store(out + 2, tl.sum(s3.to(tl.float64), axis=0))
    tl.store(out + 3, tl.sum(s4.to(tl.float64), axis=0))


def _words_kernel(seed_ptr, ctr_ptr, out_ptr, n, BLOCK: tl.constexpr, OWN: tl.constexpr):
    # the four Philox words of each counter, from tl.randint4x or (OWN) from _philox; for tests
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    seed = tl.load(seed_ptr)
    ctr = tl.load(ctr_ptr + offs, mask=mask, other=0)
    if OWN:
        w0, w1, w2, w3 = _philox(seed, ctr)
    else:
        w0, w1, w2, w3 = tl.randint4x(seed, ctr)
    tl.store(out_ptr + offs * 4, w0.to(tl.int64), mask=mask)
    tl.store(out_ptr + offs * 4 + 1, w1.to(tl.int64), mask=mask)
    tl.store(out_ptr + offs * 4 + 2, w2.to(tl.int64), mask=mask)
    tl.store(out_ptr + offs * 4 + 3, w3.to(tl.int64), mask=mask)


_JIT_NAMES = (
    "_uniform01",
    "_centered",
    "_angle",
    "_log2",
    "_cos",
    "_radii",
    "_popcount16",
    "_popcount32",
    "_philox",
    "_dot_gaussian",
    "_dot_uniform",
    "_dot_rademacher",
    "_moments_kernel",
    "_words_kernel",
)


def _build() -> dict[str, Any]:
    """Import triton and wrap the kernel bodies above with triton.jit (once per process)."""
    global _KERNELS, tl, libdevice
    if _KERNELS is not None:
        return _KERNELS
    try:
        import triton
        import triton.language as tl_mod
    except ImportError as e:
        raise FusedError(f"triton is not importable: {e}") from None
    if _interpreting():
        from triton.runtime.interpreter import InterpretedFunction

        if not isinstance(tl_mod.randint4x, InterpretedFunction):
            raise FusedError("TRITON_INTERPRET=1 was set after triton had been imported; set it before")
    try:
        from triton.language.extra import libdevice as libdevice_mod
    except ImportError:
        libdevice_mod = None
    tl, libdevice = tl_mod, libdevice_mod
    g = globals()
    try:
        jitted = {name: triton.jit(g[name]) for name in _JIT_NAMES}
    except Exception as e:  # a triton too old or too new for these kernels
        raise FusedError(f"triton.jit failed: {type(e).__name__}: {e}") from e
    g.update(jitted)
    _KERNELS = {name: jitted[name] for name in ("_moments_kernel", "_words_kernel")}
    return _KERNELS


# -- host side ---------------------------------------------------------------------------------


def calls_per_sample(d_k: int, dist: str) -> int:
    """Philox counters (4 words each) one dot product uses.

    ``ceil(d_k / 64)`` for Rademacher (64 sign bits of q and of k per counter), else ``ceil(d_k / 2)``
    (two components of q and two of k per counter).

    Examples
    --------
    >>> calls_per_sample(64, "rademacher"), calls_per_sample(65, "gaussian")
    (1, 33)
    """
    return -(-d_k // 64) if dist == "rademacher" else -(-d_k // 2)


def _validate(samples: int, d_k: int, dist: str) -> None:
    if int(d_k) != d_k or d_k <= 0:
        raise ValueError(f"d_k: must be a positive integer, got {d_k}")
    if int(samples) != samples or samples <= 0:
        raise ValueError(f"samples: must be positive, got {samples}")
    if dist not in _DIST_CODE:
        raise ValueError(f"dist: unknown {dist!r}; choose from {DISTRIBUTIONS}")
    if samples > _INT64_MAX // calls_per_sample(d_k, dist):
        raise ValueError(f"samples: {samples} overflows the int64 Philox counters at d_k={d_k}")


def merge_power_sums(counts: torch.Tensor, sums: torch.Tensor) -> Moments:
    """Moments of the union of groups, given each group's count and raw power sums
    ``sums[:, 0..3] = (sum x, x^2, x^3, x^4)``. Each group's sums become central moments in
    float64; then the groups are combined around the overall mean (the many-group form of
    the Pébay update: M2 = sum(c2 + n d^2), M3 = sum(c3 + 3 d c2 + n d^3),
    M4 = sum(c4 + 4 d c3 + 6 d^2 c2 + n d^4) with d the group mean minus the overall mean).
    Vectorised in torch on the tensors' device; one transfer at the end.

    ``counts`` has shape (groups,), ``sums`` (groups, 4). Raises ValueError when there is no group
    or a group has no sample.

    Examples
    --------
    >>> sums = torch.tensor([[3.0, 5, 9, 17], [12, 50, 216, 962]])  # the groups {1, 2} and {3, 4, 5}
    >>> merge_power_sums(torch.tensor([2, 3]), sums)
    Moments(n=5, mean=3.0, m2=10.0, m3=0.0, m4=34.0)
    """
    n = counts.to(torch.float64)
    s = sums.to(torch.float64)
    if n.numel() == 0 or bool((n <= 0).any()):
        raise ValueError("counts: every group needs at least one sample")
    s1, s2, s3, s4 = s.unbind(-1)
    mean = s1 / n
    c2 = s2 - s1 * mean
    c3 = s3 - 3 * mean * s2 + 2 * n * mean**3
    c4 = s4 - 4 * mean * s3 + 6 * mean**2 * s2 - 3 * n * mean**4
    total = n.sum()
    mu = s1.sum() / total
    d = mean - mu
    m2 = (c2 + n * d**2).sum()
    m3 = (c3 + 3 * d * c2 + n * d**3).sum()
    m4 = (c4 + 4 * d * c3 + 6 * d**2 * c2 + n * d**4).sum()
    n_, mu_, m2_, m3_, m4_ = torch.stack([total, mu, m2, m3, m4]).tolist()
    return Moments(int(round(n_)), mu_, m2_, m3_, m4_)


def _scaled(m: Moments, scale: float) -> Moments:
    s = float(scale)
    return Moments(m.n, m.mean * s, m.m2 * s**2, m.m3 * s**3, m.m4 * s**4)


def _config(block: int | None, iters: int | None, num_warps: int | None) -> tuple[int, int, int]:
    d_block, d_iters, d_warps = INTERPRETED_CONFIG if _interpreting() else COMPILED_CONFIG
    block, iters, num_warps = block or d_block, iters or d_iters, num_warps or d_warps
    if block < 16 or block & (block - 1):
        raise ValueError(f"block: must be a power of two >= 16, got {block}")
    if iters <= 0:
        raise ValueError(f"iters: must be positive, got {iters}")
    if num_warps <= 0 or num_warps & (num_warps - 1):
        raise ValueError(f"num_warps: must be a power of two, got {num_warps}")
    return block, iters, num_warps


def _launch(
    seed: torch.Tensor,
    samples: int,
    d_k: int,
    dist: str,
    cfg: tuple[int, int, int],
    fast: bool,
    store: torch.Tensor | None = None,
) -> Moments:
    kernel = _build()["_moments_kernel"]
    block, iters, num_warps = cfg
    dev = seed.device
    per_program = block * iters
    per_launch = per_program * MAX_PROGRAMS
    rem = d_k % 64  # Rademacher: components in the last, partly used counter
    shape = (d_k, calls_per_sample(d_k, dist), (1 << min(rem, 32)) - 1, (1 << max(rem - 32, 0)) - 1)
    acc = Moments()
    base = 0
    while base < samples:
        m = min(per_launch, samples - base)
        programs = -(-m // per_program)
        params = torch.cat([seed.reshape(1), torch.tensor([base, m, *shape], dtype=torch.int64).to(dev)])
        out = torch.empty((programs, 4), dtype=torch.float64, device=dev)
        target = out if store is None else store[base : base + m]
        kernel[(programs,)](
            params,
            out,
            target,
            DIST=_DIST_CODE[dist],
            BLOCK=block,
            ITERS=iters,
            FAST=fast,
            STORE=store is not None,
            num_warps=num_warps,
        )
        counts = (m - per_program * torch.arange(programs, device=dev, dtype=torch.int64)).clamp_(max=per_program)
        acc = acc.merge(merge_power_sums(counts, out))
        base += m
    return acc


def _run(
    seed: torch.Tensor,
    samples: int,
    d_k: int,
    dist: str,
    cfg: tuple[int, int, int],
    fast_math: bool | None,
    store: torch.Tensor | None = None,
) -> Moments:
    global _fast_broken
    can_fast = not _interpreting() and seed.device.type == "cuda"
    if fast_math and not can_fast:
        raise ValueError("fast_math: needs the compiled CUDA path (not the interpreter)")
    fast = can_fast and not _fast_broken if fast_math is None else bool(fast_math)
    ctx = torch.cuda.device(seed.device) if seed.device.type == "cuda" else contextlib.nullcontext()
    with ctx:
        try:
            return _launch(seed, samples, d_k, dist, cfg, fast and dist == "gaussian" and libdevice_ok(), store)
        except FusedError:
            raise
        except Exception as e:  # compile or launch failure: try accurate math once, then give up
            if fast and fast_math is None and dist == "gaussian":
                _fast_broken = True
                print(
                    f"note: fast-math fused kernel failed ({type(e).__name__}: {e}); retrying with accurate math",
                    file=sys.stderr,
                )
                try:
                    return _launch(seed, samples, d_k, dist, cfg, False, store)
                except Exception as e2:
                    raise FusedError(f"{type(e2).__name__}: {e2}") from e2
            raise FusedError(f"{type(e).__name__}: {e}") from e


def libdevice_ok() -> bool:
    """Whether Triton's libdevice offers ``fast_log2f`` and ``fast_cosf``, the approximate
    instructions of the fast-math Gaussian kernel. Builds the kernels first (imports triton);
    raises FusedError when triton is not importable."""
    _build()
    return libdevice is not None and hasattr(libdevice, "fast_log2f") and hasattr(libdevice, "fast_cosf")


def draw_seed(gen: torch.Generator) -> torch.Tensor:
    """One int64 Philox key from ``gen`` (a 1-element tensor on the generator's device).

    Uniform on [0, 2^63 - 1); it advances ``gen``, so successive calls give fresh keys.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> bool(draw_seed(gen) != draw_seed(gen))
    True
    """
    return torch.randint(0, _INT64_MAX, (1,), generator=gen, device=gen.device, dtype=torch.int64)


def fused_dot_product_moments(
    samples: int,
    d_k: int,
    gen: torch.Generator,
    dist: str = "gaussian",
    scale: float = 1.0,
    *,
    block: int | None = None,
    iters: int | None = None,
    num_warps: int | None = None,
    fast_math: bool | None = None,
) -> Moments:
    """Moments of ``samples`` draws of ``scale * q·k`` (q, k in R^d_k with i.i.d. zero-mean,
    unit-variance components), computed by the fused Triton kernel on ``gen``'s device.

    Same contract as ``numeric.dotprod.dot_product_moments`` (a different random stream).
    The kernel seed is drawn from ``gen``. ``fast_math`` (CUDA only; default on there) uses
    the approximate log2/cos instructions for the Gaussian components. Raises ValueError on
    bad input and FusedError when the kernel cannot be built or run."""
    _validate(samples, d_k, dist)
    cfg = _config(block, iters, num_warps)
    _build()
    seed = draw_seed(gen)
    return _scaled(_run(seed, int(samples), int(d_k), dist, cfg, fast_math), scale)


# -- references for tests ------------------------------------------------------------------


def fused_samples(
    samples: int,
    d_k: int,
    seed: int,
    dist: str = "gaussian",
    device: torch.device | str = "cpu",
    *,
    block: int | None = None,
    iters: int | None = None,
    fast_math: bool | None = None,
) -> tuple[torch.Tensor, Moments]:
    """The kernel's dot products themselves (float32, written out: for tests only) and the
    moments it reduced them to, for an explicit Philox ``seed``.

    Returns a tensor of shape (samples,) on ``device`` and the :class:`~numeric.montecarlo.Moments`
    of the same numbers. Raises ValueError on bad input and FusedError when the kernel cannot be
    built or run (it needs CUDA or ``TRITON_INTERPRET=1``)."""
    _validate(samples, d_k, dist)
    cfg = _config(block, iters, None)
    _build()
    seed_t = torch.tensor([seed], dtype=torch.int64, device=device)
    store = torch.empty(samples, dtype=torch.float32, device=device)
    m = _run(seed_t, int(samples), int(d_k), dist, cfg, fast_math, store)
    return store, m


def philox_words(counters: torch.Tensor, seed: int, own: bool = False) -> torch.Tensor:
    """The four 32-bit Philox words (as int64, shape (n, 4)) of each int64 counter under ``seed``,
    from Triton's own tl.randint4x (or, with ``own``, from the kernel's _philox, which must
    agree): the raw material the kernel turns into components.

    Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"). Runs on the
    counters' device; raises FusedError when triton is not importable."""
    k = _build()["_words_kernel"]
    ctr = counters.to(torch.int64).contiguous()
    n = ctr.numel()
    out = torch.empty((n, 4), dtype=torch.int64, device=ctr.device)
    seed_t = torch.tensor([seed], dtype=torch.int64, device=ctr.device)
    block = 1024
    k[(max(1, -(-n // block)),)](seed_t, ctr, out, n, BLOCK=block, OWN=own)
    return out


def reference_dot_products(words: torch.Tensor, d_k: int, dist: str) -> torch.Tensor:
    """q·k in float64 from explicit components built from Philox ``words`` of shape
    (samples, calls_per_sample, 4), following the layout in the module docstring.

    Returns shape (samples,); the reference the kernel's float32 output is tested against.
    Raises ValueError for an unknown ``dist``.

    Examples
    --------
    >>> words = torch.zeros(2, calls_per_sample(5, "rademacher"), 4, dtype=torch.int64)
    >>> reference_dot_products(words, 5, "rademacher")  # all bits 0: q = k = (1, ..., 1)
    tensor([5., 5.], dtype=torch.float64)
    """
    w = words.to(torch.float64)
    two32 = 2.0**32
    if dist == "gaussian":
        r_q = torch.sqrt(-2 * torch.log(w[..., 0] / two32 + 2.0**-33))
        r_k = torch.sqrt(-2 * torch.log(w[..., 2] / two32 + 2.0**-33))
        a, b = 2 * math.pi * w[..., 1] / two32, 2 * math.pi * w[..., 3] / two32
        q = torch.stack([r_q * torch.cos(a), r_q * torch.sin(a)], -1).flatten(-2)[:, :d_k]
        k = torch.stack([r_k * torch.cos(b), r_k * torch.sin(b)], -1).flatten(-2)[:, :d_k]
        return (q * k).sum(-1)
    if dist == "uniform":
        signed = torch.where(words >= 2**31, words - 2**32, words).to(torch.float64)
        t = (signed + 0.5) / two32 * (2 * math.sqrt(3))
        q = t[..., 0:2].flatten(-2)[:, :d_k]
        k = t[..., 2:4].flatten(-2)[:, :d_k]
        return (q * k).sum(-1)
    if dist == "rademacher":
        shifts = torch.arange(32, device=words.device)
        bits = (words.unsqueeze(-1) >> shifts) & 1  # (samples, calls, 4, 32)
        q = (1 - 2 * bits[:, :, 0:2, :]).flatten(1)[:, :d_k]
        k = (1 - 2 * bits[:, :, 2:4, :]).flatten(1)[:, :d_k]
        return (q * k).sum(-1).to(torch.float64)
    raise ValueError(f"dist: unknown {dist!r}; choose from {DISTRIBUTIONS}")

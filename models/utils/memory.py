"""Peak tensor memory of a piece of code, measured by the allocator, and the log-log slope of a growth law.

:func:`peak_bytes` answers "how many bytes of tensors did ``fn()`` need at once, above what was already live?"
It measures; it never computes the answer from shapes.

- **CUDA**: the caching allocator's own counters. ``torch.cuda.synchronize()``,
  ``torch.cuda.reset_peak_memory_stats()``, ``base = torch.cuda.memory_allocated()``, run ``fn``, synchronize, and
  return ``torch.cuda.max_memory_allocated() - base``. It counts the blocks handed out, each rounded up to a
  multiple of 512 bytes.
- **CPU**: torch's profiler (``torch.autograd.profiler.profile``, which ``torch.profiler.profile`` wraps) with
  ``profile_memory=True`` records one ``[memory]`` event for every allocation (+bytes) and every free (-bytes) of
  the CPU allocator. Summed in time order they are the live tensor memory over time; the peak is the maximum of
  the running sum. (Per-operator *self* memory is not used: inside an ``autograd.Function`` the parent's self
  memory is a large negative number that sorts before its children's allocations and hides the peak.) This
  sees every allocation torch's CPU allocator makes, temporaries inside an operator included.

Both count tensor storage only (not the Python objects, nor the allocator's cached free blocks), are deterministic
(no sampling: the same code gives the same bytes), and exclude tensors that were live before ``fn`` started.

:func:`loglog_slope` fits ``log(values) = a + slope * log(ns)`` by least squares and returns the slope and its
standard error: memory that grows like n^2 has slope 2, memory that grows like n has slope 1.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

from models.utils.device import pick_device


def peak_bytes(fn: Callable[[], object], device) -> int:
    """The peak bytes of tensor memory allocated while ``fn()`` runs, above what was live before it.

    ``fn`` takes no arguments; what it returns is dropped after the measurement (a returned tensor is still live
    at ``fn``'s end, so it counts towards the peak). ``device`` is ``"cpu"``, ``"cuda"``, a ``torch.device``, or
    None for the default (``models.utils.device.pick_device``): where ``fn`` allocates. Units: bytes (an int
    >= 0). Method: CUDA allocator counters on CUDA, torch's profiler on the CPU (see the module docstring).
    Raises ValueError naming ``fn`` when it is not callable, or ``device`` when it is neither CPU nor an
    available CUDA device.

    Examples
    --------
    >>> import torch
    >>> peak_bytes(lambda: torch.empty(1000, dtype=torch.float32), "cpu")
    4000
    """
    import torch

    if not callable(fn):
        raise ValueError(f"fn: must be callable with no arguments, got {type(fn).__name__}")
    dev = pick_device(None if device is None else str(device))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
        del out
        return int(max(peak, 0))
    # torch.autograd.profiler.profile is what torch.profiler.profile wraps; the wrapper's first start imports
    # torch._inductor (seconds), this one starts in milliseconds
    from torch.autograd.profiler import profile

    with _quiet_stderr(), profile(use_cpu=True, profile_memory=True) as prof:
        out = fn()
        del out
    mem = sorted(
        (e.start_ns(), i, e.nbytes()) for i, e in enumerate(prof.kineto_results.events()) if e.name() == "[memory]"
    )  # the allocator's events in time order (the index keeps simultaneous events in recorded order)
    live = peak = 0
    for _, _, nbytes in mem:  # the running sum of allocations (+) and frees (-) is the live memory above the start
        live += nbytes
        peak = max(peak, live)
    return int(peak)


def loglog_slope(ns: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """The least-squares slope of ``log(values)`` on ``log(ns)`` and its standard error.

    ``ns`` (sizes) and ``values`` (e.g. bytes) are sequences of the same length, at least 3 (two points leave no
    residual to estimate the error from), of positive finite numbers, with at least two distinct ``ns``. Exact
    power-law data ``values = c * ns^k`` gives ``(k, 0.0)`` up to rounding. The standard error is the usual one of
    ordinary least squares, ``sqrt(RSS / (k - 2) / Sxx)`` for ``k`` points (as ``scipy.stats.linregress``'s
    ``stderr``; numpy here, since importing ``scipy.stats`` takes seconds). Raises ValueError naming ``ns`` or
    ``values``.

    Examples
    --------
    >>> slope, se = loglog_slope([128, 256, 512], [3 * 128**2, 3 * 256**2, 3 * 512**2])
    >>> round(slope, 12), se < 1e-12
    (2.0, True)
    """
    x, y = _positive("ns", ns), _positive("values", values)
    if len(x) != len(y):
        raise ValueError(f"values: must have as many entries as ns ({len(x)}), got {len(y)}")
    if len(x) < 3:
        raise ValueError(f"ns: need at least 3 sizes to estimate a slope's standard error, got {len(x)}")
    if np.unique(x).size < 2:
        raise ValueError("ns: need at least two distinct sizes")
    lx, ly = np.log(x) - np.log(x).mean(), np.log(y) - np.log(y).mean()
    sxx = float(lx @ lx)
    slope = float(lx @ ly) / sxx
    resid = ly - slope * lx
    return slope, math.sqrt(float(resid @ resid) / (len(x) - 2) / sxx)


def _positive(name: str, seq) -> np.ndarray:
    try:
        a = np.asarray(seq, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a sequence of numbers") from None
    if a.ndim != 1:
        raise ValueError(f"{name}: must be a one-dimensional sequence, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ValueError(f"{name}: every entry must be positive and finite, got {seq!r}")
    return a


@contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for the body: the profiler prints 'USDT ... profiler_start/stop' lines
    there from C++, which Python's ``sys.stderr`` cannot catch."""
    fd = 2  # the process's own stderr, whatever Python's sys.stderr object is (pytest, a notebook)
    if sys.stderr is not None:
        sys.stderr.flush()
    saved, null = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)

"""Wall-clock timing of a callable, the one loop every benchmark of the project uses.

``time_calls(fn, device=..., repeats=..., warmup=...)`` runs ``fn`` ``warmup`` times to warm up (their
total time is kept apart, never mixed into the statistics), then ``repeats`` timed samples of ``number``
calls each, reading ``time.perf_counter`` around each sample.
The device is synchronised before every read of the clock (CUDA: ``torch.cuda.synchronize``; CPU:
nothing to wait for), so a sample covers the work its calls queued, not only their launch. All times
are in seconds. The result is a frozen :class:`Timing`: the per-call time of each sample, their
median and spread (quartiles, min, max), and the value of the last call.

>>> t = time_calls(lambda: sum(range(100)), repeats=3, warmup=1)
>>> t.n, t.result, t.min <= t.median <= t.max
(3, 4950, True)
>>> print(Timing(times=(0.0012, 0.0010, 0.0011)))
1.1 ms (IQR 1.05-1.15 ms, n = 3)
>>> time_calls(print, repeats=0)
Traceback (most recent call last):
ValueError: repeats: must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any

import torch

__all__ = ["Timing", "format_seconds", "synchronize", "time_calls"]

# (name, seconds per unit), largest first: a value is shown in the largest unit of which it holds at least one
_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def _unit(seconds: float) -> tuple[str, float]:
    shown = abs(float(f"{seconds:.3g}"))  # as rounded for display: 0.9996 s is shown as 1 s, not 1e+03 ms
    return next(((u, s) for u, s in _UNITS if shown >= s), _UNITS[-1])


def format_seconds(seconds: float) -> str:
    """``seconds`` with three significant digits in s, ms, µs or ns, e.g. ``'1.23 ms'``."""
    unit, scale = _unit(seconds)
    return f"{seconds / scale:.3g} {unit}"


def _quantile(xs: list[float], p: float) -> float:
    """Quantile ``p`` of the sorted ``xs``, linear between order statistics (numpy's default)."""
    pos = p * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Timing:
    """Seconds per call of timed samples, with their summary.

    ``times``: seconds per call, one entry per timed sample (a sample of ``number`` calls counts its
    total over ``number``); ``warmup_s``: seconds the warm-up calls took together (0.0 without
    warm-up; not part of ``times``); ``number``: calls per sample; ``result``: what the last call
    returned (not part of the comparison or the repr). Raises ValueError naming the field for no
    times, a negative or non-finite time, or ``number`` < 1.
    """

    times: tuple[float, ...]
    warmup_s: float = 0.0
    number: int = 1
    result: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        times = tuple(float(t) for t in self.times)
        if not times:
            raise ValueError("times: need at least one timed sample")
        if not all(math.isfinite(t) and t >= 0 for t in times):
            raise ValueError(f"times: must be finite and >= 0 seconds, got {times}")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ValueError(f"warmup_s: must be finite and >= 0 seconds, got {self.warmup_s!r}")
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 1:
            raise ValueError(f"number: must be an integer >= 1, got {self.number!r}")
        object.__setattr__(self, "times", times)

    @property
    def n(self) -> int:
        """Number of timed samples."""
        return len(self.times)

    @property
    def median(self) -> float:
        """Median seconds per call over the samples."""
        return statistics.median(self.times)

    @property
    def q1(self) -> float:
        """Lower quartile of the seconds per call (linear interpolation; the only time when n = 1)."""
        return _quantile(sorted(self.times), 0.25)

    @property
    def q3(self) -> float:
        """Upper quartile of the seconds per call."""
        return _quantile(sorted(self.times), 0.75)

    @property
    def iqr(self) -> float:
        """Interquartile range q3 - q1, in seconds."""
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        """Fastest sample, seconds per call."""
        return min(self.times)

    @property
    def max(self) -> float:
        """Slowest sample, seconds per call."""
        return max(self.times)

    def __str__(self) -> str:
        """Median and interquartile range in the median's unit, e.g. ``'1.1 ms (IQR 1.05-1.15 ms, n = 3)'``."""
        unit, scale = _unit(self.median)
        g = lambda x: f"{x / scale:.3g}"
        return f"{g(self.median)} {unit} (IQR {g(self.q1)}-{g(self.q3)} {unit}, n = {self.n})"


def synchronize(device: torch.device | str | None) -> None:
    """Wait until ``device`` has finished the work queued on it: ``torch.cuda.synchronize`` on CUDA,
    nothing on the CPU or for ``None``. Raises ValueError naming ``device`` for another device type."""
    _syncer(_device(device))()


def _syncer(dev: torch.device | None) -> Callable[[], None]:
    if dev is not None and dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)  # looked up at each call
    return lambda: None


def _device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: unknown device {device!r} (try 'cpu' or 'cuda')") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: cannot synchronise {dev.type!r} for timing (use 'cpu' or 'cuda')")
    return dev


def _count(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name}: must be an integer >= {least}, got {value!r}")
    return value


def time_calls(
    fn: Callable[..., Any],
    *,
    device: torch.device | str | None = None,
    repeats: int = 5,
    warmup: int = 1,
    number: int = 1,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn``: ``warmup`` warm-up calls, then ``repeats`` timed samples of ``number`` calls each.

    ``device``: where ``fn`` queues its work (``None`` or ``'cpu'``: no synchronisation); it is
    synchronised before every read of ``time.perf_counter``, so each sample lasts until its work is
    done. ``setup``: when given, called before each warm-up call and each sample, outside the timer,
    and its value passed to ``fn`` (``fn(setup())``; every call of a sample gets the same value);
    otherwise ``fn()`` takes no argument. Returns a :class:`Timing` in seconds per call, with ``result``
    the last call's value and ``warmup_s`` the warm-up calls' total (each warm-up call is clocked alone,
    its setup excluded; none of them enters ``times``, the median or the spread). Raises ValueError
    naming the argument for ``repeats`` < 1, ``warmup`` < 0, ``number`` < 1 (or a non-integer), or a
    device other than CPU and CUDA; an exception of ``fn`` or ``setup`` propagates.
    """
    repeats, warmup, number = _count("repeats", repeats, 1), _count("warmup", warmup, 0), _count("number", number, 1)
    sync = _syncer(_device(device))
    result, warmup_s, times = None, 0.0, []
    for i in range(warmup + repeats):
        warm = i < warmup
        call = fn if setup is None else partial(fn, setup())  # the setup runs before the clock starts
        sync()
        t0 = perf_counter()
        for _ in range(1 if warm else number):
            result = call()
        sync()
        elapsed = perf_counter() - t0
        if warm:
            warmup_s += elapsed
        else:
            times.append(elapsed / number)
    return Timing(tuple(times), warmup_s, number, result)

"""Minimising a sum of power laws in float64 without overflow: in ``x = log N`` the log of a sum of
terms ``t_i = exp(l_i(x))``, each ``l_i`` linear in ``x`` with slope ``s_i``, is a log-sum-exp, finite
for any finite positive constants. The minimum is bracketed from the sign of the derivative, then
found by scipy's bounded Brent (on a re-centred difference, to relative precision however flat the
sum is) or as the root of the derivative by brentq.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

EPS = sys.float_info.epsilon


def lse(v: list[float]) -> float:
    """log(sum(exp(v))), computed without overflow.

    >>> lse([1000.0, 1000.0])  # 1000 + log 2
    1000.6931471805599
    """
    m = max(v)
    return m + math.log(sum(math.exp(x - m) for x in v))


class LogPowerSum:
    """``x -> log(sum_i exp(terms[i](x, c)))`` for terms linear in ``x`` with ``slopes``, at a parameter
    ``c`` (a budget) passed to every call: the log of a sum of power laws of ``N = e^x``.

    >>> f = LogPowerSum([lambda x, c: -x, lambda x, c: x - c], [-1.0, 1.0])  # 1/N + N/e^c
    >>> f(0.0, 0.0) == math.log(2) and f.slope(0.0, 0.0) == 0.0
    True
    """

    def __init__(self, terms: list[Callable[[float, float], float]], slopes: list[float]):
        self.terms, self.slopes = terms, slopes

    def logs(self, x: float, c: float) -> list[float]:
        """The terms' logs l_i at x."""
        return [f(x, c) for f in self.terms]

    def __call__(self, x: float, c: float) -> float:
        """log of the sum at x."""
        return lse(self.logs(x, c))

    def slope(self, x: float, c: float) -> float:
        """d log(sum) / dx: each term's slope weighted by its share of the sum."""
        p = self.logs(x, c)
        m = lse(p)
        return sum(s * math.exp(v - m) for s, v in zip(self.slopes, p))

    def centred(self, xr: float, c: float) -> Callable[[float], float]:
        """t -> log(sum)(xr + t) - log(sum)(xr): near t = 0 as log1p(sum_i w_i expm1(s_i t)),
        with w_i the terms' shares at xr, which float64 resolves to relative precision however
        flat the sum is; further out (|s_i t| >= 1/2) by log-sum-exp, which cannot overflow."""
        p = self.logs(xr, c)
        m = lse(p)
        lw = [v - m for v in p]
        w = [math.exp(v) for v in lw]
        sl = self.slopes

        def h(t: float) -> float:
            d = [s * t for s in sl]
            if max(abs(v) for v in d) < 0.5:
                return math.log1p(sum(wi * math.expm1(di) for wi, di in zip(w, d)))
            return lse([a + b for a, b in zip(lw, d)])

        return h

    def conditioning(self, x: float, c: float) -> float:
        """float64's error in x where the terms cross: eps times the size of the log-terms (and
        16 for sympy's rounding of the constants it folds) over how fast their difference moves."""
        size = 16 + sum(abs(v) for v in self.logs(x, c)) + sum(abs(s) for s in self.slopes) * abs(x)
        return EPS * size / (max(self.slopes) - min(self.slopes))


def bracket(f: LogPowerSum, c: float, x0: float) -> tuple[float, float] | None:
    """An interval of x where ``f.slope`` changes sign (so it holds the minimum of the convex sum),
    stepping out from ``x0`` by 1, 2, 4, ...; None if 64 doublings find none."""
    d0 = f.slope(x0, c)
    if d0 == 0:
        return x0 - 1, x0 + 1
    way, prev, step = (1 if d0 < 0 else -1), x0, 1.0
    for _ in range(64):
        x = x0 + way * step
        if (f.slope(x, c) < 0) != (d0 < 0):
            return min(prev, x), max(prev, x)
        prev, step = x, 2 * step
    return None


def argmin(f: LogPowerSum, c: float, x0: float) -> float:
    """The x minimising f: scipy's bounded Brent on :func:`bracket` from ``x0``, re-centred on each
    estimate (:meth:`LogPowerSum.centred`) until the step is below 1e-13; NaN on failure."""
    from scipy.optimize import minimize_scalar

    br = bracket(f, c, x0)
    if br is None:
        return math.nan
    lo, hi = br
    x = (lo + hi) / 2
    for _ in range(12):
        h = f.centred(x, c)
        r = minimize_scalar(h, bounds=(lo - x, hi - x), method="bounded", options={"xatol": 1e-15, "maxiter": 2000})
        if not r.success:
            return math.nan
        x += r.x
        if abs(r.x) <= 1e-13 * max(1.0, abs(x)):
            return x
    return x


def root(f: LogPowerSum, c: float, x0: float) -> float:
    """The root of ``f.slope`` by brentq on :func:`bracket` from ``x0``; NaN if there is none."""
    from scipy.optimize import brentq

    br = bracket(f, c, x0)
    if br is None:
        return math.nan
    return brentq(lambda t: f.slope(t, c), *br, xtol=1e-300, rtol=4 * EPS, maxiter=500)

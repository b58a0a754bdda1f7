"""Goodness of fit of observed counts to an exact law: Pearson's chi-square test with a stated
false-alarm probability, and the sample size that gives it a stated power.

The test rejects when the p-value of Pearson's statistic (``scipy.stats.chisquare``) falls below
``rate``, so a true law is rejected with probability about ``rate`` (the chi-square approximation,
made safe by pooling every cell expected to hold fewer than 5 counts into one). Its power against a
wrong law of Cohen's effect size ``w = sqrt(sum (p1 - p0)^2 / p0)`` is that of a noncentral
chi-square with noncentrality ``n w^2`` (Cohen 1988, ch. 7).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ChiSquare:
    """The outcome of a chi-square test of counts against a law: it agrees when ``p_value >= rate``."""

    claim: str
    statistic: float
    df: int
    p_value: float
    rate: float
    n: int
    effect: float  # Cohen's w of the observed frequencies against the law: sqrt(statistic / n)
    agrees: bool

    def to_dict(self) -> dict:
        """The fields as a dict for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        word = "agrees" if self.agrees else "REJECTED"
        return (
            f"{self.claim}: chi2 = {self.statistic:.1f} on {self.df} df (n = {self.n:,}), "
            f"p = {self.p_value:.3g} vs {self.rate:g}, w = {self.effect:.3f} -> {word}"
        )


def pooled(counts, probs, min_expected: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """``(observed, expected)`` with every cell whose expected count is below ``min_expected`` pooled
    into one last cell (dropped if it then holds nothing expected and nothing observed).

    >>> pooled([10, 6, 2, 2], [0.5, 0.3, 0.1, 0.1])  # expected 10, 6, 2, 2: the last two pooled
    (array([10.,  6.,  4.]), array([10.,  6.,  4.]))
    """
    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    n = counts.sum()
    expected = n * probs
    big = expected >= min_expected
    obs, exp = list(counts[big]), list(expected[big])
    if (~big).any() and (expected[~big].sum() > 0 or counts[~big].sum() > 0):
        obs.append(counts[~big].sum())
        exp.append(expected[~big].sum())
    return np.array(obs), np.array(exp)


def chi_square(counts, probs, claim: str, rate: float) -> ChiSquare:
    """Pearson's test of ``counts`` (one per cell) against the exact law ``probs`` (summing to 1).

    Raises ValueError when ``probs`` is not a law over the same cells, when ``rate`` is not in (0, 1),
    or when pooling leaves fewer than two cells. A count in a cell of probability 0 gives an infinite
    statistic and a rejection.

    >>> print(chi_square([50, 50], [0.5, 0.5], "fair coin", 1e-3))
    fair coin: chi2 = 0.0 on 1 df (n = 100), p = 1 vs 0.001, w = 0.000 -> agrees
    """
    from scipy.stats import chi2

    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    if counts.shape != probs.shape or probs.min() < 0 or abs(probs.sum() - 1) > 1e-9:
        raise ValueError("probs: must be a law (non-negative, summing to 1) over the same cells as counts")
    if not 0 < rate < 1:
        raise ValueError(f"rate: must lie in (0, 1), got {rate}")
    n = int(counts.sum())
    if (counts[probs == 0] > 0).any():
        return ChiSquare(claim, math.inf, len(counts) - 1, 0.0, rate, n, math.inf, False)
    obs, exp = pooled(counts, probs)
    if len(obs) < 2:
        raise ValueError("counts: too few samples for a chi-square test (fewer than two cells expect 5)")
    stat = float(((obs - exp) ** 2 / exp).sum())
    df = len(obs) - 1
    p = float(chi2.sf(stat, df))
    return ChiSquare(claim, stat, df, p, rate, n, math.sqrt(stat / n), p >= rate)


def samples_for_effect(df: int, w: float, rate: float, miss: float) -> int:
    """The sample size at which the chi-square test on ``df`` degrees of freedom at false-alarm
    ``rate`` rejects a law of effect size ``w`` with probability at least ``1 - miss``.

    >>> samples_for_effect(26, 0.3, 1e-3, 1e-3)
    880
    """
    from scipy.optimize import brentq
    from scipy.stats import chi2, ncx2

    crit = chi2.isf(rate, df)

    def shortfall(lam: float) -> float:
        return float(ncx2.sf(crit, df, lam)) - (1 - miss)

    lam = brentq(shortfall, 1e-6, 1e6)
    return math.ceil(lam / w**2)

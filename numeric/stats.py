"""Agreement tests with a stated false-alarm probability, and power for negative controls.

Agreement of an estimate with an exact value is a two-sided z-test: it passes when
``|estimate - exact| <= z * stderr`` with ``z = sqrt(2) * erfcinv(rate)``, so a true
claim fails with probability ``rate`` (for a normal estimate). A negative control is the
same test against a plausible wrong value; it must *fail* for the check to mean anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy.special import erfcinv


def z_for(rate: float) -> float:
    """Two-sided z for a false-alarm probability ``rate`` (1e-9 gives 6.11).

    ``P(|Z| > z) = rate`` for a standard normal ``Z``; raises ValueError unless ``0 < rate < 1``.

    Examples
    --------
    >>> round(z_for(1e-9), 2), round(z_for(0.05), 2)
    (6.11, 1.96)
    """
    if not 0 < rate < 1:
        raise ValueError(f"rate: must lie in (0, 1), got {rate}")
    return math.sqrt(2.0) * float(erfcinv(rate))


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: value, standard error, sample count."""

    value: float
    stderr: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.stderr:.2g} (n={self.n:,})"

    @classmethod
    def of(cls, values) -> Estimate:
        """The mean of ``values`` (a 1-D array or CPU tensor of at least 2 numbers), its standard error (sample
        standard deviation, n - 1, over sqrt n) and n. ValueError naming ``values`` for fewer than 2.

        >>> str(Estimate.of([1.0, 2.0, 3.0]))
        '2 ± 0.58 (n=3)'
        """
        import numpy as np

        a = np.asarray(values, dtype=float).ravel()
        if a.size < 2:
            raise ValueError(f"values: a standard error needs at least 2 numbers, got {a.size}")
        return cls(float(a.mean()), float(a.std(ddof=1)) / math.sqrt(a.size), int(a.size))


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing an estimate with a claimed value."""

    claim: str
    claimed: float
    estimate: float
    stderr: float
    z: float  # |estimate - claimed| / stderr
    z_crit: float
    rate: float
    agrees: bool

    def to_dict(self) -> dict:
        """The fields as a dict (``claim``, ``claimed``, ``estimate``, ``stderr``, ``z``, ``z_crit``,
        ``rate``, ``agrees``) for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        word = "agrees" if self.agrees else "REJECTED"
        return f"{self.claim} = {self.claimed:.6g}: |z| = {self.z:.2f} vs {self.z_crit:.2f} -> {word}"


def compare(est: Estimate, claimed: float, claim: str, rate: float = 1e-9) -> Verdict:
    """Two-sided z-test of ``est`` against ``claimed`` at false-alarm ``rate``.

    Agrees when ``|est.value - claimed| <= z_for(rate) * est.stderr``; raises ValueError unless
    ``est.stderr`` is positive and finite.

    Examples
    --------
    >>> print(compare(Estimate(1.01, 0.01, 10_000), 1.0, "E[X]"))
    E[X] = 1: |z| = 1.00 vs 6.11 -> agrees
    """
    if est.stderr <= 0 or not math.isfinite(est.stderr):
        raise ValueError(f"stderr: must be positive and finite, got {est.stderr}")
    zc = z_for(rate)
    z = abs(est.value - claimed) / est.stderr
    return Verdict(claim, float(claimed), est.value, est.stderr, z, zc, rate, z <= zc)


def samples_for_power(rel_error: float, cv: float, rate: float = 1e-9, miss: float = 1e-6) -> int:
    """Samples needed so that a claim off by ``rel_error`` (relative) is rejected with
    probability at least ``1 - miss`` while a true claim fails with probability ``rate``.

    ``cv`` is the per-sample coefficient of variation of the estimated quantity
    (sd of one sample's contribution divided by the true value).

    Returns ``ceil(((z_for(rate) + z_for(2 * miss)) * cv / rel_error) ** 2)`` (the usual normal
    sample-size formula, one-sided in the miss). Raises ValueError unless ``rel_error > 0`` and
    ``0 < miss < 0.5``.

    Examples
    --------
    >>> samples_for_power(0.05, 1.0)  # detect a 5% error when one sample's sd equals the value
    47201
    """
    if rel_error <= 0:
        raise ValueError(f"rel_error: must be positive, got {rel_error}")
    if not 0 < miss < 0.5:
        raise ValueError(f"miss: must lie in (0, 0.5), got {miss}")
    z_a, z_b = z_for(rate), z_for(2 * miss)
    return math.ceil(((z_a + z_b) * cv / rel_error) ** 2)


@dataclass(frozen=True)
class OneSided:
    """A one-sided z-test: agrees when the estimate lies beyond ``bound`` in the direction ``op``
    by more than ``z_crit`` standard errors (false-alarm ``rate`` when it lies exactly at ``bound``)."""

    claim: str
    op: str
    bound: float
    estimate: float
    stderr: float
    z: float
    z_crit: float
    rate: float
    agrees: bool

    def to_dict(self) -> dict:
        """The fields as a dict (``claim``, ``op``, ``bound``, ``estimate``, ``stderr``, ``z``,
        ``z_crit``, ``rate``, ``agrees``) for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        word = "agrees" if self.agrees else "REJECTED"
        return (
            f"{self.claim}: {self.estimate:.5g} {self.op} {self.bound:g}, z = {self.z:.2f} vs {self.z_crit:.2f} "
            f"(one-sided) -> {word}"
        )


def one_sided(est: Estimate, op: str, bound: float, claim: str, rate: float = 1e-9) -> OneSided:
    """Test ``est op bound`` (op ``>`` or ``<``) one-sided at false-alarm ``rate``.

    Agrees when the estimate lies beyond ``bound`` in the direction ``op`` by more than
    ``z_for(2 * rate)`` standard errors. Raises ValueError for another ``op`` or a stderr that
    is not positive.

    Examples
    --------
    >>> one_sided(Estimate(0.5, 0.01, 100), ">", 0.0, "E[X] > 0").agrees
    True
    """
    if op not in (">", "<") or not est.stderr > 0:
        raise ValueError(f"one_sided: needs op '>' or '<' and a positive stderr, got {op!r}, {est.stderr}")
    z = (est.value - bound) / est.stderr * (1 if op == ">" else -1)
    zc = z_for(2 * rate)
    return OneSided(claim, op, float(bound), est.value, est.stderr, z, zc, rate, z > zc)

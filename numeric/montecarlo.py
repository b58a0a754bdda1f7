"""Chunked, streaming Monte Carlo: draw samples a chunk at a time on a device with an
explicit generator and keep only running moments (count, mean, M2, M3, M4 in float64),
so a billion samples never need a billion floats of memory.

Chunks are merged with the pairwise update of Pébay (2008), which is exact and stable.
The same seed, device and chunk size give the same number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from numeric.stats import Estimate


@dataclass
class Moments:
    """Running central moments of a stream of scalars (float64)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @staticmethod
    def of(x: torch.Tensor) -> Moments:
        """The moments of every entry of ``x`` (any shape, flattened; detached and taken in float64).

        ``n`` is ``x.numel()``, ``mean`` the mean and ``m2``, ``m3``, ``m4`` the central sums
        ``sum (x - mean)^k`` (not divided by n); an empty tensor gives ``Moments()``.

        Examples
        --------
        >>> Moments.of(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        Moments(n=4, mean=2.5, m2=5.0, m3=0.0, m4=10.25)
        """
        x = x.detach().reshape(-1).to(torch.float64)
        n = x.numel()
        if n == 0:
            return Moments()
        mu = x.mean()
        c = x - mu
        c2 = c * c
        return Moments(n, mu.item(), c2.sum().item(), (c2 * c).sum().item(), (c2 * c2).sum().item())

    def merge(self, o: Moments) -> Moments:
        """The moments of the union of two streams, exactly as if computed over both at once (up to
        rounding): the pairwise update of Pébay (2008, Sandia report SAND2008-6212) for M2, M3 and
        M4, which extends that of Chan, Golub and LeVeque (1979) for M2. Either side may be empty.
        Returns a new object; neither input changes.

        Examples
        --------
        >>> a, b = Moments.of(torch.tensor([1.0, 2.0])), Moments.of(torch.tensor([3.0, 4.0, 5.0]))
        >>> a.merge(b) == Moments.of(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
        True
        """
        if self.n == 0:
            return o
        if o.n == 0:
            return self
        na, nb = self.n, o.n
        n = na + nb
        d = o.mean - self.mean
        mean = self.mean + d * nb / n
        m2 = self.m2 + o.m2 + d * d * na * nb / n
        m3 = self.m3 + o.m3 + d**3 * na * nb * (na - nb) / n**2 + 3 * d * (na * o.m2 - nb * self.m2) / n
        m4 = (
            self.m4
            + o.m4
            + d**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
            + 6 * d * d * (na * na * o.m2 + nb * nb * self.m2) / n**2
            + 4 * d * (na * o.m3 - nb * self.m3) / n
        )
        return Moments(n, mean, m2, m3, m4)

    # -- estimates -------------------------------------------------------------------
    def mean_estimate(self) -> Estimate:
        """E[X] with standard error sqrt(Var/n).

        Var is the unbiased sample variance; raises ValueError with fewer than 2 samples.

        Examples
        --------
        >>> print(Moments.of(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).mean_estimate())
        3 ± 0.71 (n=5)
        """
        self._need(2)
        return Estimate(self.mean, math.sqrt(self.m2 / (self.n - 1) / self.n), self.n)

    def variance_estimate(self) -> Estimate:
        """Var[X] (unbiased) with the large-sample standard error sqrt((mu4 - sigma^4) / n).

        ``mu4`` and ``sigma^2`` are the plug-in (divided by n) central moments; raises ValueError
        with fewer than 4 samples.

        Examples
        --------
        >>> print(Moments.of(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).variance_estimate())
        2.5 ± 0.75 (n=5)
        """
        self._need(4)
        var = self.m2 / (self.n - 1)
        mu4 = self.m4 / self.n
        s2 = self.m2 / self.n
        return Estimate(var, math.sqrt(max(mu4 - s2 * s2, 0.0) / self.n), self.n)

    def _need(self, k: int) -> None:
        if self.n < k:
            raise ValueError(f"samples: need at least {k}, got {self.n}")


Sampler = Callable[[int, torch.Generator], torch.Tensor]


def stream(sampler: Sampler, samples: int, gen: torch.Generator, chunk: int = 1 << 16) -> Moments:
    """Draw ``samples`` scalars in chunks of at most ``chunk`` from ``sampler(count, gen)``
    and return their running moments. Memory is O(chunk), not O(samples).

    ``sampler(count, gen)`` must return ``count`` values (any shape) on ``gen``'s device; each chunk
    is reduced by :meth:`Moments.of` and merged. Deterministic for a given seed, device and chunk.
    Raises ValueError for a non-positive ``samples`` or ``chunk`` or a sampler that returns the
    wrong number of values.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> stream(lambda m, g: torch.randn(m, generator=g), 1000, gen, chunk=300).n
    1000
    """
    if samples <= 0:
        raise ValueError(f"samples: must be positive, got {samples}")
    if chunk <= 0:
        raise ValueError(f"chunk: must be positive, got {chunk}")
    acc = Moments()
    done = 0
    while done < samples:
        m = min(chunk, samples - done)
        x = sampler(m, gen)
        if x.numel() != m:
            raise ValueError(f"sampler: returned {x.numel()} values for a request of {m}")
        acc = acc.merge(Moments.of(x))
        done += m
    return acc

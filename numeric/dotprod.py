"""Samples of the dot product q·k of two independent random vectors with i.i.d. zero-mean,
unit-variance components (Gaussian, Rademacher or uniform), and their streaming moments."""

from __future__ import annotations

import math

import torch

from numeric import fused as _fused
from numeric.montecarlo import Moments, stream

DISTRIBUTIONS = ("gaussian", "rademacher", "uniform")


def components(shape: tuple[int, ...], gen: torch.Generator, dist: str = "gaussian") -> torch.Tensor:
    """i.i.d. zero-mean unit-variance float32 components on ``gen``'s device.

    A tensor of ``shape``: N(0, 1), +-1 with equal probability, or U(-sqrt 3, sqrt 3) (the
    exact moments of each are ``derive.moments.component_moment``). Raises ValueError for a
    ``dist`` not in :data:`DISTRIBUTIONS`.

    Examples
    --------
    >>> components((2, 3), torch.Generator().manual_seed(0), "rademacher").abs().sum().item()
    6.0
    """
    dev = gen.device
    if dist == "gaussian":
        return torch.randn(shape, generator=gen, device=dev)
    if dist == "rademacher":
        return torch.randint(0, 2, shape, generator=gen, device=dev).mul_(2).sub_(1).float()
    if dist == "uniform":  # U(-sqrt3, sqrt3) has variance 1
        return torch.rand(shape, generator=gen, device=dev).mul_(2 * math.sqrt(3)).sub_(math.sqrt(3))
    raise ValueError(f"dist: unknown {dist!r}; choose from {DISTRIBUTIONS}")


def dot_products(n: int, d_k: int, gen: torch.Generator, dist: str = "gaussian", scale: float = 1.0) -> torch.Tensor:
    """``n`` samples of ``scale * q·k`` with q, k in R^d_k (float32, shape (n,)).

    Holds two (n, d_k) tensors at once; raises ValueError for a non-positive ``d_k``.

    Examples
    --------
    >>> dot_products(5, 16, torch.Generator().manual_seed(0), "rademacher").shape
    torch.Size([5])
    """
    if d_k <= 0:
        raise ValueError(f"d_k: must be positive, got {d_k}")
    q = components((n, d_k), gen, dist)
    k = components((n, d_k), gen, dist)
    return (q * k).sum(-1).mul_(scale)


def dot_product_moments(
    samples: int,
    d_k: int,
    gen: torch.Generator,
    dist: str = "gaussian",
    scale: float = 1.0,
    chunk: int | None = None,
    *,
    fused: bool | None = None,
) -> Moments:
    """Streaming moments of ``samples`` draws of ``scale * q·k``; memory O(chunk * d_k).

    On CUDA, when Triton is available, this runs the fused kernel of ``numeric.fused``
    (samples never leave registers; ``chunk`` is then unused); ``fused=False`` forces the
    chunked torch path, ``fused=True`` demands the kernel (ValueError where it cannot run).
    If the kernel fails to build or run, a note is printed and the torch path is used."""
    if _fused.use_fused(gen.device, fused):
        try:
            return _fused.fused_dot_product_moments(samples, d_k, gen, dist, scale)
        except _fused.FusedError as e:
            if fused:
                raise
            _fused.give_up(e)
    if chunk is None:
        chunk = max(1, (1 << 22) // d_k) if d_k > 0 else 1
    return stream(lambda m, g: dot_products(m, d_k, g, dist, scale), samples, gen, chunk)

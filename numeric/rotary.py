"""Measurement helpers for the rotation exercises (13.15, 13.16, 13.26, 13.27): the float64 rounding
bounds of a rotated pair, stated before measuring, the dims RoPE pairs, random unit vectors, and the
sinusoidal rows turned by the offset map M_k in float64.

A sinusoid or a rotation turns a pair of values by an angle ``x * w``. In float64 the angle is rounded
once (relative error eps/2, which moves a unit pair by at most ``x * w * eps / 2``), and a frequency
``w = b^(-2i/d)`` computed by ``pow`` carries about ``(ln b / 2 + 1) eps`` relative error more; the
cos, sin and the few operations of the rotation add a handful of ulps. The bounds here count exactly
that, in units of ``EPS``.
"""

from __future__ import annotations

import math

import torch

EPS = torch.finfo(torch.float64).eps  # 2**-52


def angle_error(angle: float, ulps: float) -> float:
    """Bound on how far a unit pair turned by a float64 angle of size ``angle`` (radians) lands from
    the exact one: the angle rounded once (``angle * eps / 2``) plus ``ulps`` eps for cos, sin and the
    arithmetic. An absolute error, for vectors of norm at most 1.

    >>> angle_error(0.0, 6) == 6 * EPS and angle_error(4.0, 0) == 2 * EPS
    True
    """
    return EPS * (angle / 2 + ulps)


def pow_angle_ulps(x: float, base: float) -> float:
    """Ulps of error, per unit of ``eps``, in an angle ``x * w_i`` whose frequency ``w_i = b^(-2i/d)``
    came from ``pow`` (``ln b / 2 + 1`` relative) and was then multiplied once more (``1/2``), for
    ``|x| <= x`` and ``w_i <= 1``.

    >>> pow_angle_ulps(0, 10000.0), round(pow_angle_ulps(2, math.e), 3)
    (0.0, 4.0)
    """
    return x * (math.log(base) / 2 + 1.5)


def pair_index(dim: int, convention: str, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors ``(a, b)`` of the dims RoPE rotates together: pair ``i`` is dims ``(a[i], b[i])``,
    ``(2i, 2i+1)`` for ``"interleaved"`` and ``(i, i + dim/2)`` for ``"half"``; each of shape (dim/2,).

    >>> [t.tolist() for t in pair_index(6, "interleaved")], [t.tolist() for t in pair_index(6, "half")]
    ([[0, 2, 4], [1, 3, 5]], [[0, 1, 2], [3, 4, 5]])
    """
    i = torch.arange(dim // 2, device=device)
    return (2 * i, 2 * i + 1) if convention == "interleaved" else (i, i + dim // 2)


def unit_rows(shape: tuple[int, ...], gen: torch.Generator, device) -> torch.Tensor:
    """Seeded N(0, I) float64 draws of ``shape`` on ``device``, each row (last dim) scaled to unit length,
    so that the rounding bounds above hold without a norm factor.

    >>> x = unit_rows((2, 3, 4), torch.Generator().manual_seed(0), "cpu")
    >>> x.shape, bool(torch.allclose(x.norm(dim=-1), torch.ones(2, 3, dtype=torch.float64)))
    (torch.Size([2, 3, 4]), True)
    """
    x = torch.randn(*shape, generator=gen, device=device, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def pe_at(positions: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Sinusoidal PE rows ``(sin(p w_0), cos(p w_0), sin(p w_1), ...)`` at positions (n, 1), negative ones
    too, for float64 frequencies ``w`` (d/2,); shape (n, d). The layout of ``models.positional``.

    >>> pe_at(torch.tensor([[0.0]], dtype=torch.float64), torch.ones(2, dtype=torch.float64)).tolist()
    [[0.0, 1.0, 0.0, 1.0]]
    """
    ang = positions * w  # (n, d/2)
    return torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(-2)  # (n, d)


def rotate_pairs(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``diag(M(angle_i)) x`` in the (sin, cos) layout, ``M(a) = [[cos a, sin a], [-sin a, cos a]]``: the
    PE row at ``p`` turned into the row at ``p + k`` when ``angle = k w``. x (n, d); angle (n, d/2) or (1, d/2).

    >>> w = torch.tensor([1.0, 0.01], dtype=torch.float64)
    >>> row = pe_at(torch.tensor([[3.0]], dtype=torch.float64), w)
    >>> bool(torch.allclose(rotate_pairs(row, 2 * w[None]), pe_at(torch.tensor([[5.0]], dtype=torch.float64), w)))
    True
    """
    c, s = angle.cos(), angle.sin()  # (n or 1, d/2)
    xs, xc = x[:, 0::2], x[:, 1::2]  # (n, d/2)
    return torch.stack((xs * c + xc * s, xc * c - xs * s), dim=-1).flatten(-2)  # (n, d)


def offset_blocks(k, w: torch.Tensor) -> torch.Tensor:
    """The 2x2 blocks of the PE offset map ``M_k``, ``[[cos kw, sin kw], [-sin kw, cos kw]]`` per frequency
    of ``w`` (d/2,); shape (d/2, 2, 2). ``k`` a number or a tensor broadcasting with ``w``.

    >>> offset_blocks(0, torch.ones(3, dtype=torch.float64)).shape
    torch.Size([3, 2, 2])
    >>> offset_blocks(1, torch.tensor([torch.pi / 2])).round().abs().tolist()  # M = [[0, 1], [-1, 0]]
    [[[0.0, 1.0], [1.0, 0.0]]]
    """
    c, s = (k * w).cos(), (k * w).sin()
    return torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2)

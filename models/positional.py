"""Positional encodings: the sinusoidal table (Vaswani et al. 2017) and rotary embeddings (RoPE, Su et al.).

Contract (models/gpt.py imports exactly these names):

- ``sinusoidal_table(n_positions, d_model, base, dtype, device)`` -> (n_positions, d_model) with
  ``PE[pos, 2i] = sin(pos * w_i)``, ``PE[pos, 2i+1] = cos(pos * w_i)``, ``w_i = base**(-2i/d_model)``.
- ``rope_frequencies(dim, base, device)`` -> float64 (dim//2,), ``theta_i = base**(-2i/dim)``. Always
  float64, so that angles ``pos * theta_i`` stay accurate at large positions; callers cast after cos/sin.
- ``apply_rope(x, positions, base, convention)`` rotates the last dim of ``x`` (..., T, dim) by position:
  pair i is turned by the angle ``positions * theta_i``. ``"interleaved"`` pairs dims (2i, 2i+1) as in
  RoFormer; ``"half"`` pairs dims (i, i + dim/2) as Hugging Face's ``rotate_half``. The two are the same
  map up to a permutation of dims; weights trained with one do not work with the other.

Angles, cos and sin are computed in float64 and the rotation in float32 or wider; results come back in
the input's dtype. Bad sizes raise ValueError naming the parameter.
"""

from __future__ import annotations

import math

import torch

CONVENTIONS = ("interleaved", "half")


def _check_size(name: str, value, even: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    if even and value % 2:
        raise ValueError(f"{name}: must be even, got {value}")


def _check_base(base) -> None:
    if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 0):
        raise ValueError(f"base: must be a positive finite number, got {base!r}")


def rope_frequencies(dim: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """theta_i = base**(-2i/dim) for i < dim/2, as float64 on ``device``; shape (dim//2,). ValueError naming
    ``dim`` (not a positive even integer) or ``base``."""
    _check_size("dim", dim, even=True)
    _check_base(base)
    i = torch.arange(0, dim, 2, dtype=torch.float64, device=device)  # (dim/2,) holds 2i
    return torch.tensor(float(base), dtype=torch.float64, device=device).pow(-i / dim)


def sinusoidal_table(
    n_positions: int, d_model: int, base: float = 10000.0, dtype=torch.float32, device=None
) -> torch.Tensor:
    """The (n_positions, d_model) table with sin on even and cos on odd dims (angles in float64), as in
    Vaswani et al. 2017, §3.5; ValueError naming ``n_positions``, ``d_model`` or ``base`` when bad."""
    _check_size("n_positions", n_positions)
    _check_size("d_model", d_model, even=True)
    w = rope_frequencies(d_model, base, device)  # (d/2,) the same frequencies RoPE uses
    pos = torch.arange(n_positions, dtype=torch.float64, device=device)  # (T,)
    ang = pos[:, None] * w[None, :]  # (T, d/2)
    return torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(-2).to(dtype)  # (T, d): sin, cos, sin, ...


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, convention: str = "interleaved"
) -> torch.Tensor:
    """Rotate pairs of the last dim of x (..., T, dim) by ``positions`` (T,) or any shape that
    broadcasts against x.shape[:-1]; returns a tensor of x's shape and dtype (RoPE: RoFormer, Su et al.
    2021). ValueError naming ``convention``, ``x``, ``dim`` or ``base`` when bad."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: must be one of {CONVENTIONS}, got {convention!r}")
    if not x.is_floating_point():
        raise ValueError(f"x: must be a floating-point tensor, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError("x: must have a last dim to rotate, got a 0-d tensor")
    dim = x.shape[-1]
    theta = rope_frequencies(dim, base, x.device)  # (dim/2,) float64
    pos = torch.as_tensor(positions, device=x.device).to(torch.float64)  # (T,) or broadcastable to x.shape[:-1]
    ang = pos[..., None] * theta  # (..., T, dim/2) float64
    work = torch.promote_types(x.dtype, torch.float32)
    cos, sin = ang.cos().to(work), ang.sin().to(work)  # (..., T, dim/2)
    xw = x.to(work)  # (..., T, dim)
    if convention == "interleaved":
        x0, x1 = xw[..., 0::2], xw[..., 1::2]  # (..., T, dim/2) each: pairs (2i, 2i+1)
        out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)  # (..., T, dim)
    else:
        x0, x1 = xw[..., : dim // 2], xw[..., dim // 2 :]  # (..., T, dim/2) each: pairs (i, i + dim/2)
        out = torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # (..., T, dim)
    return out.to(x.dtype)  # (..., T, dim)

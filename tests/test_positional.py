"""models.positional: the sinusoidal table and RoPE, against their definitions and each other."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from derive.rotation import rope_matrix
from models.positional import apply_rope, rope_frequencies, sinusoidal_table

EPS = torch.finfo(torch.float64).eps
f64 = torch.float64


def half_to_interleaved(dim: int) -> torch.Tensor:
    """perm with y = x[..., perm] putting x's "half" pair (i, i + dim/2) at (2i, 2i+1)."""
    return torch.arange(dim).view(2, dim // 2).T.reshape(-1)


def test_table_shape_dtype_and_exercise_13_15():
    pe = sinusoidal_table(2, 4, dtype=f64)
    assert pe.shape == (2, 4) and pe.dtype == f64
    expect = [[0.0, 1.0, 0.0, 1.0], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]]
    assert torch.allclose(pe, torch.tensor(expect, dtype=f64), rtol=0, atol=4 * EPS)
    assert sinusoidal_table(3, 8).dtype == torch.float32


def test_float32_table_is_the_float64_table_rounded():
    assert torch.equal(sinusoidal_table(100, 64), sinusoidal_table(100, 64, dtype=f64).float())


def test_float64_table_is_accurate_at_large_positions():
    pe = sinusoidal_table(5001, 16, dtype=f64)
    w = [10000.0 ** (-2 * i / 16) for i in range(8)]
    for p in (0, 1, 1234, 5000):
        ref = [f(p * wi) for wi in w for f in (math.sin, math.cos)]
        assert torch.allclose(pe[p], torch.tensor(ref, dtype=f64), rtol=0, atol=EPS * (p / 2 + 4))


def test_rope_frequencies():
    th = rope_frequencies(8, base=100.0)
    assert th.dtype == f64 and th.shape == (4,)
    assert torch.allclose(th, torch.tensor([100.0 ** (-i / 8) for i in (0, 2, 4, 6)], dtype=f64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_apply_rope_keeps_shape_and_dtype(dtype):
    x = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(0)).to(dtype)  # (B, H, T, dim)
    for c in ("interleaved", "half"):
        y = apply_rope(x, torch.arange(5), convention=c)
        assert y.shape == x.shape and y.dtype == dtype


def test_position_zero_is_the_identity():
    x = torch.randn(4, 6, dtype=f64, generator=torch.Generator().manual_seed(1))
    for c in ("interleaved", "half"):
        assert torch.equal(apply_rope(x, torch.zeros(4), convention=c), x)


def test_exercise_13_16_first_pair():
    m = 3.0
    y = apply_rope(torch.eye(2, dtype=f64)[:, None, :], torch.tensor([m]))[:, 0, :]  # rows: R e_0, R e_1
    R = torch.tensor([[math.cos(m), -math.sin(m)], [math.sin(m), math.cos(m)]], dtype=f64)
    assert torch.allclose(y.T, R, rtol=0, atol=4 * EPS)


@pytest.mark.parametrize("convention", ["interleaved", "half"])
def test_matches_the_sympy_matrix(convention):
    dim, p = 6, 7
    th = rope_frequencies(dim).tolist()
    R = torch.tensor(sp.N(rope_matrix(p, th, convention)).tolist(), dtype=f64)
    cols = apply_rope(torch.eye(dim, dtype=f64), torch.full((dim,), float(p)), convention=convention)
    assert torch.allclose(cols.T, R, rtol=0, atol=1e-14)


@given(dim=st.integers(1, 64).map(lambda h: 2 * h), p=st.integers(-(10**4), 10**4), seed=st.integers(0, 2**16))
def test_rope_preserves_norms_and_conventions_agree_after_permuting(dim, p, seed):
    x = torch.randn(3, dim, dtype=f64, generator=torch.Generator().manual_seed(seed))
    pos = torch.full((3,), p)
    tol = EPS * (8 + dim / 2) * x.norm(dim=-1).max().item()  # cos, sin 2 ulp; 3 roundings; the norms
    for c in ("interleaved", "half"):
        y = apply_rope(x, pos, convention=c)
        assert (y.norm(dim=-1) - x.norm(dim=-1)).abs().max() <= tol
    perm = half_to_interleaved(dim)
    assert torch.allclose(
        apply_rope(x[..., perm], pos),
        apply_rope(x, pos, convention="half")[..., perm],
        rtol=0,
        atol=4 * EPS * x.abs().max().item(),
    )


def test_positions_broadcast_per_batch_and_gradients_flow():
    x = torch.randn(2, 4, 8, dtype=f64, requires_grad=True)
    pos = torch.tensor([[0, 1, 2, 3], [10, 11, 12, 13]])  # (B, T)
    y = apply_rope(x, pos)
    assert torch.allclose(y[1], apply_rope(x[1], pos[1]))
    y.square().sum().backward()
    assert torch.allclose(x.grad, 2 * x.detach(), atol=1e-12)  # rotations keep |x|^2, so d|y|^2/dx = 2x


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: sinusoidal_table(10, 7), "d_model: must be even, got 7"),
        (lambda: sinusoidal_table(10, 0), "d_model: must be positive, got 0"),
        (lambda: sinusoidal_table(10, -4), "d_model: must be positive, got -4"),
        (lambda: sinusoidal_table(0, 8), "n_positions: must be positive, got 0"),
        (lambda: sinusoidal_table(4, 8, base=-1.0), "base:"),
        (lambda: rope_frequencies(7), "dim: must be even, got 7"),
        (lambda: apply_rope(torch.zeros(3, 7), torch.arange(3)), "dim: must be even, got 7"),
        (lambda: apply_rope(torch.zeros(3, 8), torch.arange(3), convention="neox"), "convention:"),
        (lambda: apply_rope(torch.zeros(3, 8, dtype=torch.long), torch.arange(3)), "x:"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match="^" + name.replace("(", r"\(")):
        call()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.randn(2, 16, 64, dtype=f64)
    pos = torch.arange(16) + 4000
    for c in ("interleaved", "half"):
        assert torch.allclose(
            apply_rope(x.cuda(), pos.cuda(), convention=c).cpu(), apply_rope(x, pos, convention=c), rtol=0, atol=1e-11
        )
    assert torch.allclose(
        sinusoidal_table(4097, 512, dtype=f64, device="cuda").cpu(),
        sinusoidal_table(4097, 512, dtype=f64),
        rtol=0,
        atol=1e-11,
    )

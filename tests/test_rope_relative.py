"""Exercise 13.27: the RoPE score depends only on n - m: proved, checked in both layouts, its own rules.

The contract test covers what every exercise shares (default check, --json, --help, figure, declared
bounds)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import apply_rope
from proofs import rope_relative as mod
from proofs.kit import options

f64 = torch.float64


@pytest.fixture(scope="module")
def small_check():
    return mod.check(device="cpu", samples=16, seed=2, dim=8, positions=16)


def test_claims_controls_and_the_figure_data(small_check):
    res = small_check
    assert res.passed, res.text()
    assert len(res.claims) == 4 and len(res.controls) == 3  # shift and formula per layout
    assert {row["convention"] for row in res.table} == {"interleaved", "half"}
    # the figure draws the first draw's score grid: constant along each diagonal n - m
    s = res.series["half"]
    assert s.shape == (16, 16) and torch.allclose(s[1:, 1:], s[:-1, :-1], rtol=0, atol=1e-12)
    assert mod.derivation().status == PROVED


@pytest.mark.parametrize("seed, dim, positions", [(1, 2, 8), (3, 128, 32)])
def test_check_passes_for_other_sizes_and_seeds(seed, dim, positions):
    res = mod.check(device="cpu", samples=16, seed=seed, dim=dim, positions=positions)
    assert res.passed, res.text()


@given(
    half=st.integers(1, 64),
    m=st.integers(-5000, 5000),
    n=st.integers(-5000, 5000),
    t=st.integers(-5000, 5000),
    seed=st.integers(0, 2**16),
    convention=st.sampled_from(["interleaved", "half"]),
)
def test_relative_identity_float64(half, m, n, t, seed, convention):
    """<R_m q, R_n k> = <R_(m+t) q, R_(n+t) k> = q^T R_(n-m) k at random positions, dims, layouts."""
    dim = 2 * half
    q, k = torch.randn(2, dim, dtype=f64, generator=torch.Generator().manual_seed(seed))
    q, k = q / q.norm(), k / k.norm()

    def s(a, b):
        return apply_rope(q, torch.tensor(a), convention=convention) @ apply_rope(
            k, torch.tensor(b), convention=convention
        )

    big = max(abs(m), abs(n), abs(m + t), abs(n + t))
    tol_shift = 4 * mod.rotation_error(big) + dim * mod.EPS
    assert abs(s(m, n) - s(m + t, n + t)) <= tol_shift
    formula = q @ mod.rope_dense(torch.tensor([n - m]), dim, convention)[0] @ k
    assert abs(s(m, n) - formula) <= 2 * mod.rotation_error(big) + mod.rotation_error(n - m) + 1.5 * dim * mod.EPS


def test_memory_rules_name_the_option_that_sets_them():
    """Beyond the declared bounds: an even dim, and three memory bounds (dense rotations, R_(n-m) k, scores)."""
    cases = [
        (dict(dim=7), "^dim: must be even"),
        (dict(dim=1024), r"^dim: \(2 positions - 1\) x dim\^2"),
        (dict(positions=512), r"^samples: samples x positions\^2"),
        (dict(samples=4096, dim=128), r"^samples: samples x \(2 positions - 1\) x dim"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            options.settings(mod, **kw)
    assert options.settings(mod, dim=1024, positions=32, samples=1).dim == 1024

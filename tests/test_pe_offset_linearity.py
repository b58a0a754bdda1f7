"""Exercise 13.26: PE(pos + k) = M_k PE(pos): derivation proved, the check's bounds, its own rules.

The contract test covers what every exercise shares (default check, --json, --help, figure, declared
bounds)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import rope_frequencies, sinusoidal_table
from numeric.rotary import EPS, offset_blocks, rotate_pairs
from proofs import pe_offset_linearity as mod
from proofs.kit.options import settings

f64 = torch.float64


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) == 12 and d.status == PROVED


@pytest.fixture(scope="module")
def default_check():
    return mod.check(device="cpu", seed=0)


@pytest.mark.slow
def test_default_check_uses_its_bound_and_draws_the_error_map(default_check):
    res = default_check
    assert len(res.claims) == 4 and len(res.controls) == 6
    edge = {row["k"]: row for row in res.table}
    assert {0, 1, -1, 4096, -4096, "random"} <= set(edge) and edge[0]["max |err|"] == 0.0
    # the bound is a stated rounding bound, not slack: the worst error uses a good part of it
    assert 0.05 * res.claims[0].tol < res.claims[0].measured <= res.claims[0].tol
    grid = res.series["errors"]  # (pos, k) on 129 x 129 points; NaN where pos + k < 0
    assert grid.shape == (129, 129) and grid[0, 0].isnan() and not grid[-1].isnan().any()
    assert float(grid.nan_to_num(0).max()) <= res.claims[0].tol


@pytest.mark.parametrize("seed, d_model, max_pos", [(1, 64, 300), (2, 128, 1024), (3, 2, 16)])
def test_check_passes_for_other_sizes_and_seeds(seed, d_model, max_pos):
    res = mod.check(device="cpu", samples=1000, seed=seed, d_model=d_model, max_pos=max_pos)
    assert res.passed, res.text()


@given(pos=st.integers(0, 4000), k=st.integers(-4000, 4000), half=st.integers(1, 64))
def test_offset_identity_float64(pos, k, half):
    """M_k PE(pos) = PE(pos + k) at random (pos, k, d_model) within the module's stated bound."""
    d_model, k = 2 * half, max(k, -pos)
    table = sinusoidal_table(max(pos, pos + k) + 1, d_model, dtype=f64)
    w = rope_frequencies(d_model)
    pred = rotate_pairs(table[[pos]], torch.tensor([[float(k)]], dtype=f64) * w)
    assert (pred - table[[pos + k]]).abs().max() <= mod.offset_tolerance(pos, abs(k))
    blocks = offset_blocks(float(k), w)  # orthogonal, and M_k M_(-k) = I
    eye = torch.eye(2, dtype=f64).expand_as(blocks)
    assert torch.allclose(blocks.transpose(1, 2) @ blocks, eye, rtol=0, atol=6 * EPS)
    assert torch.allclose(blocks @ offset_blocks(-float(k), w), eye, rtol=0, atol=6 * EPS)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"d_model": 7}, "^d_model: must be even"),
        ({"d_model": 8192, "max_pos": 8192}, "^max_pos: max_pos x d_model must be at most"),
        ({"d_model": 4096, "samples": 2_000_000}, r"^samples: d_model x \(8 \(max_pos \+ 1\) \+ samples\)"),
    ],
)
def test_size_rules_beyond_the_declared_bounds(kw, message):
    with pytest.raises(ValueError, match=message):
        settings(mod, **kw)

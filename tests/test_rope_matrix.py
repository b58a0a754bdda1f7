"""Exercise 13.16: R(m) on (q_0, q_1) with omega_0 = 1: the answer, cross-checks, controls, its own rules.

Every answer is compared with math.cos / math.sin and the rotation written out here, not with the
module's own reference. The contract test covers what every exercise shares (default check, --json,
--help, figure, declared bounds)."""

import math

import pytest
import sympy as sp
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import apply_rope
from proofs import rope_matrix as mod
from proofs.kit.options import settings as checked

f64 = torch.float64


def test_the_symbolic_answer():
    m = sp.Symbol("m", real=True)
    d = mod.derivation()
    block = next(s for s in d.steps if "block on $(q_0, q_1)$" in s.reason)
    want = sp.Matrix([[sp.cos(m), -sp.sin(m)], [sp.sin(m), sp.cos(m)]])
    assert (block.rhs - want).applyfunc(sp.simplify) == sp.zeros(2, 2)
    assert d.status == PROVED and len(d.steps) >= 8


def test_answer_at_the_default_positions():
    res = mod.check(device="cpu")
    assert [r["m"] for r in res.table] == ["0", "1", "2", "3"]
    for r in res.table:
        x = float(sp.Rational(r["m"]))
        assert r["cos m"] == pytest.approx(math.cos(x), abs=1e-16)
        assert r["sin m"] == pytest.approx(math.sin(x), abs=1e-16)
    assert res.table[1]["exact cos m"] == "cos(1)" and res.table[1]["exact sin m"] == "sin(1)"
    assert len(res.claims) == 2 and len(res.controls) == 4  # per layout: the transpose, the other layout


def test_fractional_positions():
    rows = mod.check(device="cpu", m="1/2,3").table
    assert [r["m"] for r in rows] == ["1/2", "3"]
    assert rows[0]["cos m"] == pytest.approx(math.cos(0.5), abs=1e-16)
    assert rows[1]["sin m"] == pytest.approx(math.sin(3), abs=1e-16)


@given(
    m=st.floats(-1e4, 1e4, allow_nan=False),
    q0=st.floats(-1, 1),
    q1=st.floats(-1, 1),
    half=st.integers(1, 16),
    convention=st.sampled_from(["interleaved", "half"]),
)
def test_first_pair_turns_by_m(m, q0, q1, half, convention):
    """The project's RoPE turns (q_0, q_1) [interleaved] or (q_0, q_(d/2)) [half] by R(m), omega_0 = 1."""
    dim = 2 * half
    x = torch.zeros(dim, dtype=f64)
    j = 1 if convention == "interleaved" else half
    x[0], x[j] = q0, q1
    out = apply_rope(x, torch.tensor(m, dtype=f64), convention=convention)
    c, s = math.cos(m), math.sin(m)
    tol = 1e-15 * (8 + 4 * abs(m))
    assert abs(out[0] - (q0 * c - q1 * s)) <= tol
    assert abs(out[j] - (q0 * s + q1 * c)) <= tol


@settings(max_examples=25)
@given(
    ms=st.lists(
        st.integers(-(10**5), 10**5) | st.fractions(max_denominator=16).filter(lambda f: abs(f) < 50),
        min_size=1,
        max_size=5,
    ),
    half=st.integers(1, 32),
    base=st.sampled_from([10000.0, 500.0, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_check_passes_at_any_values(ms, half, base, seed):
    m = ",".join(str(x) for x in ms)
    res = mod.check(device="cpu", samples=4, seed=seed, m=m, dim=2 * half, base=base)
    assert res.passed, res.text()
    for r, x in zip(res.table, ms):
        assert r["cos m"] == pytest.approx(math.cos(float(x)), abs=1e-15 * (1 + abs(float(x))))


def test_reference_matches_a_dense_rotation_written_out():
    """The module's pair formula against q -> R q with R built here entry by entry (d = 4, half layout)."""
    q = torch.randn(3, 4, dtype=f64, generator=torch.Generator().manual_seed(1))
    cos, sin = mod.exact_cos_sin([sp.Integer(2)], 4, 10000.0)
    c0, s0, c1, s1 = math.cos(2), math.sin(2), math.cos(0.02), math.sin(0.02)
    R = torch.tensor([[c0, 0, -s0, 0], [0, c1, 0, -s1], [s0, 0, c0, 0], [0, s1, 0, c1]], dtype=f64)
    assert torch.allclose(mod.reference(q, cos, sin, "half")[:, 0], q @ R.T, rtol=0, atol=1e-15)


def test_check_can_fail_when_rope_turns_the_other_way(monkeypatch):
    """The cross-check is not vacuous: a RoPE that applies R(-m) makes both claims disagree."""

    def backwards(x, positions, base=10000.0, convention="interleaved"):
        return apply_rope(x, -positions, base, convention)

    monkeypatch.setattr(mod, "apply_rope", backwards)
    res = mod.check(device="cpu")
    assert not res.passed and not any(c.agrees for c in res.claims)


def test_degenerate_values_skip_their_controls_with_a_note():
    res = mod.check(device="cpu", m="0", dim=2)
    assert res.passed and not res.controls
    assert sum("skipped" in n for n in res.notes) == 3


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"m": "pi"}, "^m: expected comma-separated numbers"),
        ({"m": "1/0"}, "^m: expected comma-separated numbers"),
        ({"m": ""}, "^m: expected comma-separated numbers"),
        ({"m": "1e9"}, r"^m: each must lie in \[-1,000,000, 1,000,000\]"),
        ({"m": "1e99999999"}, "^m: exponents must be at most 40"),
        ({"m": ",".join(["1"] * 33)}, "^m: at most 32 values"),
        ({"dim": 3}, "^dim: must be even"),
        ({"base": 1.0}, "^base: must be above 1, got 1$"),
        ({"samples": 10**6, "dim": 8}, "^samples: samples x len"),
    ],
)
def test_the_exercise_rules_name_the_option(kw, message):
    with pytest.raises(ValueError, match=message):
        checked(mod, **kw)


def test_an_open_lower_bound_on_the_base_reads_as_before(capsys):
    """--base is declared from 1, and 1 itself is refused by validate: the message names the flag."""
    assert cli_exit(mod, ["--base", "1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --base: must be above 1, got 1"

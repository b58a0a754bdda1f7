"""Exercise 13.15: PE values for d_model = 4: the answer, cross-checks, controls, its own rules.

Every answer is compared with math.sin / math.cos of pos / base**(2i/d) computed here, not with the
module's sympy table. The contract test covers what every exercise shares (default check, --json,
--help, figure, declared bounds)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import sinusoidal_table
from proofs import sinusoidal_values as mod
from proofs.kit.options import settings as checked


def pe_math(pos: int, dim: int, d_model: int, base: float = 10000.0) -> float:
    """PE(pos, dim) by the textbook formula in plain floats."""
    angle = pos / base ** (2 * (dim // 2) / d_model)
    return math.sin(angle) if dim % 2 == 0 else math.cos(angle)


def values(res) -> dict:
    return {(r["pos"], r["dim"]): r["value"] for r in res.table}


def test_the_four_asked_values_and_the_rows():
    res = mod.check(device="cpu")
    v = values(res)
    assert set(v) == {(p, c) for p in (0, 1) for c in range(4)}
    # the four asked values, dim reading: PE(0,0), PE(0,1), PE(1,0), PE(1,1)
    assert [v[0, 0], v[0, 1], v[1, 0], v[1, 1]] == pytest.approx([0.0, 1.0, math.sin(1), math.cos(1)], abs=1e-16)
    assert [v[1, 2], v[1, 3]] == pytest.approx([math.sin(0.01), math.cos(0.01)], abs=1e-16)
    assert [round(v[1, 0], 4), round(v[1, 1], 4)] == [0.8415, 0.5403]
    exact = {(r["pos"], r["dim"]): r["exact"] for r in res.table}
    assert exact[1, 0] == "sin(1)" and exact[1, 3] == "cos(1/100)" and exact[0, 1] == "1"
    assert {r["pair i"] for r in res.table if r["dim"] in (2, 3)} == {1}
    assert len(res.claims) == 2 and len(res.controls) == 3  # float64 and float32; three wrong layouts
    assert mod.derivation().status == PROVED


@settings(max_examples=30)
@given(
    half=st.integers(1, 32),
    positions=st.lists(st.integers(0, 10000), min_size=1, max_size=8),
    base=st.sampled_from([10000.0, 500.0, 2.5, 1e6]),
)
@pytest.mark.slow
def test_any_values_match_math_and_pass(half, positions, base):
    d_model = 2 * half
    res = mod.check(device="cpu", d_model=d_model, positions=",".join(map(str, positions)), base=base)
    assert res.passed, res.text()
    tol = 1e-15 * (4 + max(positions) * 30)  # both angles' rounding grows with pos (and ln base)
    for (p, c), val in values(res).items():
        assert abs(val - pe_math(p, c, d_model, base)) <= tol


def test_other_options_and_the_printed_answer():
    res = mod.check(device="cpu", d_model=6, positions="2,7", base=100)
    for (p, c), val in values(res).items():
        assert val == pytest.approx(pe_math(p, c, 6, 100.0), abs=1e-14)
    lines = mod.answer(d_model=6, positions="2", base=100)  # what --no-check prints
    assert len(lines) == 1 + 6 and lines[1].split()[3:] == ["sin(2)", "0.909297"]
    exact, value = lines[3].split()[3:]
    assert exact == "sin(10**(1/3)/5)" and float(value) == pytest.approx(pe_math(2, 2, 6, 100), abs=1e-6)


def test_check_can_fail_when_the_table_is_wrong(monkeypatch):
    """The cross-check is not vacuous: a table with sin and cos swapped makes the claims disagree."""

    def swapped(n, d, base=10000.0, dtype=torch.float32, device=None):
        t = sinusoidal_table(n, d, base, dtype, device)
        return t.reshape(n, d // 2, 2).flip(-1).reshape(n, d)

    monkeypatch.setattr(mod, "sinusoidal_table", swapped)
    res = mod.check(device="cpu")
    assert not res.passed and not any(c.agrees for c in res.claims)


def test_skipped_controls_are_noted():
    res = mod.check(device="cpu", d_model=2, positions="0")
    assert res.passed and len(res.controls) == 1
    assert any("skipped" in n for n in res.notes)


def test_the_exercise_rules_are_enforced_on_every_path():
    """Beyond the declared bounds: an even width, a base above 1, positions that parse and fit."""
    refused = {
        "^d_model: must be even": {"d_model": 5},
        "^base: must be above 1, got 1$": {"base": 1.0},
        "^positions: expected comma-separated integers": {"positions": "a,b"},
        r"^positions: each must lie in \[0, 10000\]": {"positions": "3,-1"},
        "^positions: d_model x count must be at most 1024": {"d_model": 512, "positions": "0,1,2"},
    }
    for message, kw in refused.items():
        with pytest.raises(ValueError, match=message):
            checked(mod, **kw)
    assert checked(mod, d_model=512, positions="0,1", base=1.5).base == 1.5

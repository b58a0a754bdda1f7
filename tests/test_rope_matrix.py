"""Exercise 13.16: R(m) on (q_0, q_1) with omega_0 = 1: derivation, answer, cross-check, controls, CLI.

Every answer is compared with math.cos / math.sin and the rotation written out here, not with the
module's own reference."""

import json
import math
import subprocess
import sys

import pytest
import sympy as sp
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import apply_rope
from proofs import rope_matrix as mod

f64 = torch.float64


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) >= 8
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)


def test_the_symbolic_answer():
    m = sp.Symbol("m", real=True)
    block = next(s for s in mod.derivation().steps if "block on (q_0, q_1)" in s.reason)
    want = sp.Matrix([[sp.cos(m), -sp.sin(m)], [sp.sin(m), sp.cos(m)]])
    assert (block.rhs - want).applyfunc(sp.simplify) == sp.zeros(2, 2)


def test_answer_at_the_default_positions():
    res = mod.check(device="cpu")
    assert [r["m"] for r in res.table] == ["0", "1", "2", "3"]
    for r in res.table:
        x = float(sp.Rational(r["m"]))
        assert r["cos m"] == pytest.approx(math.cos(x), abs=1e-16)
        assert r["sin m"] == pytest.approx(math.sin(x), abs=1e-16)
    assert res.table[1]["exact cos m"] == "cos(1)" and res.table[1]["exact sin m"] == "sin(1)"


def test_default_check_passes_and_controls_are_rejected():
    res = mod.check(device="cpu")
    assert res.passed, res.text()
    assert len(res.claims) == 2 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 4 and not any(c.agrees for c in res.controls)


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


def test_json_cli_reports_the_answer(capsys):
    assert mod.main(["--json", "--m", "1/2,3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.16" and out["verdict"] == "PASS" and out["derivation"]["status"] == PROVED
    rows = out["check"]["table"]
    assert [r["m"] for r in rows] == ["1/2", "3"]
    assert rows[0]["cos m"] == pytest.approx(math.cos(0.5), abs=1e-16)
    assert rows[1]["sin m"] == pytest.approx(math.sin(3), abs=1e-16)


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--dim", "3"], "dim"),
        (["--dim", "-2"], "dim"),
        (["--m", "pi"], "m"),
        (["--m", "1/0"], "m"),
        (["--m", "1e9"], "m"),
        (["--base", "0.5"], "base"),
        (["--dim", "x"], "--dim"),
        (["--dim", str(10**12)], "--dim: must be at most 256"),
        (["--base", "1"], "--base: must be above 1"),
        (["--base", "1e13"], "--base: must be at most 1e+12"),
        (["--m", "1e99999999"], "--m: exponents must be at most 40"),
        (["--m", ",".join(["1"] * 33)], "--m: at most 32 values"),
        (["--samples", str(10**12)], "--samples: must be at most 1,000,000"),
        (["--samples", "1000000", "--dim", "8"], "--samples: samples x len(m) x dim"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "opts, name", [({"dim": 0}, "dim"), ({"dim": 7}, "dim"), ({"m": ""}, "m"), ({"base": 1}, "base")]
)
def test_bad_options_raise_naming_the_parameter(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.check(device="cpu", **opts)
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.figure(tmp_path / "x.png", **opts)


def test_odd_dim_from_the_shell():
    p = subprocess.run([sys.executable, "-m", "proofs.rope_matrix", "--dim", "5"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --dim:")


def test_figure_is_written(tmp_path):
    path = mod.figure(tmp_path / "rope.png", m="0,1,2,3,1/2")
    assert path.exists() and path.stat().st_size > 0

"""Exercise 13.15: PE values for d_model = 4: derivation, answer, cross-check, controls, CLI.

Every answer is compared with math.sin / math.cos of pos / base**(2i/d) computed here, not with the
module's sympy table."""

import json
import math
import subprocess
import sys

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import sinusoidal_table
from proofs import sinusoidal_values as mod


def pe_math(pos: int, dim: int, d_model: int, base: float = 10000.0) -> float:
    """PE(pos, dim) by the textbook formula in plain floats."""
    angle = pos / base ** (2 * (dim // 2) / d_model)
    return math.sin(angle) if dim % 2 == 0 else math.cos(angle)


def values(res) -> dict:
    return {(r["pos"], r["dim"]): r["value"] for r in res.table}


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) >= 8
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)


def test_answer_at_the_exercise_values():
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


def test_default_check_passes_and_controls_are_rejected():
    res = mod.check(device="cpu")
    assert res.passed, res.text()
    assert len(res.claims) == 2 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 3 and not any(c.agrees for c in res.controls)


@settings(max_examples=30)
@given(
    half=st.integers(1, 32),
    positions=st.lists(st.integers(0, 10000), min_size=1, max_size=8),
    base=st.sampled_from([10000.0, 500.0, 2.5, 1e6]),
)
def test_any_values_match_math_and_pass(half, positions, base):
    d_model = 2 * half
    res = mod.check(device="cpu", d_model=d_model, positions=",".join(map(str, positions)), base=base)
    assert res.passed, res.text()
    tol = 1e-15 * (4 + max(positions) * 30)  # both angles' rounding grows with pos (and ln base)
    for (p, c), val in values(res).items():
        assert abs(val - pe_math(p, c, d_model, base)) <= tol


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


def test_json_cli_reports_the_answer(capsys):
    assert mod.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.15" and out["verdict"] == "PASS" and out["derivation"]["status"] == PROVED
    v = {(r["pos"], r["dim"]): r["value"] for r in out["check"]["table"]}
    assert v[1, 0] == pytest.approx(math.sin(1), abs=1e-16) and v[1, 1] == pytest.approx(math.cos(1), abs=1e-16)


def test_cli_other_values(capsys):
    assert mod.main(["--d-model", "6", "--positions", "2,7", "--base", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for r in out["check"]["table"]:
        assert r["value"] == pytest.approx(pe_math(r["pos"], r["dim"], 6, 100.0), abs=1e-14)


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--d-model", "5"], "d_model"),
        (["--d-model", "-4"], "d_model"),
        (["--positions", "-1"], "positions"),
        (["--positions", "a,b"], "positions"),
        (["--base", "1"], "base"),
        (["--base", "nan"], "base"),
        (["--d-model", "x"], "--d-model"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    flag = "--" + name.lstrip("-").replace("_", "-")
    assert flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": 7}, "d_model"),
        ({"positions": ""}, "positions"),
        ({"base": -2}, "base"),
    ],
)
def test_bad_options_raise_naming_the_parameter(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.check(device="cpu", **opts)
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.figure(tmp_path / "x.png", **opts)


def test_odd_d_model_from_the_shell():
    p = subprocess.run(
        [sys.executable, "-m", "proofs.sinusoidal_values", "--d-model", "3"], capture_output=True, text=True
    )
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --d-model:")


def test_figure_is_written(tmp_path):
    path = mod.figure(tmp_path / "pe.png", d_model=8, positions="0,1,5")
    assert path.exists() and path.stat().st_size > 0

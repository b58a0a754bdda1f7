"""Exercise 13.11: attention for Q = K = V = I_2, d_k = 2: derivation, answer, cross-check, controls, CLI.

Every answer is compared with numbers computed here independently: numpy's softmax of the padded
matrices, or math.exp, never the module's own sympy closed form."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import attention_by_hand as mod

# the exercise's answer, from mpmath at 30 digits: e^(1/sqrt 2)/(e^(1/sqrt 2) + 1) and its complement
DIAG, OFF = 0.669761549326656925616794945834, 0.330238450673343074383205054166
UNSCALED = 0.731058578630004879251159241822  # e/(e + 1)


def numpy_attention(n: int, dk: int, scale: float | None = None) -> np.ndarray:
    """softmax(Q K^T * scale) V in numpy float64 for Q = K = [I_n | 0], V = I_n."""
    q = np.eye(n, dk)
    s = q @ q.T * (1 / math.sqrt(dk) if scale is None else scale)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ np.eye(n)


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) >= 8
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)


def test_answer_at_the_exercise_values():
    res = mod.check(device="cpu")
    rows = {r["entry"]: r for r in res.table}
    assert rows["diagonal"]["value"] == pytest.approx(DIAG, abs=1e-16)
    assert rows["off-diagonal"]["value"] == pytest.approx(OFF, abs=1e-16)
    assert rows["diagonal"]["exact"] == "exp(sqrt(2)/2)/(1 + exp(sqrt(2)/2))"
    assert round(rows["diagonal"]["value"], 4) == 0.6698 and round(rows["off-diagonal"]["value"], 4) == 0.3302
    np.testing.assert_allclose(numpy_attention(2, 2), [[DIAG, OFF], [OFF, DIAG]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(mod.exact_matrix(2, 2).numpy(), [[DIAG, OFF], [OFF, DIAG]], rtol=0, atol=1e-16)


def test_default_check_passes_and_controls_are_rejected():
    res = mod.check(device="cpu")
    assert res.passed, res.text()
    assert len(res.claims) == 4 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 6 and not any(c.agrees for c in res.controls)
    unscaled = next(c for c in res.controls if "no 1/sqrt" in c.claim)
    assert unscaled.measured == pytest.approx(UNSCALED - DIAG, abs=1e-15)  # the gap is the scaling's effect
    np.testing.assert_allclose(mod.exact_matrix(2, 2, scale=1).numpy(), numpy_attention(2, 2, 1.0), atol=1e-15)


@settings(max_examples=25)
@given(n=st.integers(2, 24), extra=st.integers(0, 40))
def test_any_size_matches_numpy_and_passes(n, extra):
    dk = n + extra
    res = mod.check(device="cpu", n=n, dk=dk)
    assert res.passed, res.text()
    want = numpy_attention(n, dk)
    rows = {r["entry"]: r["value"] for r in res.table}
    assert rows["diagonal"] == pytest.approx(want[0, 0], rel=1e-14)
    assert rows["off-diagonal"] == pytest.approx(want[0, 1], rel=1e-14)
    z = math.exp(1 / math.sqrt(dk))
    assert rows["diagonal"] == pytest.approx(z / (z + n - 1), rel=1e-14)


def test_check_can_fail_when_the_implementation_forgets_the_scaling(monkeypatch):
    """The cross-check is not vacuous: attention without 1/sqrt(d_k) makes the claim disagree."""

    def unscaled(q, k, v):
        return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v

    monkeypatch.setattr(mod, "by_hand", unscaled)
    res = mod.check(device="cpu")
    assert not res.passed
    bad = [c for c in res.claims if "models.attention" in c.claim]
    assert bad and not any(c.agrees for c in bad)
    assert all(c.agrees for c in res.claims if "F.scaled_dot_product_attention" in c.claim)


def test_tolerance_is_a_rounding_bound():
    assert mod.tolerance(2, 2, torch.float64) < 1e-14
    assert mod.tolerance(2, 2, torch.float32) < 1e-5


def test_json_cli_reports_the_answer(capsys):
    assert mod.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.11" and out["verdict"] == "PASS"
    assert out["derivation"]["status"] == PROVED
    values = {r["entry"]: r["value"] for r in out["check"]["table"]}
    assert values == pytest.approx({"diagonal": DIAG, "off-diagonal": OFF}, abs=1e-15)


def test_cli_other_values(capsys):
    assert mod.main(["--n", "3", "--dk", "4", "--json"]) == 0
    values = {r["entry"]: r["value"] for r in json.loads(capsys.readouterr().out)["check"]["table"]}
    assert values["diagonal"] == pytest.approx(numpy_attention(3, 4)[0, 0], rel=1e-14)


@pytest.mark.parametrize(
    "argv, name",
    [(["--n", "1"], "n"), (["--n", "-3"], "n"), (["--n", "3", "--dk", "2"], "dk"), (["--dk", "x"], "--dk")],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("opts, name", [({"n": 0}, "n"), ({"n": 600}, "n"), ({"dk": -2}, "dk"), ({"dk": 5000}, "dk")])
def test_bad_sizes_raise_naming_the_parameter(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.check(device="cpu", **opts)
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.figure(tmp_path / "x.png", **opts)


def test_negative_size_from_the_shell():
    p = subprocess.run([sys.executable, "-m", "proofs.attention_by_hand", "--n", "-2"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: argument --n: must be at least 2, got -2" in lines[0]


@pytest.mark.parametrize("flag, bound", [("--n", "512"), ("--dk", "4,096")])
def test_huge_size_is_refused_at_parse_time(flag, bound, capsys):
    assert cli_exit(mod, [flag, str(10**12)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag}: must be at most {bound} (" in err and "1,000,000,000,000" in err


def test_figure_is_written(tmp_path):
    path = mod.figure(tmp_path / "att.png", n=3, dk=4)
    assert path.exists() and path.stat().st_size > 0

"""Exercise 13.30: 4 d^2 attention parameters for every h; derivation, check, controls, CLI."""

import json
import subprocess
import sys

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import mha_params as ex

CPU = torch.device("cpu")


def d_and_h(max_d=160):
    return st.integers(1, max_d).flatmap(lambda n: st.tuples(st.just(n), st.sampled_from(ex.divisors(n))))


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and len(dx.steps) >= 10
    assert all(s.status == PROVED for s in dx.steps)


def test_check_passes_and_controls_are_rejected():
    res = ex.check(device="cpu")
    assert res.passed, res.text()
    assert res.claims and all(c.agrees for c in res.claims)
    assert len(res.controls) >= 8 and not any(c.agrees for c in res.controls)
    assert all(c.tol == 0 for c in res.claims + res.controls)  # exact integer comparisons
    assert {r["h"] for r in res.table if r["d"] == 96} == set(ex.divisors(96))
    for row in res.table:
        for col in ("torch+b", "gpt+b"):
            assert row[col] == row["4d^2+4d"]
        for col in ("torch", "gpt"):
            assert row[col] == row["4d^2"]


def test_check_is_seeded():
    a, b = ex.check(device="cpu", samples=3, seed=7, d="32"), ex.check(device="cpu", samples=3, seed=7, d="32")
    assert a.table == b.table and a.passed


@settings(max_examples=25)
@given(d_and_h(), st.booleans())
def test_modules_have_4d2_for_every_h(dh, bias):
    dd, hh = dh
    want = ex.formula(dd, hh, bias)
    assert want == 4 * dd * dd + (4 * dd if bias else 0)
    assert ex.torch_mha(dd, hh, bias, CPU) == want
    assert ex.project_attention(dd, hh, bias, CPU) == want
    if hh > 1:  # the same comparison rejects the wrong formulas
        for wrong in ex.WRONG.values():
            assert ex.project_attention(dd, hh, False, CPU) != wrong(dd, hh)


@settings(max_examples=25)
@given(d_and_h(128).flatmap(lambda p: st.tuples(st.just(p), st.sampled_from(ex.divisors(p[1])))), st.booleans())
def test_gqa_matches_its_own_formula(pk, bias):
    (dd, hh), kv = pk
    got = ex.project_attention(dd, hh, bias, CPU, kv)
    assert got == ex.formula(dd, hh, bias, kv)
    assert (got == ex.formula(dd, hh, bias)) == (kv == hh)


def test_known_value_from_testing_notes():
    assert {ex.torch_mha(512, hh, True, CPU) for hh in ex.divisors(512)} == {1_050_624}


def test_wrong_control_would_fail_the_check():
    """A check whose 'formula' ignored biases would not pass: the comparison can fail."""
    res = ex.check(device="cpu", samples=1, d="16")
    forgot = [c for c in res.controls if "biases forgotten" in c.claim]
    assert forgot and not any(c.agrees for c in forgot)


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"d": "0"}, "d"),
        ({"d": "x"}, "d"),
        ({"d": ""}, "d"),
        ({"heads": "5"}, "heads"),
        ({"heads": "-2"}, "heads"),
        ({"samples": 0}, "samples"),
    ],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.check(device="cpu", **opts)


def test_cli_json_and_figure(capsys, tmp_path):
    assert ex.main(["--json", "--d", "24", "--samples", "2", "--plot", str(tmp_path / "f.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["check"]["verdict"] == "PASS"
    assert out["derivation"]["status"] == "proved"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_cli_bad_input_in_process(capsys):
    assert ex.main(["--d", "64", "--heads", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "heads" in err[0]


def test_cli_bad_input_subprocess():
    out = subprocess.run([sys.executable, "-m", "proofs.mha_params", "--d", "64,-1"], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --d:") and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "argv, want",
    [
        (["--d", str(10**12)], "--d: each must be at most 2,048"),
        (["--heads", str(10**12)], "--heads: each must be at most 2,048"),
        (["--d", ",".join(str(4 * k) for k in range(1, 18))], "--d: at most 16 distinct values"),
        (["--samples", str(10**12)], "--samples: must be at most 50,000"),
        (["--d", "1680,1920,2016,2040,1800,1560,1440,1260,1980"], "--d: the check would build"),  # ~7 minutes
    ],
)
def test_sizes_beyond_the_budget_are_refused_in_one_line(argv, want, capsys):
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and want in err and "Traceback" not in err

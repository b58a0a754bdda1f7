"""Exercise 13.31: pre-norm and post-norm differ; exact example, module check, controls, CLI."""

import json
import subprocess
import sys

import pytest
import sympy as sp
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import prenorm_postnorm as ex

CPU = torch.device("cpu")
rationals = st.fractions(min_value=-20, max_value=20, max_denominator=7)


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status == PROVED for s in dx.steps)


def test_exact_example_outputs_differ():
    e = ex.example()
    diff = sp.simplify(e["pre"] - e["post"])
    assert any(sp.simplify(v) != 0 for v in diff)
    s = sp.sqrt(sp.Rational(3, 14))
    assert sp.simplify(e["post"] - s * sp.Matrix([[2, -3, 1]])) == sp.zeros(1, 3)
    assert sp.simplify(e["pre"] - sp.Matrix([[1 + 3 * s, 2, 6]])) == sp.zeros(1, 3)


@given(st.lists(rationals, min_size=2, max_size=5).filter(lambda v: len(set(v)) > 1))
def test_layernorm_output_is_normalised_exactly(values):
    z = sp.Matrix([[sp.Rational(v.numerator, v.denominator) for v in values]])
    n = ex.ln_exact(z)
    assert sp.simplify(ex.mean(n)) == 0
    assert sp.simplify(ex.mean_sq(n) - 1) == 0


@given(
    st.lists(rationals, min_size=3, max_size=3).filter(lambda v: len(set(v)) > 1),
    st.lists(st.integers(-2, 2), min_size=9, max_size=9),
)
def test_post_norm_is_normalised_and_pre_norm_with_zero_sublayer_is_identity(values, w):
    x = sp.Matrix([[sp.Rational(v.numerator, v.denominator) for v in values]])
    W = sp.Matrix(3, 3, w)
    out = ex.example(x, W)
    if len(set(out["x+f(x)"])) > 1:
        assert sp.simplify(ex.mean(out["post"])) == 0
        assert sp.simplify(ex.mean_sq(out["post"]) - 1) == 0
    zero = ex.example(x, sp.zeros(3, 3))
    assert zero["pre"] == x
    assert sp.simplify(zero["post"] - ex.ln_exact(x)) == sp.zeros(1, 3)


def test_default_check_passes_and_controls_rejected():
    res = ex.check(device="cpu")
    assert res.passed, res.text()
    assert len(res.claims) >= 6 and len(res.controls) >= 5
    assert all(c.tol == ex.EQUAL_TOL for c in res.claims)
    assert not any(c.agrees for c in res.controls)
    assert all(r["|pre-post|"] > 1e6 * ex.EQUAL_TOL for r in res.table)  # far above float tolerance
    assert all(r["f=0 |pre-x|"] == 0.0 for r in res.table)  # x + 0 is exactly x


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_pass(seed):
    assert ex.check(device="cpu", samples=2, seed=seed, d_model=16, tokens=5).passed


@settings(max_examples=8, deadline=None)
@given(d_model=st.sampled_from([4, 8, 20, 48]), tokens=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_modules_match_closed_forms(d_model, tokens, seed):
    r = ex.trial(d_model, tokens, torch.Generator().manual_seed(seed), CPU)
    assert r["|pre-ref|"] <= ex.EQUAL_TOL and r["|post-ref|"] <= ex.EQUAL_TOL
    assert r["|pre-post|"] > ex.DIFF_TOL


def test_same_comparison_accepts_equal_blocks():
    """Positive control: two pre-norm Blocks with one state dict agree to the last bit."""
    gen = torch.Generator().manual_seed(0)
    pre, _ = ex.pair(16, 6, ex.random_state(ex.Block(ex._config(16, 6, True)).double(), gen), CPU)
    other = ex.Block(ex._config(16, 6, True)).double().eval()
    other.load_state_dict(pre.state_dict())
    x = torch.randn(2, 6, 16, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        assert (pre(x) - other(x)).abs().max() <= ex.EQUAL_TOL


@pytest.mark.parametrize(
    "opts, name",
    [({"d_model": 30}, "d_model"), ({"d_model": 0}, "d_model"), ({"tokens": 0}, "tokens"), ({"samples": 0}, "samples")],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.check(device="cpu", **opts)


def test_cli_json_and_figure(capsys, tmp_path):
    assert ex.main(["--json", "--samples", "2", "--plot", str(tmp_path / "f.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["exercise"] == "13.31"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_cli_bad_input_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "proofs.prenorm_postnorm", "--d-model", "-4"], capture_output=True, text=True
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "argument --d-model: must be at least 4, got -4" in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "argv, want",
    [
        (["--d-model", str(10**12)], "--d-model: must be at most 2,048"),
        (["--tokens", str(10**12)], "--tokens: must be at most 4,096"),
        (["--samples", str(10**12)], "--samples: must be at most 1,000"),
        (["--d-model", "6"], "--d-model: must be a positive multiple of 4"),
        (["--d-model", "2048", "--tokens", "4096"], "--tokens: d_model 2,048 with 4,096 tokens would hold"),
        (["--d-model", "1024", "--samples", "200"], "--samples: 200 trials at d_model 1,024"),
    ],
)
def test_sizes_beyond_the_budget_are_refused_in_one_line(argv, want, capsys):
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and want in err and "Traceback" not in err

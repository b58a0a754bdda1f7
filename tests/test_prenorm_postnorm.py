"""Exercise 13.31: pre-norm and post-norm differ; exact example, module check, controls, own rules.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check
passing with its controls rejected, --json, --help, the figure, the declared bounds."""

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import prenorm_postnorm as ex
from proofs.kit.options import settings as options

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


@pytest.mark.slow
def test_default_check_measures_far_apart_outputs():
    res = ex.check(device="cpu")
    assert len(res.claims) == 6 and len(res.controls) == 5
    assert all(c.tol == ex.EQUAL_TOL for c in res.claims) and all(c.tol == ex.DIFF_TOL for c in res.controls)
    assert all(r["|pre-post|"] > 1e6 * ex.EQUAL_TOL for r in res.table)  # far above float tolerance
    assert all(r["f=0 |pre-x|"] == 0.0 for r in res.table)  # x + 0 is exactly x


def test_figure_draws_the_result_without_running_a_trial(monkeypatch):
    res = ex.check(device="cpu", samples=1, d_model=8, tokens=3)
    y_pre, y_post = res.series["outputs"]
    assert y_pre.shape == y_post.shape == (ex.BATCH * 3 * 8,)
    monkeypatch.setattr(ex, "trial", lambda *a: pytest.fail("the figure ran a trial"))
    assert len(ex.figure(res).axes) == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_pass(seed):
    assert ex.check(device="cpu", samples=2, seed=seed, d_model=16, tokens=5).passed


@pytest.mark.slow
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
    "opts, want",
    [
        ({"d_model": 30}, "d_model: must be a positive multiple of 4"),
        ({"d_model": 6}, "d_model: must be a positive multiple of 4"),
        ({"d_model": 2048, "tokens": 4096}, "tokens: d_model 2,048 with 4,096 tokens would hold"),
        ({"d_model": 1024, "samples": 200}, "samples: 200 trials at d_model 1,024"),
    ],
)
def test_own_rules_refuse_naming_the_option(opts, want):
    """The exercise's cross-option rules (the declared bounds are the contract test's)."""
    with pytest.raises(ValueError, match=rf"^{want}"):
        options(ex, device="cpu", **opts)

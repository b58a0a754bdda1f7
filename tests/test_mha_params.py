"""Exercise 13.30: 4 d^2 attention parameters for every h; the derivation, the counts, the check's own rules and
controls, its figure (the contract test covers what every exercise shares)."""

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import mha_params as ex
from proofs.kit import options

CPU = torch.device("cpu")


def d_and_h(max_d=160):
    return st.integers(1, max_d).flatmap(lambda n: st.tuples(st.just(n), st.sampled_from(ex.divisors(n))))


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and len(dx.steps) >= 10
    assert all(s.status == PROVED for s in dx.steps)


def test_check_counts_every_divisor_and_matches_both_formulas():
    res = ex.check(device="cpu")
    assert len(res.controls) >= 8 and all(c.tol == 0 for c in res.claims + res.controls)  # exact integer comparisons
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
        ({"d": "64,-1"}, "d"),
        ({"heads": "5"}, "heads"),
        ({"heads": "-2"}, "heads"),
    ],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        options.settings(ex, **opts)


def test_figure_draws_the_counts_of_the_check(monkeypatch):
    """The figure plots the check's own counts (the MQA ones from res.series) and builds no module."""
    res = ex.check(device="cpu", samples=2, d="24")
    monkeypatch.setattr(ex, "project_attention", lambda *a: pytest.fail("the figure rebuilt a module"))
    monkeypatch.setattr(ex, "torch_mha", lambda *a: pytest.fail("the figure rebuilt a module"))
    ax = ex.figure(res).axes[0]
    mha, mqa = (ax.lines[k].get_ydata() for k in (0, 1))
    assert list(mha) == [4.0] * len(ex.divisors(24))
    assert list(mqa) == [(2 * 24**2 + 2 * 24**2 / hh) / 24**2 for hh in ex.divisors(24)]


def test_cli_names_the_flags_of_a_cross_option_rule(capsys):
    assert cli_exit(ex, ["--d", "64", "--heads", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --heads: 3 does not divide --d=64"]


@pytest.mark.parametrize(
    "argv, want",
    [
        (["--d", "64,-1"], "--d: each must be at least 1, got -1"),
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

"""Exercise 13.18: compute-optimal (N, D); answers recomputed by hand, the check and its controls, the open ends
and float64 range of its options, robustness over that range (the contract test covers what every exercise shares)."""

import json
import math

import pytest
from helpers import cli_exit
from hypothesis import event, given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.utils.cli import name_flags
from proofs import chinchilla as ex
from proofs.kit import options

FIT = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def bisect_root(c, A, B, alpha, beta):
    """N where d/dN [A N^-alpha + B (6N/C)^beta] = 0, by plain bisection in log N (no sympy, no scipy)."""
    grad = lambda x: -alpha * A * math.exp(-alpha * x) + beta * B * (6 / c) ** beta * math.exp(beta * x)
    lo, hi = -200.0, 200.0 + math.log(c)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if grad(mid) < 0 else (lo, mid)
    return math.exp((lo + hi) / 2)


def grid_argmin(c, E, A, B, alpha, beta):
    """The best of a dense log grid (1e5 points around the 20-tokens point): a third, cruder route."""
    center = math.log(math.sqrt(c / 120))
    xs = [center - 5 + 10 * i / 100_000 for i in range(100_001)]
    loss = lambda x: E + A * math.exp(-alpha * x) + B * (c / (6 * math.exp(x))) ** -beta
    return math.exp(min(xs, key=loss))


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and len(dx.steps) >= 15
    assert all(s.status == PROVED for s in dx.steps)


def test_answers_at_the_exercise_values():
    rows = {r["answer"][:4].strip(): r for r in ex.answers(options.settings(ex))}
    n_a = math.sqrt(1e22 / 120)
    assert math.isclose(rows["(a)"]["N"], n_a, rel_tol=1e-12) and math.isclose(n_a, 9.128709e9, rel_tol=1e-6)
    assert math.isclose(rows["(a)"]["D"], 20 * n_a, rel_tol=1e-12)
    n_b = bisect_root(1e22, 406.4, 410.7, 0.34, 0.28)
    assert math.isclose(rows["(b)"]["N"], n_b, rel_tol=1e-12)
    assert math.isclose(rows["(b)"]["D"], 1e22 / (6 * n_b), rel_tol=1e-12)
    assert math.isclose(rows["(b)"]["N"], grid_argmin(1e22, **FIT), rel_tol=1e-3)
    assert 5.16e9 < rows["(b)"]["N"] < 5.161e9 and 3.229e11 < rows["(b)"]["D"] < 3.23e11
    c0 = 6 * 70e9 * 1.4e12
    assert math.isclose(rows["(c1)"]["N"], 70e9 * (1e22 / c0) ** 0.5, rel_tol=1e-12)
    assert math.isclose(rows["(c1)"]["N"], n_a, rel_tol=1e-12)  # Chinchilla's 20 tokens/param: (c1) is (a)
    assert math.isclose(rows["(c2)"]["N"], 70e9 * (1e22 / c0) ** 0.49, rel_tol=1e-12)
    for r in rows.values():
        assert math.isclose(6 * r["N"] * r["D"], 1e22, rel_tol=1e-12)
        assert math.isclose(r["L(N,D)"], 1.69 + 406.4 / r["N"] ** 0.34 + 410.7 / r["D"] ** 0.28, rel_tol=1e-12)
    assert rows["(b)"]["L(N,D)"] < min(r["L(N,D)"] for k, r in rows.items() if k != "(b)")
    assert math.isclose(rows["(b)"]["a"], 0.28 / 0.62, rel_tol=1e-12)


@settings(max_examples=40)
@given(
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.floats(1.0, 1e4),
    st.floats(1.0, 1e4),
    st.floats(1e10, 1e30),
)
def test_closed_form_is_the_bisected_root(alpha, beta, A, B, c):
    o = options.settings(ex, flops=c, A=A, B=B, alpha=alpha, beta=beta)
    n, d = ex.fitted_optimum(c, o)
    want = bisect_root(c, A, B, alpha, beta)
    assert math.isclose(n, want, rel_tol=1e-9)
    assert math.isclose(d, c / (6 * want), rel_tol=1e-9)


def test_check_has_every_budget_and_control_and_says_where_its_numbers_come_from():
    res = ex.check()
    assert len(res.claims) == 6 and len(res.controls) == 3
    text = res.text()
    for s in ("arXiv:2203.15556", "Table 2", "406.4", "tokens/param", "flat near its minimum"):
        assert s in text


def test_check_would_fail_with_a_wrong_closed_form(monkeypatch):
    """The comparison can fail: a closed form off by 1 % disagrees with the numerical minimum."""
    right = ex.fitted_optimum
    monkeypatch.setattr(ex, "fitted_optimum", lambda c, o: tuple(1.01 * v for v in right(c, o)))
    res = ex.check(samples=2)
    assert not res.passed and not any(c.agrees for c in res.claims)


def test_equal_exponents_leave_out_the_swap_control():
    res = ex.check(samples=2, alpha=0.3, beta=0.3)
    assert res.passed and len(res.controls) == 2 and any("alpha = beta" in n for n in res.notes)


def test_samples_choose_the_budgets():
    res = ex.check(samples=2, flops=3e21)
    assert [c.claim.split(":")[0] for c in res.claims[:2]] == ["C = 3e+21", "C = 1e+18"]


@pytest.mark.slow
def test_cli_prints_answers(capsys):
    assert ex.main(["--samples", "1"]) == 0
    out = capsys.readouterr().out
    for s in ("Exercise 13.18", "N = 9.129e+09", "N = 5.16e+09", "D = 3.23e+11", "Verdict: PASS"):
        assert s in out


def test_figure_draws_the_budgets_and_argmins_of_the_check(monkeypatch):
    res = ex.check(samples=3, flops=3e21)
    monkeypatch.setattr(ex.powerlaw, "argmin", lambda *a: pytest.fail("the figure searched again"))
    ax = ex.figure(res).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == [
        "$C = 10^{18}$",
        "$C = 10^{20}$",
        r"$C = 3 \times 10^{21}$",
    ]
    crosses = [ln.get_xdata()[0] for ln in ax.lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert sorted(crosses) == sorted(math.exp(x) for x in res.series["argmin"].values())


@pytest.mark.slow
def test_cli_json_follows_the_options(capsys):
    assert ex.main(["--json", "--flops", "5.88e23", "--tokens-per-param", "25", "--samples", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["derivation"]["status"] == "proved"
    rows = out["check"]["table"]
    assert math.isclose(rows[0]["N"], math.sqrt(5.88e23 / 150), rel_tol=1e-12)
    assert math.isclose(rows[2]["N"], 70e9, rel_tol=1e-12)  # at Chinchilla's budget (c) is Chinchilla


FLOAT_FLAGS = {
    "flops": "--flops",
    "tokens_per_param": "--tokens-per-param",
    "E": "--E",
    "A": "--A",
    "B": "--B",
    "alpha": "--alpha",
    "beta": "--beta",
    "a_approach1": "--a-approach1",
    "a_approach2": "--a-approach2",
    "anchor_params": "--anchor-params",
    "anchor_tokens": "--anchor-tokens",
}


def test_every_float_flag_is_an_option():
    assert {o.dest: o.flag for o in ex.OPTIONS} == FLOAT_FLAGS


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"flops": 0.0}, "flops"),
        ({"flops": -1e22}, "flops"),
        ({"alpha": 0.0}, "alpha"),
        ({"beta": 1.5}, "beta"),
        ({"beta": 1.0}, "beta"),
        ({"A": -1.0}, "A"),
        ({"A": 0}, "A"),
        ({"E": -0.1}, "E"),
        ({"tokens_per_param": 0.0}, "tokens_per_param"),
        ({"a_approach1": 0.0}, "a_approach1"),
        ({"a_approach2": 1.0}, "a_approach2"),
        ({"anchor_params": -7e10}, "anchor_params"),
        ({"anchor_tokens": 0.0}, "anchor_tokens"),
        # together out of float64's range: the answer would not be a float64 number
        ({"A": 1e300}, "A"),
        ({"B": 1e-300, "alpha": 1e-3}, "B"),
        ({"flops": 1e300}, "flops"),
        ({"tokens_per_param": 1e-300}, "tokens_per_param"),
        ({"anchor_params": 1e-300}, "anchor_params"),
    ],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:") as e:
        options.settings(ex, **opts)
    assert "\n" not in str(e.value)


def test_zero_is_accepted_for_E_alone():
    assert options.settings(ex, E=0.0).E == 0.0


def test_out_of_range_message_gives_the_reason():
    with pytest.raises(ValueError) as e:
        options.settings(ex, A=1e300)
    msg = str(e.value)
    assert msg.startswith("A: must keep every answer's N and D within 10^-150..10^150")
    assert "float64" in msg and "got 1e+300" in msg and "N = 10^489.4" in msg and "alpha=0.34" in msg


@pytest.mark.parametrize("argv, flag", [(["--alpha", "1"], "--alpha"), (["--B", "1e300"], "--B")])
def test_cli_prints_the_api_message_with_flags_in_one_line(argv, flag, capsys):
    with pytest.raises(ValueError) as e:
        options.settings(ex, **{flag[2:]: float(argv[1])})
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {name_flags(str(e.value), FLOAT_FLAGS)}"] and err[0].startswith(f"error: {flag}:")


# -- robustness over the whole range the flags allow --------------------------------------------


def log_uniform(lo, hi):
    """10^u for u uniform in [lo, hi] (hypothesis shrinks u, not the float)."""
    return st.floats(lo, hi).map(lambda u: 10.0**u)


def exponent():
    """An exponent in (0, 1): log-uniform down to 1e-6, or uniform up to 0.999."""
    return st.one_of(log_uniform(-6, 0).map(lambda x: min(x, 0.999)), st.floats(0.01, 0.999))


def assert_sound(res, o):
    """Every claim agrees; every control kept is rejected, and each one left out says why."""
    assert res.passed, res.text()
    assert all(c.agrees for c in res.claims) and len(res.claims) >= 2
    assert not any(c.agrees for c in res.controls)
    left_out = [n for n in res.notes if n.startswith("control left out") or n.startswith("alpha = beta")]
    assert len(res.controls) + len(left_out) == 3


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(log_uniform(-300, 300), log_uniform(-300, 300), exponent(), exponent(), log_uniform(-300, 300))
def test_check_passes_or_refuses_cleanly_over_the_whole_range(A, B, alpha, beta, flops):
    """A, B and the budget log-uniform over float64, the exponents over (0, 1): the check either
    refuses the values in one line naming a flag of the fit (the answer would leave 10^+-150), or passes."""
    opts = dict(A=A, B=B, alpha=alpha, beta=beta, flops=flops)
    try:
        o = options.settings(ex, **opts)
    except ValueError as e:
        msg = str(e)
        assert "\n" not in msg and "10^-150..10^150" in msg
        assert msg.split(":")[0] in ("A", "B", "alpha", "beta", "flops")
        event("refused")
        return
    event("accepted")
    assert_sound(ex.check(samples=3, **opts), o)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(log_uniform(-30, 30), log_uniform(-30, 30), st.floats(0.3, 0.99), st.floats(0.3, 0.99), log_uniform(10, 28))
def test_check_passes_with_every_control_in_a_wide_box(A, B, alpha, beta, flops):
    """In this box (A, B in 1e-30..1e30, exponents in 0.3..0.99, 1e10..1e28 FLOPs) no value is refused,
    the check passes at every budget, and the three controls (two when alpha = beta) are rejected."""
    o = options.settings(ex, A=A, B=B, alpha=alpha, beta=beta, flops=flops)
    res = ex.check(A=A, B=B, alpha=alpha, beta=beta, flops=flops)
    assert_sound(res, o)
    assert len(res.claims) == len({flops, *ex.BUDGETS}) + 1 and not any("budgets left out" in n for n in res.notes)
    left_out = sum("control left out" in n for n in res.notes)  # exponents a few ulps apart: swapped = claim
    assert left_out <= (alpha != beta) and len(res.controls) == (2 if alpha == beta else 3) - left_out >= 2


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-300, 300),
    exponent(),
    exponent(),
    st.floats(-300, 300),
    st.floats(-150, 150),
    st.floats(-150, 150),
)
@pytest.mark.slow
def test_check_passes_across_the_accepted_range(log_a, alpha, beta, log_c, log_n, log_d):
    """Every accepted value, sampled across its whole extent: A log-uniform over 1e-300..1e300, the
    exponents over (0, 1), the answer N, D anywhere in 10^-150..10^150 (so C = 6ND), and B the
    coefficient that puts the optimum there. The check passes and its controls are rejected."""
    from hypothesis import assume

    ln10 = math.log(10)
    flops = 6 * 10.0 ** (log_n + log_d)
    assume(abs(math.log10(flops / 6) - (log_n + log_d)) < 1e-9 and 0 < flops < math.inf)
    A = 10.0**log_a
    # x* (alpha + beta) = log(alpha A / (beta B)) + beta log(C/6), solved for log B
    log_b = (
        math.log(alpha / beta) + log_a * ln10 + beta * (log_n + log_d) * ln10 - log_n * ln10 * (alpha + beta)
    ) / ln10
    assume(-300 < log_b < 300)
    opts = dict(A=A, B=10.0**log_b, alpha=alpha, beta=beta, flops=flops)
    try:
        o = options.settings(ex, **opts)
    except ValueError:  # at the edge of 10^+-150 after rounding, or (a) outside it at the smallest budgets
        assume(False)
        return
    event("accepted")
    assert_sound(ex.check(samples=2, **opts), o)


EXTREMES = [
    dict(A=1e30),
    dict(B=1e30),
    dict(A=1e30, B=1e30),
    dict(A=1e-30),
    dict(B=1e-30, flops=1e40),
    dict(alpha=1e-4),
    dict(beta=1e-4, B=1e-3),
    dict(alpha=0.999, beta=0.999),
    dict(alpha=1e-6, beta=1e-6, B=406.4),  # nearly flat: curvature alpha beta = 1e-12 in log N
    dict(alpha=1e-6, beta=0.9, A=1e-100),
    dict(flops=1e-100, A=1e-40),
    dict(flops=1e200, A=5e8),
    dict(A=5e-324, B=1e-280, alpha=0.5, beta=0.5),  # the smallest positive float: subnormal
]


@pytest.mark.parametrize("opts", EXTREMES)
def test_extremes_pass_and_a_wrong_closed_form_still_fails(opts, monkeypatch):
    res = ex.check(**opts)
    assert_sound(res, options.settings(ex, **opts))
    assert len(res.controls) >= 1
    right = ex.fitted_optimum
    monkeypatch.setattr(ex, "fitted_optimum", lambda c, o: tuple(1.01 * v for v in right(c, o)))
    bad = ex.check(**opts)
    assert not bad.passed and not any(c.agrees for c in bad.claims)


@pytest.mark.parametrize("opts", [dict(A=1e30), dict(B=1e30), dict(A=1e-30), dict(flops=1e40, B=1e-30)])
def test_the_check_sees_a_one_in_a_million_error_at_extremes(opts, monkeypatch):
    right = ex.fitted_optimum
    monkeypatch.setattr(ex, "fitted_optimum", lambda c, o: tuple((1 + 1e-6) * v for v in right(c, o)))
    res = ex.check(**opts)
    assert not res.passed and not any(c.agrees for c in res.claims)


def test_the_reported_failure_a_1e30_now_passes():
    """--A 1e30 put the optimum at N = 7.8e53, far outside the old search interval e^-50..e^50 C/6."""
    res = ex.check(A=1e30)
    assert res.passed and len(res.controls) == 3
    n_b = res.table[1]["N"]
    assert math.isclose(n_b, bisect_root(1e22, 1e30, 410.7, 0.34, 0.28), rel_tol=1e-12)
    assert 7.79e53 < n_b < 7.8e53

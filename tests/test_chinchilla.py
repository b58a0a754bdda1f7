"""Exercise 13.18: compute-optimal (N, D); answers recomputed by hand, the check and its controls, CLI."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import chinchilla as ex

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
    rows = {r["answer"][:4].strip(): r for r in ex.answers(ex.validate())}
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
    o = ex.validate(flops=c, A=A, B=B, alpha=alpha, beta=beta)
    n, d = ex.fitted_optimum(c, o)
    want = bisect_root(c, A, B, alpha, beta)
    assert math.isclose(n, want, rel_tol=1e-9)
    assert math.isclose(d, c / (6 * want), rel_tol=1e-9)


def test_check_passes_and_controls_are_rejected():
    res = ex.check()
    assert res.passed, res.text()
    assert len(res.claims) == 6 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 3 and not any(c.agrees for c in res.controls)
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


def test_cli_prints_answers_and_figure(capsys, tmp_path):
    assert ex.main(["--plot", str(tmp_path / "iso.png")]) == 0
    out = capsys.readouterr().out
    for s in ("Exercise 13.18", "N = 9.129e+09", "N = 5.16e+09", "D = 3.23e+11", "Verdict: PASS"):
        assert s in out
    assert (tmp_path / "iso.png").stat().st_size > 0


def test_cli_json_follows_the_options(capsys):
    assert ex.main(["--json", "--flops", "5.88e23", "--tokens-per-param", "25", "--samples", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["derivation"]["status"] == "proved"
    rows = out["check"]["table"]
    assert math.isclose(rows[0]["N"], math.sqrt(5.88e23 / 150), rel_tol=1e-12)
    assert math.isclose(rows[2]["N"], 70e9, rel_tol=1e-12)  # at Chinchilla's budget (c) is Chinchilla


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"flops": 0.0}, "flops"),
        ({"flops": -1e22}, "flops"),
        ({"flops": math.inf}, "flops"),
        ({"alpha": 0.0}, "alpha"),
        ({"beta": 1.5}, "beta"),
        ({"A": -1.0}, "A"),
        ({"B": math.nan}, "B"),
        ({"E": -0.1}, "E"),
        ({"tokens_per_param": 0.0}, "tokens_per_param"),
        ({"a_approach2": 1.0}, "a_approach2"),
        ({"anchor_tokens": 0.0}, "anchor_tokens"),
        ({"samples": 0}, "samples"),
    ],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.check(**opts)


def test_cli_bad_input_subprocess():
    out = subprocess.run([sys.executable, "-m", "proofs.chinchilla", "--alpha", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: alpha:") and "Traceback" not in out.stderr

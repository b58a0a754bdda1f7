"""derive.scaling: the compute-optimal formulas, sympy only, checked against plain floats."""

import math
import subprocess
import sys

import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derive import scaling as sc
from derive.scaling import A, B, C, N, alpha, beta


def test_no_torch_import():
    code = "import sys, derive.scaling; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_constants_are_the_papers():
    assert {k: float(v) for k, v in sc.HOFFMANN.items()} == {
        "E": 1.69,
        "A": 406.4,
        "B": 410.7,
        "alpha": 0.34,
        "beta": 0.28,
    }
    assert sc.CHINCHILLA["D"] / sc.CHINCHILLA["N"] == 20


def test_optimum_is_on_the_budget():
    n, d = sc.optimum()
    assert sp.simplify(6 * n * d - C) == 0


@given(
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.floats(1.0, 1e4),
    st.floats(1.0, 1e4),
    st.floats(1e10, 1e30),
)
def test_closed_form_matches_hand_written_floats(al, be, a, b, c):
    n, d = sc.optimum(C, A, B, alpha, beta)
    sub = {A: a, B: b, alpha: al, beta: be, C: c}
    g = (al * a / (be * b)) ** (1 / (al + be))
    want = g * (c / 6) ** (be / (al + be))
    assert math.isclose(float(n.subs(sub)), want, rel_tol=1e-12)
    assert math.isclose(float(d.subs(sub)), c / (6 * want), rel_tol=1e-12)
    # the derivative of L along the line, written by hand, vanishes there
    grad = -al * a * want ** (-al - 1) + be * b * (6 / c) ** be * want ** (be - 1)
    assert abs(grad) * want <= 1e-9 * (al * a * want**-al)


def test_rule_of_thumb_and_anchor():
    n, d = sc.rule_of_thumb(10**22)
    assert math.isclose(float(n), math.sqrt(1e22 / 120), rel_tol=1e-15) and d == 20 * n
    na, da = sc.anchored(sp.Integer(10) ** 22, sp.Rational(1, 2))
    assert sp.simplify(na - n) == 0 and sp.simplify(da - d) == 0
    n49, _ = sc.anchored(1e22, 0.49)
    assert math.isclose(float(n49), 70e9 * (1e22 / (6 * 70e9 * 1.4e12)) ** 0.49, rel_tol=1e-12)


def test_isoflop_loss_is_the_loss_on_the_line():
    assert sp.simplify(sc.isoflop_loss() - sc.loss(N, C / (6 * N))) == 0

"""The derivation engine: honest statuses, failures that name the step, and every rendering."""

import json
import re

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derive import PROVED, SPOT_CHECKED, Derivation, StepFailed
from derive.engine import FROM_LEMMA

x, y = sp.symbols("x y", real=True)
n = sp.Symbol("n", positive=True)


def test_proved_steps_and_renderings():
    d = Derivation("demo", ["x, y real"])
    d.eq((x + y) ** 2, x**2 + 2 * x * y + y**2, "square", "expand")
    d.eq(sp.sin(x + y), sp.sin(x) * sp.cos(y) + sp.cos(x) * sp.sin(y), "addition formula", "trig")
    d.limit(1 / n, n, sp.oo, 0, "1/n vanishes")
    d.holds(n, "<", n + 1, "n < n + 1")
    assert [s.status for s in d.steps] == [PROVED] * 4
    assert d.all_proved and d.status == PROVED
    assert "Step 3 [proved, limit]" in d.text()
    assert "\\lim_{n \\to \\infty}" in d.latex()
    assert d.latex_document().startswith("\\documentclass")
    assert d.markdown().count("$$") == 8
    assert json.loads(json.dumps(d.to_dict()))["status"] == PROVED
    assert d._repr_latex_().startswith("$")


def test_false_step_raises_naming_the_step():
    d = Derivation("bad")
    d.eq(x, x, "fine", "exact")
    with pytest.raises(StepFailed, match=r"step 2 \(wrong square\)"):
        d.eq((x + 1) ** 2, x**2 + 1, "wrong square", "expand")
    with pytest.raises(StepFailed, match="limit is 1"):
        d.limit(n / (n + 1), n, sp.oo, 0, "wrong limit")
    with pytest.raises(StepFailed):
        d.holds(n + 1, "<", n, "wrong inequality")


def test_unsettled_step_is_spot_checked_not_proved(monkeypatch):
    # Disable every strategy: a true identity must then come out spot-checked, never proved.
    import derive.engine as eng

    monkeypatch.setitem(eng.STRATEGIES, "exact", lambda e: e)
    monkeypatch.setattr(eng.sp, "simplify", lambda e: e)
    d = Derivation("fallback")
    s = d.eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1, "Pythagoras", "exact")
    assert s.status == SPOT_CHECKED and "seeded random points" in s.note
    assert not d.all_proved and d.status == SPOT_CHECKED
    assert "[spot-checked" in d.text()
    with pytest.raises(StepFailed):
        d.eq(sp.sin(x) ** 2, 1, "false", "exact")


def test_matrix_steps():
    a = sp.Symbol("a", real=True)
    R = sp.Matrix([[sp.cos(a), -sp.sin(a)], [sp.sin(a), sp.cos(a)]])
    d = Derivation("rotation")
    assert d.eq(R.T * R, sp.eye(2), "orthogonal", "trig").status == PROVED
    with pytest.raises(StepFailed):
        d.eq(R * R, sp.eye(2), "not an involution", "trig")


def test_computed_is_what_is_checked():
    d = Derivation("computed")
    shown = sp.Function("Var")(x)
    assert d.eq(shown, 1, "evaluated", "exact", computed=sp.Integer(1)).status == PROVED
    with pytest.raises(StepFailed):
        d.eq(shown, 1, "evaluated wrongly", "exact", computed=sp.Integer(2))


def test_bad_arguments():
    d = Derivation("args")
    with pytest.raises(ValueError, match="^strategy"):
        d.eq(x, x, "r", "no-such")
    with pytest.raises(ValueError, match="^op"):
        d.holds(x, "==", x, "r")


@given(st.integers(-50, 50), st.integers(-50, 50))
def test_latex_text_roundtrip_of_polynomial_steps(a, b):
    d = Derivation("poly")
    d.eq((x + a) * (x + b), x**2 + (a + b) * x + a * b, "expand", "expand")
    assert d.all_proved
    assert re.search(r"=", d.steps[0].latex())


def test_infinite_limit_is_proved():
    d = Derivation("growth")
    assert d.limit(n**2 / (n + 1), n, sp.oo, sp.oo, "grows without bound").status == PROVED
    with pytest.raises(StepFailed):
        d.limit(1 / n, n, sp.oo, sp.oo, "does not grow")


def test_a_step_resting_on_a_stated_lemma_is_never_plain_proved():
    d = Derivation("lemma", ["n a positive integer"])
    total = sp.Symbol("T")
    d.eq(n + n, 2 * n, "add", "expand")
    with pytest.raises(ValueError, match="^lemma: 'Count' is not stated"):
        d.eq(total, n, "count", "expand", computed=n, lemma="Count")
    name = d.lemma("Count", "{1..n} has n elements")
    assert d.lemma("Count", "{1..n} has n elements") == name and len(d.assumptions) == 2  # stated once
    with pytest.raises(ValueError, match="^name: 'Count' is already stated differently"):
        d.lemma("Count", "another statement")
    with pytest.raises(ValueError, match="^name:"):
        d.lemma("a: b", "colon in the name")
    s = d.eq(total, n, "count", "expand", computed=n, lemma=name)
    assert s.status == FROM_LEMMA and "Count" in s.note
    assert not d.all_proved and d.status == FROM_LEMMA
    assert "[proved from a stated lemma, expand]" in d.text() and d.to_dict()["status"] == FROM_LEMMA
    with pytest.raises(StepFailed):  # the lemma does not excuse wrong arithmetic
        d.eq(total, n, "miscount", "expand", computed=n + 1, lemma=name)
    with pytest.raises(ValueError, match="^lemma: give a rule"):
        d.eq(total, n, "both", "expand", computed=n, rule="r", lemma=name)
    d.holds(2**n, ">=", n + 1, "Bernoulli")  # spot-checked: it outranks the lemma
    assert d.status == SPOT_CHECKED


def test_lemma_step_sympy_cannot_settle_stays_spot_checked(monkeypatch):
    import derive.engine as eng

    monkeypatch.setitem(eng.STRATEGIES, "exact", lambda e: e)
    monkeypatch.setattr(eng.sp, "simplify", lambda e: e)
    d = Derivation("fallback")
    name = d.lemma("L", "a premise")
    s = d.eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1, "Pythagoras", "exact", lemma=name)
    assert s.status == SPOT_CHECKED and "rests on L" in s.note and d.status == SPOT_CHECKED

"""derive.moments: exact moments of sums/products of independent variables, checked by enumeration."""

import doctest
import itertools
import subprocess
import sys
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import derive.moments as mm
from derive.engine import FROM_LEMMA, PROVED, Derivation, StepFailed


def test_doctests_pass():
    assert doctest.testmod(mm).failed == 0


def test_imports_without_torch():
    code = "import sys, derive.moments; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _rademacher_dot_moment(d: int, power: int) -> Fraction:
    """E[(q.k)^power] by enumerating all 2^(2d) equally likely sign vectors (exact)."""
    total = sum(sum(a * b for a, b in zip(s[:d], s[d:])) ** power for s in itertools.product((-1, 1), repeat=2 * d))
    return Fraction(total, 4**d)


@given(d=st.integers(1, 5))
def test_rademacher_moments_match_enumeration(d):
    m4 = mm.component_moment("rademacher", 4)
    assert _rademacher_dot_moment(d, 2) == d
    assert _rademacher_dot_moment(d, 4) == 3 * d * d - 2 * d == mm.dot_fourth_moment(d, m4, m4)
    qs, ks = sp.symbols(f"q1:{d + 1}"), sp.symbols(f"k1:{d + 1}")
    x = sum(a * b for a, b in zip(qs, ks))
    mom = mm.iid(qs + ks, {n: mm.component_moment("rademacher", n) for n in range(1, 5)})
    assert mm.expectation(x**4, mom) == 3 * d * d - 2 * d


# a small discrete distribution: values with positive integer weights
dist = st.lists(st.tuples(st.integers(-3, 3), st.integers(1, 4)), min_size=1, max_size=3)


@given(a=dist, b=dist, coeffs=st.lists(st.integers(-5, 5), min_size=6, max_size=6))
def test_expectation_matches_enumeration_for_independent_variables(a, b, coeffs):
    """E[poly(x, y)] from the moment tables equals the exact average over the joint distribution."""
    x, y = sp.symbols("x y")
    poly = sum(c * x**i * y**j for c, (i, j) in zip(coeffs, [(0, 0), (1, 0), (0, 1), (2, 1), (1, 3), (4, 0)]))

    def raw(pairs):
        w = sum(p for _, p in pairs)
        return {n: sp.Rational(sum(v**n * p for v, p in pairs), w) for n in range(1, 5)}

    wa, wb = sum(p for _, p in a), sum(p for _, p in b)
    exact = sum(poly.subs({x: u, y: v}) * sp.Rational(p * q, wa * wb) for (u, p), (v, q) in itertools.product(a, b))
    assert mm.expectation(poly, {x: raw(a), y: raw(b)}) == exact


@given(d=st.integers(1, 10_000))
def test_gaussian_spread_of_sample_variance(d):
    assert sp.simplify(mm.sample_variance_cv(d, 3, 3) ** 2 - sp.Rational(2 * (d + 3), d)) == 0


def test_component_moments_agree_with_sympy_stats():
    from sympy.stats import E, FiniteRV, Normal, Uniform

    rvs = {
        "gaussian": Normal("x", 0, 1),
        "uniform": Uniform("x", -sp.sqrt(3), sp.sqrt(3)),
        "rademacher": FiniteRV("x", {-1: sp.S.Half, 1: sp.S.Half}),
    }
    for name, x in rvs.items():
        assert [mm.component_moment(name, n) for n in range(1, 5)] == [sp.simplify(E(x**n)) for n in range(1, 5)]
    assert mm.component_moment("uniform", 4) == sp.Rational(9, 5)


def test_steps_are_proved_for_symbolic_dk():
    d = sp.Symbol("d_k", positive=True, integer=True)
    der = Derivation("t")
    assert mm.dot_variance_steps(der, d) == d
    m4q, m4k = sp.symbols("m_4q m_4k", positive=True)
    assert sp.expand(mm.dot_fourth_moment_steps(der, d, m4q, m4k) - (d * m4q * m4k + 3 * d * (d - 1))) == 0
    # the two steps over a symbolic number of terms are proved from the stated lemma (stated and
    # checked once); every other step, the lemma's checks included, is proved
    from_lemma = [s for s in der.steps if s.status == FROM_LEMMA]
    assert len(der.steps) == 10 and len(from_lemma) == 2 and der.status == FROM_LEMMA
    assert all(s.status == PROVED for s in der.steps if s not in from_lemma)
    assert [a.split(":")[0] for a in der.assumptions] == [mm.INDEX_LEMMA]


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_set_partitions_are_the_patterns_of_enumerated_tuples(m):
    parts = mm.set_partitions(m)
    assert len(parts) == [1, 2, 5, 15][m - 1] and len(set(parts)) == len(parts)
    seen = {mm.pattern_of(t) for t in itertools.product(range(m), repeat=m)}  # d = m: every pattern occurs
    assert seen == set(parts)


@given(d=st.integers(1, 7), m=st.integers(1, 4))
def test_pattern_counts_are_falling_factorials_and_cover_all_tuples(d, m):
    counts = mm.pattern_counts(d, m)
    assert sum(counts.values()) == d**m
    assert all(n == sp.ff(d, len(p)) for p, n in counts.items())


def test_pattern_sum_matches_the_direct_expansion():
    """sum_P ff(d, |P|) E[P] equals E[(q.k)^m] expanded directly, for m = 1..4 and d = 1..3."""
    m3, m4 = sp.Symbol("m3", real=True), sp.Symbol("m4", positive=True)
    for d in range(1, 4):
        qs, ks = sp.symbols(f"q1:{d + 1}"), sp.symbols(f"k1:{d + 1}")
        mom = mm.iid(qs + ks, mm.unit_moments(m4, m3))
        for m in range(1, 5):
            direct = mm.expectation(sum(a * b for a, b in zip(qs, ks)) ** m, mom)
            assert sp.expand(mm.pattern_sum(d, m, mm.unit_moments(m4, m3), mm.unit_moments(m4, m3)) - direct) == 0


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(lambda d, b: d**b, id="d^b"),
        pytest.param(lambda d, b: sp.binomial(d, b), id="binomial"),  # unordered choices: misses the b! orders
        pytest.param(lambda d, b: sp.ff(d, b) + (1 if b == 4 else 0), id="off-by-one-at-b=4"),
    ],
)
def test_the_lemma_check_rejects_a_wrong_count(count):
    """Negative control: the lemma's enumeration check fails for a plausible wrong count."""
    der = Derivation("wrong count")
    with pytest.raises(StepFailed):
        mm.index_lemma_steps(der, count=count)
    assert not der.assumptions  # a lemma whose check failed is not stated


def test_the_enumeration_check_alone_rejects_a_count_that_passes_the_identity():
    """At m = 2, swapping the counts of 1 and 2 blocks (d (d - 1) and d) still sums to d^2, so the identity
    step passes; only the enumeration catches it."""
    der = Derivation("swapped")

    def swapped(d, b):
        return {1: sp.ff(d, 2), 2: sp.ff(d, 1)}.get(b, sp.ff(d, b))

    with pytest.raises(StepFailed, match="step 2"):
        mm.index_lemma_steps(der, count=swapped, ms=[2])
    assert der.steps[0].status == PROVED


def test_lemma_is_stated_once_and_required():
    der = Derivation("twice")
    assert mm.index_lemma_steps(der) == mm.index_lemma_steps(der) == mm.INDEX_LEMMA
    assert len(der.steps) == 2 and len(der.assumptions) == 1


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mm.expectation(sp.exp(sp.Symbol("x")), {sp.Symbol("x"): {1: 0}}), "expr:"),
        (lambda: mm.expectation(sp.Symbol("x") ** 5, {sp.Symbol("x"): mm.unit_moments(3)}), "moments:"),
        (lambda: mm.component_moment("cauchy", 2), "dist:"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        call()

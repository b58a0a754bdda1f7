"""Moments of sums and products of independent random variables, exactly, with sympy.

The core is :func:`expectation`: for a polynomial in *independent* random symbols,
linearity splits ``E[sum]`` into monomials and independence factors each monomial
``E[prod x_v^a_v] = prod E[x_v^a_v]``, so only each variable's own moments are needed.
That settles the one-term facts a dot-product derivation rests on without sympy.stats
integrals over many variables (``variance()`` of a whole d-term dot product is far too slow).

For ``X = q.k = sum_i q_i k_i`` with independent zero-mean, unit-variance components:

* ``E[X^2] = d`` (all cross terms vanish), and
* ``E[X^4] = d m4q m4k + 3 d (d - 1)``: an index pattern ``(i, j, k, l)`` survives only
  when every index appears at least twice: all four equal (``d`` terms of ``m4q m4k``) or
  two distinct pairs (3 pairings times ``d (d - 1)`` ordered choices). Gaussian components
  (``m4 = 3``) give ``3d^2 + 6d``; Rademacher (``m4 = 1``) give ``3d^2 - 2d``.

The standard error of a sample variance of ``X`` is ``sqrt((E[X^4] - d^2) / N)``.

>>> q, k = sp.symbols("q k", real=True)
>>> m4 = sp.Symbol("m4", positive=True)
>>> expectation((q * k) ** 2, iid([q, k], unit_moments(m4)))
1
>>> d = sp.Symbol("d", positive=True, integer=True)
>>> sp.expand(dot_fourth_moment(d, 3, 3))
3*d**2 + 6*d
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache

import sympy as sp

from derive.engine import Derivation

Var = sp.Function("Var")
Cov = sp.Function("Cov")
Ex = sp.Function("E")


def unit_moments(m4, m3=0) -> dict[int, object]:
    """Raw moments ``{n: E[x^n]}`` of a zero-mean, unit-variance variable with 3rd and 4th
    moments ``m3`` and ``m4`` (numbers or symbols).

    Only ``n = 1..4`` are given, enough for :func:`expectation` of polynomials of degree 4 in
    each variable; a higher power raises there. Gaussian components have ``m4 = 3``, Rademacher
    ``1``, uniform ``9/5`` (see :func:`component_moment`).

    Examples
    --------
    >>> unit_moments(3)
    {1: 0, 2: 1, 3: 0, 4: 3}
    """
    return {1: sp.Integer(0), 2: sp.Integer(1), 3: sp.sympify(m3), 4: sp.sympify(m4)}


def iid(symbols: Iterable[sp.Symbol], moments: Mapping[int, object]) -> dict[sp.Symbol, Mapping[int, object]]:
    """The same moment table for each of ``symbols`` (independent, identically distributed).

    Returns ``{symbol: moments}``, the ``moments`` argument of :func:`expectation`; tables for
    differently distributed groups are joined with ``|``.

    Examples
    --------
    >>> q, k = sp.symbols("q k", real=True)
    >>> mom = iid([q], unit_moments(3)) | iid([k], unit_moments(1))
    >>> expectation(q**4 * k**4, mom)
    3
    """
    return {s: moments for s in symbols}


def expectation(expr, moments: Mapping[sp.Symbol, Mapping[int, object]]):
    """``E[expr]`` for a polynomial ``expr`` in the independent random symbols keyed in ``moments``
    (each maps ``n`` to ``E[x^n]``); other symbols are constants. Raises ValueError naming a
    missing moment or a non-polynomial ``expr``.

    Linearity splits the expanded polynomial into monomials and independence factors each one,
    ``E[c prod x_v^a_v] = c prod E[x_v^a_v]``; the result is expanded. Exact, with no
    ``sympy.stats`` integral.

    Examples
    --------
    >>> q1, q2, k1, k2 = sp.symbols("q1 q2 k1 k2", real=True)
    >>> expectation((q1 * k1 + q2 * k2) ** 2, iid([q1, q2, k1, k2], unit_moments(3)))  # E[(q.k)^2] = d
    2
    >>> expectation(q1**5, iid([q1], unit_moments(3)))
    Traceback (most recent call last):
    ...
    ValueError: moments: E[q1**5] is needed but not given
    """
    gens = list(moments)
    try:
        poly = sp.Poly(sp.expand(expr), *gens)
    except sp.PolynomialError:
        raise ValueError(f"expr: not a polynomial in {gens}: {expr}") from None
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        term = coeff
        for v, a in zip(gens, powers):
            if a:
                if a not in moments[v]:
                    raise ValueError(f"moments: E[{v}**{a}] is needed but not given")
                term *= moments[v][a]
        total += term
    return sp.expand(total)


def dot_fourth_moment(d, m4q, m4k):
    """``E[(q.k)^4]`` for ``d`` i.i.d. zero-mean unit-variance pairs with 4th moments ``m4q``, ``m4k``.

    Returns ``d m4q m4k + 3 d (d - 1)`` unexpanded: an index pattern of ``(q.k)^4`` survives
    only when every index appears at least twice (see the module docstring, and
    :func:`dot_fourth_moment_steps` for the derivation). Holds for any third moments.

    Examples
    --------
    >>> d = sp.Symbol("d", positive=True, integer=True)
    >>> sp.factor(dot_fourth_moment(d, 1, 1))  # Rademacher components
    d*(3*d - 2)
    >>> dot_fourth_moment(64, 3, 3)  # Gaussian, d = 64: 3 d^2 + 6 d
    12672
    """
    return d * m4q * m4k + 3 * d * (d - 1)


def sample_variance_cv(d, m4q, m4k):
    """Per-sample coefficient of variation of ``X^2`` as an estimate of ``Var X = d``:
    ``sqrt(E[X^4] - d^2) / d`` (the ``cv`` of :func:`numeric.stats.samples_for_power`).

    Here ``X = q.k`` and ``E[X^4]`` is :func:`dot_fourth_moment`; the standard error of a
    variance estimate from ``N`` samples is ``cv * d / sqrt(N)``.

    Examples
    --------
    >>> sample_variance_cv(1, 3, 3)  # one Gaussian pair: Var(X^2) = 9 - 1
    2*sqrt(2)
    >>> d = sp.Symbol("d", positive=True, integer=True)
    >>> sp.limit(sample_variance_cv(d, 3, 3), d, sp.oo)
    sqrt(2)
    """
    return sp.sqrt(sp.expand(dot_fourth_moment(d, m4q, m4k) - d**2)) / d


@cache
def component_moment(dist: str, n: int):
    """``E[x^n]`` of a zero-mean, unit-variance component, exactly: gaussian N(0, 1) from its
    moment generating function ``exp(t^2/2)``, rademacher +-1 as a two-point average, uniform
    U(-sqrt 3, sqrt 3) by integrating its density. The 4th moments are 3, 1 and 9/5.

    ``dist`` is one of the names of ``numeric.dotprod.DISTRIBUTIONS`` (the samplers these moments
    describe); another name raises ValueError. Results are cached.

    Examples
    --------
    >>> [component_moment(dist, 4) for dist in ("gaussian", "rademacher", "uniform")]
    [3, 1, 9/5]
    >>> unit_moments(component_moment("uniform", 4), component_moment("uniform", 3))
    {1: 0, 2: 1, 3: 0, 4: 9/5}
    """
    x, t = sp.symbols("x t", real=True)
    if dist == "gaussian":
        return sp.diff(sp.exp(t**2 / 2), t, n).subs(t, 0)
    if dist == "rademacher":
        return sp.Rational((-1) ** n + 1, 2)
    if dist == "uniform":
        a = sp.sqrt(3)
        return sp.simplify(sp.integrate(x**n, (x, -a, a)) / (2 * a))
    raise ValueError(f"dist: unknown {dist!r}; choose from gaussian, rademacher, uniform")


def _pairs(n: int):
    qs, ks = sp.symbols(f"q1:{n + 1}", real=True), sp.symbols(f"k1:{n + 1}", real=True)
    return qs, ks


def dot_variance_steps(der: Derivation, d) -> object:
    """Append to ``der`` the steps ``Var(q.k) = d`` for a symbolic ``d`` (one term by moments,
    then independence and linearity, then exact checks at d = 1..4); return ``Var(q.k)``.

    The claim of Vaswani et al. (2017), Section 3.2.1, footnote 4, behind the ``1/sqrt(d_k)`` of
    scaled dot-product attention (Exercise 13.3). The components have free third and fourth
    moments, so the result holds for any zero-mean, unit-variance distribution. The linearity
    step over a symbolic number of terms is applied in words, so ``der`` ends spot-checked, not
    proved. Raises :class:`derive.engine.StepFailed` if a step fails.

    Examples
    --------
    >>> der = Derivation("Var(q.k)")
    >>> dot_variance_steps(der, sp.Symbol("d_k", positive=True, integer=True))
    d_k
    >>> [s.status for s in der.steps]
    ['proved', 'proved', 'proved', 'spot-checked', 'proved']
    """
    m3q, m3k = sp.symbols("m_3q m_3k", real=True)
    m4q, m4k = sp.symbols("m_4q m_4k", positive=True)
    (q1, q2), (k1, k2) = _pairs(2)
    mom = iid([q1, q2], unit_moments(m4q, m3q)) | iid([k1, k2], unit_moments(m4k, m3k))
    der.eq(Ex(q1 * k1), 0, "independence: E[q_i k_i] = E[q_i] E[k_i] = 0", "expand", computed=expectation(q1 * k1, mom))
    var1 = expectation((q1 * k1) ** 2, mom) - expectation(q1 * k1, mom) ** 2
    der.eq(
        Var(q1 * k1),
        1,
        "Var(q_i k_i) = E[q_i^2] E[k_i^2] - 0^2 = 1 by independence (m_3, m_4 drop out)",
        "expand",
        computed=var1,
    )
    cov = expectation(q1 * k1 * q2 * k2, mom) - expectation(q1 * k1, mom) * expectation(q2 * k2, mom)
    der.eq(
        Cov(q1 * k1, q2 * k2),
        0,
        "distinct terms share no variable, so independence makes them uncorrelated",
        "expand",
        computed=cov,
    )
    i = sp.Symbol("i", integer=True, positive=True)
    q, k = sp.IndexedBase("q"), sp.IndexedBase("k")
    total = sp.Sum(sp.Integer(1), (i, 1, d)).doit()
    der.eq(
        Var(sp.Sum(q[i] * k[i], (i, 1, d))),
        d,
        "linearity: the variance of a sum of uncorrelated terms is the sum of their variances, sum_{i=1}^{d_k} 1 = d_k",
        "expand",
        computed=total,
        rule="Var(sum X_i) = sum Var(X_i) for uncorrelated X_i, over a symbolic number d_k of terms",
    )
    lhs, got = [], []
    for n in range(1, 5):
        qs, ks = _pairs(n)
        x = sum(a * b for a, b in zip(qs, ks))
        lhs.append(Ex(x**2))
        got.append(expectation(x**2, iid(qs, unit_moments(m4q, m3q)) | iid(ks, unit_moments(m4k, m3k))))
    der.eq(
        sp.Matrix(lhs),
        sp.Matrix([1, 2, 3, 4]),
        "exact check: expand E[(q.k)^2] for d_k = 1..4",
        "expand",
        computed=sp.Matrix(got),
    )
    return d


def dot_fourth_moment_steps(der: Derivation, d, m4q, m4k) -> object:
    """Append ``E[(q.k)^4] = d m4q m4k + 3 d (d - 1)`` for a symbolic ``d`` (index patterns summed
    with ``sp.Sum``), with exact checks at d = 1..3; return the formula.

    The count of surviving index patterns is a premise stated in words, so that step is
    spot-checked; the one-term moment and the expansions at d = 1..3 are proved. Raises
    :class:`derive.engine.StepFailed` if a step fails.

    Examples
    --------
    >>> d = sp.Symbol("d_k", positive=True, integer=True)
    >>> der = Derivation("E[(q.k)^4]")
    >>> dot_fourth_moment_steps(der, d, 3, 3)
    3*d_k*(d_k - 1) + 9*d_k
    >>> [s.status for s in der.steps]
    ['proved', 'spot-checked', 'proved']
    """
    (q1,), (k1,) = _pairs(1)
    m3 = sp.Symbol("m_3", real=True)
    one = expectation((q1 * k1) ** 4, iid([q1], unit_moments(m4q, m3)) | iid([k1], unit_moments(m4k, m3)))
    der.eq(Ex((q1 * k1) ** 4), m4q * m4k, "independence: E[(q_i k_i)^4] = E[q_i^4] E[k_i^4]", "expand", computed=one)
    i, j = sp.symbols("i j", integer=True, positive=True)
    patterns = sp.Sum(m4q * m4k, (i, 1, d)) + 3 * sp.Sum(sp.Sum(1, (j, 1, d)) - 1, (i, 1, d))
    formula = dot_fourth_moment(d, m4q, m4k)
    q, k = sp.IndexedBase("q"), sp.IndexedBase("k")
    der.eq(
        Ex(sp.Sum(q[i] * k[i], (i, 1, d)) ** 4),
        formula,
        "expand the 4th power; zero means and independence kill every index pattern with an index seen once: "
        "i=j=k=l gives d_k terms of m_4q m_4k, two distinct pairs give 3 d_k (d_k - 1) terms of 1",
        "expand",
        computed=patterns.doit(),
        rule="the count of index patterns that survive (d_k all-equal, 3 d_k (d_k - 1) paired)",
    )
    lhs, got, want = [], [], []
    for n in range(1, 4):
        qs, ks = _pairs(n)
        x = sum(a * b for a, b in zip(qs, ks))
        lhs.append(Ex(x**4))
        got.append(expectation(x**4, iid(qs, unit_moments(m4q, m3)) | iid(ks, unit_moments(m4k, m3))))
        want.append(formula.subs(d, n))
    der.eq(
        sp.Matrix(lhs),
        sp.Matrix(want),
        "exact check: expand E[(q.k)^4] for d_k = 1..3",
        "expand",
        computed=sp.Matrix(got),
    )
    return formula

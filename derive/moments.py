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

import itertools
from collections.abc import Iterable, Mapping
from functools import cache

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

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


INDEX_LEMMA = "Lemma (index patterns)"
INDEX_LEMMA_TEXT = (
    r"for i.i.d. terms $Y_i = q_i k_i$, $E[(Y_1 + \cdots{} + Y_d)^m] = \sum_P \mathrm{ff}(d, |P|)\,E[P]$ over the set "
    r"partitions $P$ of the $m$ factors, where $E[P]$ is the expectation of the product with one distinct index "
    r"per block of $P$: expanding the power and using linearity of expectation over its $d^m$ index tuples, the "
    r"tuples whose equal-index positions form $P$ number $d (d - 1) \cdots{} (d - |P| + 1) = \mathrm{ff}(d, |P|)$ "
    r"(a distinct value per block), and all have expectation $E[P]$. Not proved by sympy for a symbolic $d$; "
    r"checked by enumeration for $d = 1..6$, $m = 1..4$"
)


def set_partitions(m: int) -> list[tuple[tuple[int, ...], ...]]:
    """The set partitions of the positions ``0..m-1`` of ``m`` factors: the equality patterns of an
    index tuple ``(i_0, ..., i_{m-1})`` (positions in one block hold equal indices, different blocks
    different ones). There are Bell(m) of them: 1, 2, 5, 15 for m = 1..4.

    Examples
    --------
    >>> set_partitions(2)
    [((0, 1),), ((0,), (1,))]
    >>> [len(set_partitions(m)) for m in range(1, 5)]
    [1, 2, 5, 15]
    """
    if m < 1:
        raise ValueError(f"m: need at least one factor, got {m}")
    return [tuple(tuple(b) for b in part) for part in multiset_partitions(list(range(m)))]


def pattern_of(index: tuple) -> tuple[tuple[int, ...], ...]:
    """The equality pattern of an index tuple, as a set partition of its positions (blocks in the
    order :func:`set_partitions` uses: by first position).

    Examples
    --------
    >>> pattern_of((5, 2, 5, 7))
    ((0, 2), (1,), (3,))
    """
    blocks: dict[object, list[int]] = {}
    for pos, v in enumerate(index):
        blocks.setdefault(v, []).append(pos)
    return tuple(tuple(b) for b in blocks.values())


def pattern_counts(d: int, m: int) -> dict[tuple, int]:
    """How many index tuples in ``{1..d}^m`` have each equality pattern, by enumerating all ``d^m``
    of them (exact; for the lemma's check at small ``d``). Patterns no tuple has count 0.

    Examples
    --------
    >>> pattern_counts(3, 2)
    {((0, 1),): 3, ((0,), (1,)): 6}
    """
    counts = dict.fromkeys(set_partitions(m), 0)
    for index in itertools.product(range(d), repeat=m):
        counts[pattern_of(index)] += 1
    return counts


def pattern_expectation(partition, mq: Mapping[int, object], mk: Mapping[int, object]):
    """``E[prod_p q_{c(p)} k_{c(p)}]`` for one index pattern: a distinct pair ``(q_c, k_c)`` per block,
    so the product is ``prod_blocks (q_c k_c)^{|block|}``, evaluated by :func:`expectation` (``mq``,
    ``mk``: the components' moment tables).

    Examples
    --------
    >>> m4 = sp.Symbol("m4", positive=True)
    >>> [pattern_expectation(p, unit_moments(m4), unit_moments(m4)) for p in set_partitions(2)]
    [1, 0]
    >>> pattern_expectation(((0, 1, 2, 3),), unit_moments(m4), unit_moments(3))
    3*m4
    """
    qs, ks = _pairs(len(partition))
    expr = sp.Mul(*[(q * k) ** len(block) for q, k, block in zip(qs, ks, partition)])
    return expectation(expr, iid(qs, mq) | iid(ks, mk))


def pattern_sum(d, m: int, mq: Mapping[int, object], mk: Mapping[int, object], count=sp.ff):
    """``sum_P count(d, |P|) E[P]`` over the set partitions ``P`` of ``m`` factors: ``E[(q.k)^m]`` by
    :data:`INDEX_LEMMA` when ``count`` is the falling factorial (the default), expanded.

    Examples
    --------
    >>> d = sp.Symbol("d", positive=True, integer=True)
    >>> pattern_sum(d, 2, unit_moments(3), unit_moments(3))
    d
    >>> sp.factor(pattern_sum(d, 4, unit_moments(1), unit_moments(1)))
    d*(3*d - 2)
    """
    total = sum(count(d, len(p)) * pattern_expectation(p, mq, mk) for p in set_partitions(m))
    return sp.expand(sp.expand_func(total))


def index_lemma_steps(der: Derivation, count=sp.ff, ds=range(1, 7), ms=range(1, 5)) -> str:
    """State :data:`INDEX_LEMMA` among ``der``'s assumptions and append its two checks; return its
    name (a second call on the same ``der`` only returns the name).

    The checks: the counts ``count(d, b)`` add up to all ``d^m`` tuples, ``sum_P ff(d, |P|) = d^m``
    (proved by sympy for a symbolic ``d``: a polynomial identity, a consistency check, not the lemma),
    and they equal the enumerated counts of :func:`pattern_counts` for every pattern at each ``d``
    in ``ds``, ``m`` in ``ms`` (an exact check: a proof for those ``d`` only). ``count`` is a parameter
    so that a wrong count (say ``d**b``) can be shown to fail: it raises
    :class:`derive.engine.StepFailed`.

    Examples
    --------
    >>> der = Derivation("lemma")
    >>> index_lemma_steps(der)
    'Lemma (index patterns)'
    >>> [s.status for s in der.steps]
    ['proved', 'proved']
    >>> index_lemma_steps(Derivation("wrong count"), count=lambda d, b: d**b)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    derive.engine.StepFailed: step 1 (...) fails: ...
    """
    if any(a.startswith(f"{INDEX_LEMMA}: ") for a in der.assumptions):
        return INDEX_LEMMA
    d = sp.Symbol("d", positive=True, integer=True)
    ms = list(ms)
    sums = [sp.expand(sp.expand_func(sum(count(d, len(p)) for p in set_partitions(m)))) for m in ms]
    der.eq(
        sp.Matrix([sp.Function("S")(m) for m in ms]),
        sp.Matrix([d**m for m in ms]),
        f"the pattern counts of $m = {ms[0]}..{ms[-1]}$ factors add up to all $d^m$ index tuples "
        r"($S(m) = \sum_P \mathrm{ff}(d, |P|)$ over the set partitions $P$ of the $m$ factors equals $d^m$, "
        r"a polynomial identity in $d$)",
        "expand",
        computed=sp.Matrix(sums),
    )
    ds = list(ds)
    gap = sum(
        abs(n - count(k, len(p))) for k in ds for m in ms for p, n in pattern_counts(k, m).items()
    )  # zero exactly when every enumerated count equals count(d, |P|)
    n_patterns = sum(len(set_partitions(m)) for m in ms)
    der.eq(
        sp.Symbol("Delta"),
        0,
        rf"exact check of {INDEX_LEMMA}'s count: $\Delta = \sum_{{d, m, P}} |N_P(d) - \mathrm{{ff}}(d, |P|)|$ "
        rf"over $N_P(d)$, the index tuples in $\{{1..d\}}^m$ with pattern $P$, "
        f"enumerated for $d = {ds[0]}..{ds[-1]}$, "
        f"$m = {ms[0]}..{ms[-1]}$ ({n_patterns} patterns): a proof for these $d$, not for every $d$",
        "exact",
        computed=sp.sympify(gap),
    )
    return der.lemma(INDEX_LEMMA, INDEX_LEMMA_TEXT)


def dot_variance_steps(der: Derivation, d) -> object:
    r"""Append to ``der`` the steps ``Var(q.k) = d`` for a symbolic ``d``: the one-term moments, then
    :data:`INDEX_LEMMA` (stated and checked by :func:`index_lemma_steps`) over the index patterns,
    then exact checks at d = 1..4; return ``Var(q.k)``.

    The claim of Vaswani et al. (2017), Section 3.2.1, footnote 4, behind the ``1/sqrt(d_k)`` of
    scaled dot-product attention (Exercise 13.3). The components have free third and fourth
    moments, so the result holds for any zero-mean, unit-variance distribution. The step over a
    symbolic number of terms is proved by sympy given the lemma, so it is proved from a stated
    lemma; every other step is proved. Raises :class:`derive.engine.StepFailed` if a step fails.

    Examples
    --------
    >>> der = Derivation(r"$\mathrm{Var}(q \cdot k)$")
    >>> dot_variance_steps(der, sp.Symbol("d_k", positive=True, integer=True))
    d_k
    >>> [s.status for s in der.steps]  # doctest: +NORMALIZE_WHITESPACE
    ['proved', 'proved', 'proved', 'proved', 'proved', 'proved from a stated lemma', 'proved']
    >>> der.status
    'proved from a stated lemma'
    """
    m3q, m3k = sp.symbols("m_3q m_3k", real=True)
    m4q, m4k = sp.symbols("m_4q m_4k", positive=True)
    (q1, q2), (k1, k2) = _pairs(2)
    mq, mk = unit_moments(m4q, m3q), unit_moments(m4k, m3k)
    mom = iid([q1, q2], mq) | iid([k1, k2], mk)
    der.eq(
        Ex(q1 * k1), 0, r"independence: $E[q_i k_i] = E[q_i]\,E[k_i] = 0$", "expand", computed=expectation(q1 * k1, mom)
    )
    var1 = expectation((q1 * k1) ** 2, mom) - expectation(q1 * k1, mom) ** 2
    der.eq(
        Var(q1 * k1),
        1,
        r"$\mathrm{Var}(q_i k_i) = E[q_i^2]\,E[k_i^2] - 0^2 = 1$ by independence ($m_3$, $m_4$ drop out)",
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
    lemma = index_lemma_steps(der)
    i = sp.Symbol("i", integer=True, positive=True)
    q, k = sp.IndexedBase("q"), sp.IndexedBase("k")
    der.eq(
        Var(sp.Sum(q[i] * k[i], (i, 1, d))),
        d,
        rf"$\mathrm{{Var}}(X) = E[X^2] - E[X]^2$ with {lemma}: $E[X] = \mathrm{{ff}}(d_k, 1) \cdot E[q_1 k_1] = 0$ and "
        r"$E[X^2] = \mathrm{ff}(d_k, 1) \cdot E[(q_1 k_1)^2] + \mathrm{ff}(d_k, 2) \cdot E[q_1 k_1 q_2 k_2] "
        r"= d_k \cdot 1 + d_k (d_k - 1) \cdot 0$: "
        "the $d_k$ variances of step 2 and the $d_k (d_k - 1)$ covariances of step 3",
        "expand",
        computed=pattern_sum(d, 2, mq, mk) - pattern_sum(d, 1, mq, mk) ** 2,
        lemma=lemma,
    )
    lhs, got = [], []
    for n in range(1, 5):
        qs, ks = _pairs(n)
        x = sum(a * b for a, b in zip(qs, ks))
        lhs.append(Ex(x**2))
        got.append(expectation(x**2, iid(qs, mq) | iid(ks, mk)))
    der.eq(
        sp.Matrix(lhs),
        sp.Matrix([1, 2, 3, 4]),
        r"exact check: expand $E[(q \cdot k)^2]$ for $d_k = 1..4$",
        "expand",
        computed=sp.Matrix(got),
    )
    return d


def dot_fourth_moment_steps(der: Derivation, d, m4q, m4k) -> object:
    r"""Append ``E[(q.k)^4] = d m4q m4k + 3 d (d - 1)`` for a symbolic ``d``: each index pattern's
    expectation (proved), their sum weighted by :data:`INDEX_LEMMA`'s counts (proved from the stated
    lemma), and exact checks at d = 1..3 (proved); return the formula.

    The lemma is stated and checked by :func:`index_lemma_steps` unless ``der`` states it already.
    Raises :class:`derive.engine.StepFailed` if a step fails.

    Examples
    --------
    >>> d = sp.Symbol("d_k", positive=True, integer=True)
    >>> der = Derivation(r"$E[(q \cdot k)^4]$")
    >>> dot_fourth_moment_steps(der, d, 3, 3)
    3*d_k*(d_k - 1) + 9*d_k
    >>> [s.status for s in der.steps]
    ['proved', 'proved', 'proved', 'proved from a stated lemma', 'proved']
    """
    m3 = sp.Symbol("m_3", real=True)
    mq, mk = unit_moments(m4q, m3), unit_moments(m4k, m3)
    lemma = index_lemma_steps(der)
    # one pattern per block-size shape: (4), (3, 1), (2, 2), (2, 1, 1), (1, 1, 1, 1); the rule below is
    # independent of the expectation engine: a block seen once has mean 0, twice E[q^2] E[k^2] = 1
    shapes = {}
    for p in set_partitions(4):
        shapes.setdefault(tuple(sorted((len(b) for b in p), reverse=True)), p)
    by_size = {1: 0, 2: 1, 3: m3 * m3, 4: m4q * m4k}
    (q1, q2, q3, q4), (k1, k2, k3, k4) = _pairs(4)
    y = [q1 * k1, q2 * k2, q3 * k3, q4 * k4]
    der.eq(
        sp.Matrix([Ex(sp.Mul(*[y[c] ** n for c, n in enumerate(shape)])) for shape in shapes]),
        sp.Matrix([sp.Mul(*[by_size[n] for n in shape]) for shape in shapes]),
        r"independence: each index pattern of $(q \cdot k)^4$, by the sizes of its blocks (4; 3,1; 2,2; 2,1,1; "
        r"1,1,1,1), has expectation $\prod_{\text{blocks}} E[q^n]\,E[k^n]$: zero when an index is seen once",
        "expand",
        computed=sp.Matrix([pattern_expectation(p, mq, mk) for p in shapes.values()]),
    )
    formula = dot_fourth_moment(d, m4q, m4k)
    i = sp.Symbol("i", integer=True, positive=True)
    q, k = sp.IndexedBase("q"), sp.IndexedBase("k")
    der.eq(
        Ex(sp.Sum(q[i] * k[i], (i, 1, d)) ** 4),
        formula,
        rf"{lemma} over the 15 index patterns of 4 factors: only $i = j = k = l$ ($\mathrm{{ff}}(d_k, 1) = d_k$ "
        r"tuples of $m_{4q} m_{4k}$) and the 3 pairings into two distinct pairs "
        r"($\mathrm{ff}(d_k, 2) = d_k (d_k - 1)$ tuples each, of 1) survive",
        "expand",
        computed=pattern_sum(d, 4, mq, mk),
        lemma=lemma,
    )
    lhs, got, want = [], [], []
    for n in range(1, 4):
        qs, ks = _pairs(n)
        x = sum(a * b for a, b in zip(qs, ks))
        lhs.append(Ex(x**4))
        got.append(expectation(x**4, iid(qs, mq) | iid(ks, mk)))
        want.append(formula.subs(d, n))
    der.eq(
        sp.Matrix(lhs),
        sp.Matrix(want),
        r"exact check: expand $E[(q \cdot k)^4]$ for $d_k = 1..3$",
        "expand",
        computed=sp.Matrix(got),
    )
    return formula

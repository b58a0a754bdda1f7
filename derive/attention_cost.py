"""Time and memory of one attention head, exact softmax versus FAVOR+, as sympy expressions.

Setting: n queries and n keys of dimension d, values of dimension d, r random features.

Time convention: a matrix product of (a x b) by (b x c) costs 2abc FLOPs (one multiply and one add
per multiply-add, as ``torch.utils.flop_counter`` counts it); every elementwise operation,
comparison (for a max), exp or reduction step costs 1 per element. The terms whose name is in
:data:`MATMUL` are matrix products; they are what a FLOP counter sees, the rest is not counted there.

Memory convention: floats held beyond the inputs Q, K, V and the n x d output, which both methods
need (FAVOR+'s feature matrix W counts); an elementwise step reuses its input's buffer where it can
(softmax in place).
Drawing W (QR of r/d Gaussian d x d blocks, O(r d^2)) does not depend on n and is done once, not
per call, so it is left out of the per-call time.

>>> sp.expand(exact_time())
4*d*n**2 + 6*n**2
>>> favor_matmul_flops()
8*d*n*r + 2*n*r
"""

from __future__ import annotations

import sympy as sp

n, d, r = sp.symbols("n d r", positive=True)


def matmul_flops(a, b, c):
    """FLOPs of an (a x b) @ (b x c) product: 2abc.

    ``abc`` multiply-adds at 2 FLOPs each, the convention of ``torch.utils.flop_counter``.

    Examples
    --------
    >>> matmul_flops(2, 3, 4), matmul_flops(n, d, n)
    (48, 2*d*n**2)
    """
    return 2 * a * b * c


def exact_terms(n=n, d=d) -> dict[str, sp.Expr]:
    """softmax(Q K^T / sqrt(d)) V, term by term.

    Returns ``{term: cost}`` for scaled dot-product attention (Vaswani et al. 2017, eq. (1)) under
    the module's time convention: the two n x n matrix products and ``6 n^2`` elementwise steps.

    Examples
    --------
    >>> exact_terms()["Q K^T"]
    2*d*n**2
    >>> sum(exact_terms().values()) == exact_time()
    True
    """
    return {
        "Q K^T": matmul_flops(n, d, n),
        "scale by 1/sqrt(d)": n**2,
        "softmax: max, subtract, exp, sum, divide": 5 * n**2,
        "A V": matmul_flops(n, n, d),
    }


def favor_terms(n=n, d=d, r=r) -> dict[str, sp.Expr]:
    """D^-1 (phi(Q) (phi(K)^T V)) with phi(x) = exp(W x - |x|^2/2) / sqrt(r), term by term.

    FAVOR+ with positive random features (Choromanski et al. 2021, "Rethinking Attention with
    Performers", arXiv:2009.14794, Section 2), bracketed so that no n x n matrix is formed;
    ``D = diag(phi(Q) (phi(K)^T 1))``. Returns ``{term: cost}`` under the module's time
    convention; the terms named in :data:`MATMUL` are matrix products.

    Examples
    --------
    >>> favor_terms()["phi(Q) (phi(K)^T V)"]
    2*d*n*r
    >>> len(favor_terms()), sorted(k for k in favor_terms() if k in MATMUL)[0]
    (8, 'Q W^T and K W^T')
    """
    return {
        "Q W^T and K W^T": 2 * matmul_flops(n, d, r),
        "scale rows by d^(-1/4), |x|^2 (square, add)": 2 * 3 * n * d,
        "features: subtract |x|^2/2, max, subtract max, exp, 1/sqrt(r)": 2 * 5 * n * r,
        "phi(K)^T V": matmul_flops(r, n, d),
        "phi(Q) (phi(K)^T V)": matmul_flops(n, r, d),
        "key sum phi(K)^T 1": n * r,
        "normaliser phi(Q) (phi(K)^T 1)": matmul_flops(n, r, 1),
        "divide by the normaliser": n * d,
    }


MATMUL = frozenset(
    {"Q K^T", "A V", "Q W^T and K W^T", "phi(K)^T V", "phi(Q) (phi(K)^T V)", "normaliser phi(Q) (phi(K)^T 1)"}
)


def exact_time(n=n, d=d):
    """Time of exact attention: the sum of :func:`exact_terms`, ``4 n^2 d + 6 n^2`` (Theta(n^2 d)).

    Examples
    --------
    >>> exact_time(1024, 64)
    274726912
    """
    return sp.Add(*exact_terms(n, d).values())


def favor_time(n=n, d=d, r=r):
    """Time of FAVOR+: the sum of :func:`favor_terms`, ``8 n r d + 13 n r + 7 n d`` (Theta(n r d)).

    Examples
    --------
    >>> sp.expand(favor_time())
    8*d*n*r + 7*d*n + 13*n*r
    >>> favor_time(1024, 64, 256)  # half of exact_time(1024, 64)
    138084352
    """
    return sp.Add(*favor_terms(n, d, r).values())


def exact_matmul_flops(n=n, d=d):
    """The part of :func:`exact_time` a FLOP counter sees: 4 n^2 d.

    Examples
    --------
    >>> exact_matmul_flops(), exact_matmul_flops(1024, 64)
    (4*d*n**2, 268435456)
    """
    return sp.Add(*(v for k, v in exact_terms(n, d).items() if k in MATMUL))


def favor_matmul_flops(n=n, d=d, r=r):
    """The part of :func:`favor_time` a FLOP counter sees: 8 n r d + 2 n r.

    Examples
    --------
    >>> loglog_slope(favor_matmul_flops()), loglog_slope(exact_matmul_flops())  # linear vs quadratic in n
    (1, 2)
    """
    return sp.Add(*(v for k, v in favor_terms(n, d, r).items() if k in MATMUL))


def exact_memory(n=n, d=d):
    """The n x n score matrix (softmax overwrites it in place).

    Floats held beyond Q, K, V and the output (the module's memory convention).

    Examples
    --------
    >>> exact_memory(), exact_memory(1024)
    (n**2, 1048576)
    """
    return n**2


def favor_memory(n=n, d=d, r=r):
    """W (r d), phi(Q) and phi(K) (n r each), phi(K)^T V (r d), key sum (r), normaliser (n).

    ``2 n r + 2 r d + r + n`` floats, Theta(n r + r d): linear in n.

    Examples
    --------
    >>> favor_memory()
    2*d*r + 2*n*r + n + r
    >>> sp.limit(loglog_slope(favor_memory()), n, sp.oo)  # linear in n for long sequences
    1
    """
    return 2 * n * r + 2 * r * d + r + n


def exact_largest(n=n, d=d):
    """Sizes of the tensors exact attention allocates; the largest is n^2 once n >= d.

    Examples
    --------
    >>> exact_largest(), max(exact_largest(1024, 64))
    ([n**2, d*n], 1048576)
    """
    return [n**2, n * d]


def favor_largest(n=n, d=d, r=r):
    """Sizes of the tensors FAVOR+ allocates; none is n x n. The largest is n r when n, r >= d.

    Examples
    --------
    >>> favor_largest(), max(favor_largest(1024, 64, 256))
    ([n*r, d*r, d*n, n, r], 262144)
    """
    return [n * r, r * d, n * d, n, r]


def crossover(time_exact=None, time_favor=None, var=n):
    """The positive n at which the two costs are equal (they are 0 at n = 0 as well).

    By default the costs are :func:`exact_time` and :func:`favor_time` in ``n``; any two
    expressions in ``var`` can be given. Returns the root, factored; raises ValueError unless
    ``sympy.solve`` finds exactly one nonzero root.

    Examples
    --------
    >>> crossover()
    (8*d*r + 7*d + 13*r)/(2*(2*d + 3))
    >>> crossover(exact_matmul_flops(), favor_matmul_flops())  # counted FLOPs only: about 2r
    r*(4*d + 1)/(2*d)
    """
    te = exact_time() if time_exact is None else time_exact
    tf = favor_time() if time_favor is None else time_favor
    roots = [s for s in sp.solve(sp.Eq(te, tf), var) if s != 0]
    if len(roots) != 1:
        raise ValueError(f"crossover: expected one positive root, got {roots}")
    return sp.factor(roots[0])


def loglog_slope(expr, var=n):
    """d log(expr) / d log(var) = var * expr' / expr: the exponent of var's growth.

    Exactly ``k`` for a monomial in ``var^k``; for a sum, an expression in ``var`` that tends to
    the largest exponent as ``var`` grows. Cancelled, not simplified further.

    Examples
    --------
    >>> loglog_slope(exact_time()), loglog_slope(n**2 + n)
    (2, (2*n + 1)/(n + 1))
    """
    return sp.cancel(var * sp.diff(expr, var) / expr)

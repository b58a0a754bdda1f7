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
    """FLOPs of an (a x b) @ (b x c) product: 2abc."""
    return 2 * a * b * c


def exact_terms(n=n, d=d) -> dict[str, sp.Expr]:
    """softmax(Q K^T / sqrt(d)) V, term by term."""
    return {
        "Q K^T": matmul_flops(n, d, n),
        "scale by 1/sqrt(d)": n**2,
        "softmax: max, subtract, exp, sum, divide": 5 * n**2,
        "A V": matmul_flops(n, n, d),
    }


def favor_terms(n=n, d=d, r=r) -> dict[str, sp.Expr]:
    """D^-1 (phi(Q) (phi(K)^T V)) with phi(x) = exp(W x - |x|^2/2) / sqrt(r), term by term."""
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
    return sp.Add(*exact_terms(n, d).values())


def favor_time(n=n, d=d, r=r):
    return sp.Add(*favor_terms(n, d, r).values())


def exact_matmul_flops(n=n, d=d):
    """The part of :func:`exact_time` a FLOP counter sees: 4 n^2 d."""
    return sp.Add(*(v for k, v in exact_terms(n, d).items() if k in MATMUL))


def favor_matmul_flops(n=n, d=d, r=r):
    """The part of :func:`favor_time` a FLOP counter sees: 8 n r d + 2 n r."""
    return sp.Add(*(v for k, v in favor_terms(n, d, r).items() if k in MATMUL))


def exact_memory(n=n, d=d):
    """The n x n score matrix (softmax overwrites it in place)."""
    return n**2


def favor_memory(n=n, d=d, r=r):
    """W (r d), phi(Q) and phi(K) (n r each), phi(K)^T V (r d), key sum (r), normaliser (n)."""
    return 2 * n * r + 2 * r * d + r + n


def exact_largest(n=n, d=d):
    """Sizes of the tensors exact attention allocates; the largest is n^2 once n >= d."""
    return [n**2, n * d]


def favor_largest(n=n, d=d, r=r):
    """Sizes of the tensors FAVOR+ allocates; none is n x n. The largest is n r when n, r >= d."""
    return [n * r, r * d, n * d, n, r]


def crossover(time_exact=None, time_favor=None, var=n):
    """The positive n at which the two costs are equal (they are 0 at n = 0 as well)."""
    te = exact_time() if time_exact is None else time_exact
    tf = favor_time() if time_favor is None else time_favor
    roots = [s for s in sp.solve(sp.Eq(te, tf), var) if s != 0]
    if len(roots) != 1:
        raise ValueError(f"crossover: expected one positive root, got {roots}")
    return sp.factor(roots[0])


def loglog_slope(expr, var=n):
    """d log(expr) / d log(var) = var * expr' / expr: the exponent of var's growth."""
    return sp.cancel(var * sp.diff(expr, var) / expr)

"""Compute-optimal model size and data under a training budget (Hoffmann et al. 2022), as sympy
expressions (no torch here).

Training a model of ``N`` parameters on ``D`` tokens costs ``C = 6 N D`` FLOPs (2 per parameter
and token forward, 4 backward). The paper's third approach fits the loss
``L(N, D) = E + A / N**alpha + B / D**beta``; minimising it along ``C = 6 N D`` gives
``N_opt = G (C/6)**(beta/(alpha+beta))`` with ``G = (alpha A / (beta B))**(1/(alpha+beta))``
and ``D_opt = (C/6) / N_opt``. The rule of thumb fixes ``D = r N`` (r = 20 tokens per parameter);
the first two approaches give only the exponent ``a`` of ``N_opt ~ C**a``, so they need an anchor,
a compute-optimal model ``(N0, D0)``: ``N_opt = N0 (C / (6 N0 D0))**a``.

>>> HOFFMANN["alpha"], HOFFMANN["beta"]
(17/50, 7/25)
>>> rule_of_thumb(120)
(1, 20)
>>> n, dd = optimum(6)  # at C = 6 the optimum is (G, 1/G)
>>> sp.simplify(n * dd)
1
"""

from __future__ import annotations

import sympy as sp

N, D, C = sp.symbols("N D C", positive=True)
E, A, B, alpha, beta = sp.symbols("E A B alpha beta", positive=True)
FLOPS_PER_PARAM_TOKEN = 6

# The paper's fit (Hoffmann et al. 2022, arXiv:2203.15556, Approach 3), as exact rationals.
HOFFMANN = {
    "E": sp.Rational("1.69"),
    "A": sp.Rational("406.4"),
    "B": sp.Rational("410.7"),
    "alpha": sp.Rational("0.34"),
    "beta": sp.Rational("0.28"),
}
# Exponent a of N_opt ~ C**a from the paper's Table 2 (b = 1 - a since C = 6 N D).
EXPONENT_A = {"approach 1": sp.Rational("0.50"), "approach 2": sp.Rational("0.49"), "approach 3": sp.Rational("0.46")}
# Chinchilla itself: 70B parameters on 1.4T tokens, the paper's compute-optimal model.
CHINCHILLA = {"N": sp.Integer(70 * 10**9), "D": sp.Integer(1400 * 10**9)}


def loss(N=N, D=D, E=E, A=A, B=B, alpha=alpha, beta=beta):
    """The parametric loss E + A / N^alpha + B / D^beta.

    Hoffmann et al. 2022 (arXiv:2203.15556), eq. (2): ``E`` is the irreducible loss, the two power
    laws the excess from a finite model (``N`` parameters) and finite data (``D`` tokens). The
    fitted constants are :data:`HOFFMANN`; all arguments default to the module's positive symbols.

    Examples
    --------
    >>> loss()
    A/N**alpha + B/D**beta + E
    >>> sp.N(loss(CHINCHILLA["N"], CHINCHILLA["D"], **HOFFMANN), 4)  # Chinchilla, by the fit
    1.937
    """
    return E + A * N**-alpha + B * D**-beta


def tokens_for(C=C, N=N):
    """D on the iso-FLOP line C = 6 N D.

    Training costs 6 FLOPs per parameter and token (2 forward, 4 backward; Kaplan et al. 2020,
    Section 2.1), so ``D = C / (6 N)``. Pass sympy numbers for an exact result (Python ints divide
    to a float).

    Examples
    --------
    >>> tokens_for()
    C/(6*N)
    >>> tokens_for(6 * N * D)
    D
    """
    return C / (FLOPS_PER_PARAM_TOKEN * N)


def isoflop_loss(N=N, C=C, E=E, A=A, B=B, alpha=alpha, beta=beta):
    """The loss along the iso-FLOP line: L(N, C / (6N)).

    A function of ``N`` alone at a fixed budget ``C``: the curve whose minimum :func:`optimum`
    gives in closed form (an IsoFLOP profile, in the paper's words).

    Examples
    --------
    >>> isoflop_loss()
    A/N**alpha + B/(C/(6*N))**beta + E
    >>> isoflop_loss(N, 6 * N * D) == loss()
    True
    """
    return loss(N, tokens_for(C, N), E, A, B, alpha, beta)


def optimum(C=C, A=A, B=B, alpha=alpha, beta=beta):
    """The closed-form minimiser (N_opt, D_opt) of L along C = 6 N D (E does not matter).

    Hoffmann et al. 2022, eq. (4): ``N_opt = G (C/6)^(beta/(alpha+beta))`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))``, and ``D_opt = (C/6) / N_opt``. Setting
    ``d/dN isoflop_loss = 0`` gives it; the loss is strictly convex in ``log N``, so it is the minimum.

    Examples
    --------
    >>> fit = [HOFFMANN[k] for k in ("A", "B", "alpha", "beta")]
    >>> n_opt, d_opt = optimum(sp.Integer(10) ** 22, *fit)
    >>> sp.N(n_opt, 3), sp.N(d_opt, 3)  # Exercise 13.18 (b)
    (5.16e+9, 3.23e+11)
    """
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n = G * (C / FLOPS_PER_PARAM_TOKEN) ** (beta / (alpha + beta))
    return n, tokens_for(C, n)


def rule_of_thumb(C=C, r=20):
    """(N, D) with D = r N and 6 N D = C: N = sqrt(C / (6 r)).

    ``r = 20`` tokens per parameter is Chinchilla's own ratio (70B parameters on 1.4T tokens,
    :data:`CHINCHILLA`), the rule of thumb read from Hoffmann et al. 2022.

    Examples
    --------
    >>> rule_of_thumb(120)
    (1, 20)
    >>> [sp.N(x, 3) for x in rule_of_thumb(sp.Integer(10) ** 22)]  # Exercise 13.18 (a)
    [9.13e+9, 1.83e+11]
    """
    n = sp.sqrt(sp.sympify(C) / (FLOPS_PER_PARAM_TOKEN * r))
    return n, r * n


def anchored(C=C, a=None, N0=None, D0=None):
    """(N, D) with N ~ C^a through the anchor (N0, D0): N = N0 (C / (6 N0 D0))^a, D = C / (6N).

    The defaults are the exponent of Approach 1 (:data:`EXPONENT_A`, Hoffmann et al. 2022, Table 2)
    and Chinchilla as the anchor (:data:`CHINCHILLA`); at ``a = 1/2`` it keeps the anchor's
    ``D0 / N0`` at every budget.

    Examples
    --------
    >>> anchored(6 * CHINCHILLA["N"] * CHINCHILLA["D"])  # the anchor's own budget gives the anchor
    (70000000000, 1400000000000)
    >>> n, dd = anchored()
    >>> dd / n
    20
    """
    a = EXPONENT_A["approach 1"] if a is None else sp.sympify(a)
    N0 = CHINCHILLA["N"] if N0 is None else sp.sympify(N0)
    D0 = CHINCHILLA["D"] if D0 is None else sp.sympify(D0)
    n = N0 * (C / (FLOPS_PER_PARAM_TOKEN * N0 * D0)) ** a
    return n, tokens_for(C, n)

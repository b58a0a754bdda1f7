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
    """The parametric loss E + A / N^alpha + B / D^beta."""
    return E + A * N**-alpha + B * D**-beta


def tokens_for(C=C, N=N):
    """D on the iso-FLOP line C = 6 N D."""
    return C / (FLOPS_PER_PARAM_TOKEN * N)


def isoflop_loss(N=N, C=C, E=E, A=A, B=B, alpha=alpha, beta=beta):
    """The loss along the iso-FLOP line: L(N, C / (6N))."""
    return loss(N, tokens_for(C, N), E, A, B, alpha, beta)


def optimum(C=C, A=A, B=B, alpha=alpha, beta=beta):
    """The closed-form minimiser (N_opt, D_opt) of L along C = 6 N D (E does not matter)."""
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n = G * (C / FLOPS_PER_PARAM_TOKEN) ** (beta / (alpha + beta))
    return n, tokens_for(C, n)


def rule_of_thumb(C=C, r=20):
    """(N, D) with D = r N and 6 N D = C: N = sqrt(C / (6 r))."""
    n = sp.sqrt(sp.sympify(C) / (FLOPS_PER_PARAM_TOKEN * r))
    return n, r * n


def anchored(C=C, a=None, N0=None, D0=None):
    """(N, D) with N ~ C^a through the anchor (N0, D0): N = N0 (C / (6 N0 D0))^a, D = C / (6N)."""
    a = EXPONENT_A["approach 1"] if a is None else sp.sympify(a)
    N0 = CHINCHILLA["N"] if N0 is None else sp.sympify(N0)
    D0 = CHINCHILLA["D"] if D0 is None else sp.sympify(D0)
    n = N0 * (C / (FLOPS_PER_PARAM_TOKEN * N0 * D0)) ** a
    return n, tokens_for(C, n)

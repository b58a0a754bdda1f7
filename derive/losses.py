"""The loss a language model starts from: cross-entropy of the uniform guess (no torch here).

A model that has learned nothing predicts every one of ``V`` tokens with probability ``1/V``; its
cross-entropy, whatever the data, is

.. math:: -\\sum_{t=1}^{V} p_t \\log \\frac{1}{V} = \\log V \\quad \\text{nats per token},

so a trained model must get below ``log V`` (4.17 nats for tiny Shakespeare's 65 characters). The
trained exercises (13.21, 13.22) use it as the negative control "the model learned nothing".

>>> uniform_cross_entropy(65)
log(65)
>>> round(float(uniform_cross_entropy(65)), 4)
4.1744
"""

from __future__ import annotations

import sympy as sp

from derive.engine import Derivation

V = sp.Symbol("V", positive=True, integer=True)


def uniform_cross_entropy(vocab=V):
    """Cross-entropy in nats of the uniform prediction over ``vocab`` tokens: ``log(vocab)``.

    Raises ValueError when ``vocab`` is a number below 1.

    >>> uniform_cross_entropy()
    log(V)
    """
    v = sp.sympify(vocab)
    if v.is_number and not (v.is_integer and v >= 1):
        raise ValueError(f"vocab: must be a positive integer, got {vocab!r}")
    return sp.log(v)


def uniform_loss_steps(der: Derivation, vocab: int) -> sp.Expr:
    """Add the steps "the uniform guess has cross-entropy log V" (symbolic V, then ``vocab``) to
    ``der``; return log(vocab), the loss a model that learned nothing stays at.

    >>> der = Derivation("baseline")
    >>> uniform_loss_steps(der, 65), [s.status for s in der.steps]
    (log(65), ['proved', 'proved'])
    """
    t = sp.Symbol("t", positive=True, integer=True)
    ce = -sp.Sum(1 / V * sp.log(1 / V), (t, 1, V))
    der.eq(
        sp.Symbol("CE_uniform"),
        sp.log(V),
        r"predict each of $V$ tokens with probability $1/V$: $-\sum_t (1/V) \log(1/V) = \log V$, whatever the data",
        "simplify",
        computed=ce.doit(),
    )
    value = uniform_cross_entropy(vocab)
    der.eq(
        sp.Symbol(f"CE_uniform(V={vocab})"),
        value,
        f"at $V = {vocab}$: {float(value):.4f} nats",
        "exact",
        computed=sp.log(V).subs(V, vocab),
    )
    return value

"""Exact frequencies of the sinusoidal encoding and of RoPE for a base given as a float (no torch).

Exercises 13.15 and 13.16 take the base ``b`` from the command line as a float; it is read as the
decimal it prints as (``10000.0`` is the integer 10000, ``2.5`` is 5/2), so that the frequencies
``w_i = b^(-2i/d)`` (:func:`derive.rotation.sinusoidal_frequency`) and the values built on them
stay exact sympy numbers, evaluated to as many digits as a check needs.
"""

from __future__ import annotations

import sympy as sp

from derive.rotation import sinusoidal_frequency


def exact_base(base) -> sp.Rational:
    """The base as the exact rational its float prints as (``repr(float(base))`` read by sympy).

    Raises ValueError for a value that is not a finite number.

    >>> exact_base(10000.0), exact_base(2.5), exact_base(0.1)
    (10000, 5/2, 1/10)
    """
    return sp.Rational(repr(float(base)))


def exact_frequencies(d_model: int, base) -> list:
    """The ``d_model / 2`` exact frequencies ``w_i = b^(-2i/d_model)``, ``b`` read by :func:`exact_base`:
    the pair ``(2i, 2i+1)`` of the sinusoidal table, and RoPE's ``theta_i``.

    >>> exact_frequencies(4, 10000.0), exact_frequencies(2, 2.5)
    ([1, 1/100], [1])
    """
    b = exact_base(base)
    return [sinusoidal_frequency(i, d_model, b) for i in range(d_model // 2)]

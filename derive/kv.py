"""The size of a decoder's key/value cache as sympy expressions (no torch here).

Decoding keeps, for every past position and every layer, one key and one value vector of
``d_head`` numbers per key/value head. With ``n_kv`` key/value heads (``n_kv = h`` for multi-head
attention, ``1`` for multi-query, in between for grouped-query attention) and ``s`` bytes per
number, one token costs ``2 L n_kv d_head s`` bytes and a context of ``T`` tokens (batch ``B``)
``B T`` times that. Sizes are positive integers; that ``n_kv`` divides ``h`` is validated on
concrete integers (sympy never checks it).

>>> bytes_per_token()
2*L*d_head*h_kv*s
>>> bytes_per_token(80, 64, 128, dtype_bytes("fp16"))
2621440
>>> cache_bytes(32 * 1024, 80, 64, 128, 2) == 80 * 2**30  # 80 GiB for a 32K context
True
>>> savings(h, 1)  # multi-query attention holds h times less
h
"""

from __future__ import annotations

import sympy as sp

from derive.counts import L, _check_divides, _int_or_expr, h, h_kv

d_head, s, T, B = sp.symbols("d_head s T B", positive=True, integer=True)

# Bytes per stored number. fp8 is one byte whatever the format (e4m3 or e5m2); int8 is a quantised
# cache whose per-block scales are not counted here.
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(name: str) -> int:
    """Bytes per number of a cache dtype named as in :data:`DTYPE_BYTES`.

    Raises ValueError for another name.

    Examples
    --------
    >>> dtype_bytes("bf16"), dtype_bytes("fp8")
    (2, 1)
    >>> dtype_bytes("fp64")
    Traceback (most recent call last):
    ...
    ValueError: dtype: unknown 'fp64'; choose from fp32, fp16, bf16, fp8, int8
    """
    if name not in DTYPE_BYTES:
        raise ValueError(f"dtype: unknown {name!r}; choose from {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


def bytes_per_token(L=L, n_kv=h_kv, d_head=d_head, s=s):
    """K and V (the factor 2), in each of L layers, n_kv heads of d_head numbers, s bytes each.

    Returns ``2 L n_kv d_head s`` bytes per cached position (per sequence). Raises ValueError for a
    concrete size that is not a positive integer.

    Examples
    --------
    >>> bytes_per_token()
    2*L*d_head*h_kv*s
    >>> bytes_per_token(32, 8, 128, dtype_bytes("bf16"))  # Mistral-7B: 128 KiB per token
    131072
    """
    return (
        2
        * _int_or_expr("layers", L)
        * _int_or_expr("kv_heads", n_kv)
        * _int_or_expr("head_dim", d_head)
        * (_int_or_expr("bytes", s))
    )


def cache_bytes(T=T, L=L, n_kv=h_kv, d_head=d_head, s=s, batch=1):
    """A cache holding T positions for each of ``batch`` sequences.

    Returns ``batch * T * bytes_per_token(L, n_kv, d_head, s)`` in bytes (Exercise 13.14).

    Examples
    --------
    >>> cache_bytes()
    2*L*T*d_head*h_kv*s
    >>> cache_bytes(4096, 32, 8, 128, 2, batch=8) == 4 * 2**30  # 8 sequences of 4K: 4 GiB
    True
    """
    return _int_or_expr("batch", batch) * _int_or_expr("context", T) * bytes_per_token(L, n_kv, d_head, s)


def savings(h=h, n_kv=h_kv):
    """How many times less a cache with n_kv key/value heads holds than multi-head attention
    (n_kv = h) at the same L, d_head, dtype and context: h / n_kv.

    ``n_kv = 1`` is multi-query attention (Shazeer 2019, arXiv:1911.02150), ``1 < n_kv < h``
    grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245); Exercise 13.23. Raises
    ValueError when concrete ``n_kv`` does not divide ``h``.

    Examples
    --------
    >>> savings()
    h/h_kv
    >>> savings(12, 1), savings(12, 4)
    (12, 3)
    """
    h, n_kv = _int_or_expr("heads", h), _int_or_expr("kv_heads", n_kv)
    _check_divides("kv_heads", n_kv, "heads", h)
    return sp.cancel(bytes_per_token(n_kv=h) / bytes_per_token(n_kv=n_kv))

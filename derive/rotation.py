"""Rotations and positional encodings as sympy expressions (no torch here).

Building blocks for Exercises 13.15, 13.16, 13.26 and 13.27. Angles are in radians; a block
``rot2(t)`` turns a column vector counter-clockwise by ``t``. The layouts match
``models.positional``: the sinusoidal PE stores the pair ``(sin, cos)`` of each frequency in
dims (2i, 2i+1); RoPE rotates dims (2i, 2i+1) ("interleaved") or (i, i + dim/2) ("half").

>>> import sympy as sp
>>> a, b = sp.symbols("a b", real=True)
>>> rot2(a)
Matrix([
[cos(a), -sin(a)],
[sin(a),  cos(a)]])
>>> sp.simplify(rot2(a).T * rot2(b) - rot2(b - a)) == sp.zeros(2, 2)
True

Exercise 13.15 (d_model = 4): PE(0, 0), PE(0, 1), PE(1, 0), PE(1, 1).

>>> pe = [pe_vector(p, [sinusoidal_frequency(i, 4) for i in range(2)]) for p in (0, 1)]
>>> [pe[0][0], pe[0][1], pe[1][0], pe[1][1]]
[0, 1, sin(1), cos(1)]

Exercise 13.16: the RoPE block on (q_0, q_1) at position m with omega_0 = 1.

>>> m = sp.Symbol("m", real=True)
>>> rope_matrix(m, [1])
Matrix([
[cos(m), -sin(m)],
[sin(m),  cos(m)]])
"""

from __future__ import annotations

import sympy as sp


def rot2(theta) -> sp.Matrix:
    """The 2x2 rotation by ``theta``: [[cos, -sin], [sin, cos]].

    Counter-clockwise on column vectors, ``theta`` in radians (a number or a sympy expression).
    ``rot2(a).T == rot2(-a)`` and ``rot2(a) * rot2(b) == rot2(a + b)`` (after ``simplify``).

    Examples
    --------
    >>> rot2(sp.pi / 2)
    Matrix([
    [0, -1],
    [1,  0]])
    """
    return sp.Matrix([[sp.cos(theta), -sp.sin(theta)], [sp.sin(theta), sp.cos(theta)]])


def block_diag_rotation(thetas) -> sp.Matrix:
    """diag(rot2(t_0), rot2(t_1), ...), a (2n, 2n) matrix.

    Block ``i`` rotates dims (2i, 2i+1) by ``thetas[i]``: the "interleaved" RoPE layout
    (:func:`rope_matrix` with the angles ``pos * theta_i``).

    Examples
    --------
    >>> block_diag_rotation([0, sp.pi / 2])
    Matrix([
    [1, 0, 0,  0],
    [0, 1, 0,  0],
    [0, 0, 0, -1],
    [0, 0, 1,  0]])
    """
    return sp.diag(*[rot2(t) for t in thetas])


def sinusoidal_frequency(i, d_model, base=10000):
    """w_i = base**(-2i/d_model), exact (a sympy Rational power when the inputs are numbers).

    The angular frequency of pair ``i`` of the sinusoidal encoding, ``PE(pos, 2i) = sin(pos /
    10000^(2i/d_model))`` (Vaswani et al. 2017, Section 3.5), and RoPE's ``theta_i`` (Su et al.
    2021, RoFormer, arXiv:2104.09864, Section 3.2, counting i from 0).

    Examples
    --------
    >>> sinusoidal_frequency(1, 4), sinusoidal_frequency(0, 512)
    (1/100, 1)
    >>> sinusoidal_frequency(sp.Symbol("i"), sp.Symbol("d"))
    10000**(-2*i/d)
    """
    return sp.sympify(base) ** (-2 * sp.sympify(i) / sp.sympify(d_model))


def pe_pair(pos, omega) -> sp.Matrix:
    """The PE entries (PE[pos, 2i], PE[pos, 2i+1]) = (sin(pos w), cos(pos w)) as a column.

    The sinusoidal encoding of Vaswani et al. (2017), Section 3.5, for one frequency ``omega``.

    Examples
    --------
    >>> pe_pair(0, sinusoidal_frequency(0, 4)).T  # position 0: (sin 0, cos 0)
    Matrix([[0, 1]])
    """
    return sp.Matrix([sp.sin(pos * omega), sp.cos(pos * omega)])


def pe_vector(pos, omegas) -> sp.Matrix:
    """The whole PE column for frequencies ``omegas``: (sin, cos, sin, cos, ...).

    With ``omegas = [sinusoidal_frequency(i, d_model) for i in range(d_model // 2)]`` it is row
    ``pos`` of the table of ``models.positional`` (Exercise 13.15).

    Examples
    --------
    >>> pe_vector(1, [sinusoidal_frequency(i, 4) for i in range(2)]).T
    Matrix([[sin(1), cos(1), sin(1/100), cos(1/100)]])
    """
    return sp.Matrix.vstack(*[pe_pair(pos, w) for w in omegas])


def pe_shift_block(k, omega) -> sp.Matrix:
    """M_k for one frequency: PE pair at pos + k = pe_shift_block(k, w) * PE pair at pos.
    In the (sin, cos) layout it is [[cos kw, sin kw], [-sin kw, cos kw]] = rot2(-k w).

    It depends on the offset ``k`` and not on ``pos``: the linear map between positions that
    Vaswani et al. (2017, Section 3.5) give as the reason for sinusoids (Exercise 13.26).

    Examples
    --------
    >>> k, w, pos = sp.symbols("k omega pos", real=True)
    >>> sp.simplify(pe_shift_block(k, w) * pe_pair(pos, w) - pe_pair(pos + k, w))
    Matrix([
    [0],
    [0]])
    """
    return rot2(-k * omega)


def pe_shift_matrix(k, omegas) -> sp.Matrix:
    """M_k for all frequencies: block-diagonal, one ``pe_shift_block`` per frequency.

    ``pe_vector(pos + k, omegas) == pe_shift_matrix(k, omegas) * pe_vector(pos, omegas)``, and
    the matrix is orthogonal (a rotation per pair).

    Examples
    --------
    >>> pe_shift_matrix(1, [sp.pi / 2, 0])
    Matrix([
    [ 0, 1, 0, 0],
    [-1, 0, 0, 0],
    [ 0, 0, 1, 0],
    [ 0, 0, 0, 1]])
    """
    return sp.diag(*[pe_shift_block(k, w) for w in omegas])


def rope_matrix(pos, thetas, convention: str = "interleaved") -> sp.Matrix:
    """R_pos, the RoPE rotation for frequencies ``thetas`` in the given dim layout.

    Su et al. 2021 (RoFormer, arXiv:2104.09864), Section 3.2: a (2n, 2n) orthogonal matrix that
    rotates pair ``i`` by ``pos * thetas[i]``; pairs are dims (2i, 2i+1) for ``"interleaved"`` and
    (i, i + n) for ``"half"``, the layouts of ``models.positional`` (Exercise 13.16). Because
    ``R_m^T R_n = R_(n-m)``, a rotated query and key meet only through ``n - m`` (Exercise 13.27).
    Raises ValueError for another ``convention``.

    Examples
    --------
    >>> from derive.engine import Derivation
    >>> m, n = sp.symbols("m n", real=True)
    >>> R = lambda pos: rope_matrix(pos, [1, 2])
    >>> Derivation("RoPE").eq(R(m).T * R(n), R(n - m), "$R_m^T R_n = R_{n-m}$", strategy="trig").status
    'proved'
    >>> rope_matrix(m, [1], "half") == rot2(m)  # one pair: the two layouts agree
    True
    """
    if convention == "interleaved":
        return block_diag_rotation([pos * t for t in thetas])
    if convention != "half":
        raise ValueError(f"convention: must be 'interleaved' or 'half', got {convention!r}")
    h = len(thetas)
    r = sp.zeros(2 * h, 2 * h)
    for i, t in enumerate(thetas):  # pair (i, i + h)
        c, s = sp.cos(pos * t), sp.sin(pos * t)
        r[i, i], r[i, i + h], r[i + h, i], r[i + h, i + h] = c, -s, s, c
    return r


def half_permutation(dim: int) -> sp.Matrix:
    """P with (P x)[2i] = x[i], (P x)[2i+1] = x[i + dim/2]: takes the "half" layout to "interleaved".

    A permutation matrix, so ``P^-1 = P^T`` and ``P R_half P^T = R_interleaved`` for the same
    frequencies (:func:`rope_matrix`). Raises ValueError unless ``dim`` is positive and even.

    Examples
    --------
    >>> half_permutation(4) * sp.Matrix(sp.symbols("x0:4"))
    Matrix([
    [x0],
    [x2],
    [x1],
    [x3]])
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim: must be positive and even, got {dim}")
    p = sp.zeros(dim, dim)
    for i in range(dim // 2):
        p[2 * i, i], p[2 * i + 1, i + dim // 2] = 1, 1
    return p


def generic_matrix(name: str, rows: int = 2, cols: int = 2) -> sp.Matrix:
    """A matrix of independent real symbols name_rc, for statements about any matrix.

    The entries are ``Symbol(f"{name}_{r}{c}", real=True)``, so an identity proved for it holds
    for every real matrix of that shape (as that block-diagonal matrices multiply block by block,
    in Exercises 13.26 and 13.27).

    Examples
    --------
    >>> generic_matrix("W")
    Matrix([
    [W_00, W_01],
    [W_10, W_11]])
    """
    return sp.Matrix(rows, cols, lambda r, c: sp.Symbol(f"{name}_{r}{c}", real=True))

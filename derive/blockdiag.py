"""Block-diagonal matrices work block by block: the two identities that lift a statement about one
2x2 rotation block to the whole d x d map, in Exercises 13.26 (the PE offset map) and 13.27 (RoPE).

Each function adds one step to a :class:`~derive.engine.Derivation`: the identity is displayed with
sympy's block matrices of matrix symbols, and checked with 2x2 blocks of independent real symbols
(:func:`derive.rotation.generic_matrix`), so it holds for any real blocks. No torch here.
"""

from __future__ import annotations

import sympy as sp

from derive.engine import Derivation, Step
from derive.rotation import generic_matrix


def _for_any_blocks(der: Derivation, shapes: dict, shown, computed, zero, reason: str) -> Step:
    """Add ``shown(symbols) = zero``, checked as ``computed(generic matrices) == zero`` by expansion."""
    symbols = [sp.MatrixSymbol(name, *shape) for name, shape in shapes.items()]
    generic = [generic_matrix(name, *shape) for name, shape in shapes.items()]
    return der.eq(shown(*symbols), zero, reason, strategy="expand", computed=computed(*generic))


def acts_blockwise(der: Derivation) -> Step:
    """Add ``diag(A, B) [x; y] - [A x; B y] = 0`` for any 2x2 blocks A, B and 2-vectors x, y.

    >>> acts_blockwise(Derivation("blocks")).status
    'proved'
    """
    return _for_any_blocks(
        der,
        {"A": (2, 2), "B": (2, 2), "x": (2, 1), "y": (2, 1)},
        lambda a, b, u, v: sp.BlockDiagMatrix(a, b) * sp.BlockMatrix([[u], [v]]) - sp.BlockMatrix([[a * u], [b * v]]),
        lambda a, b, x, y: sp.diag(a, b) * sp.Matrix.vstack(x, y) - sp.Matrix.vstack(a * x, b * y),
        sp.zeros(4, 1),
        r"a block-diagonal matrix acts block by block (any $2 \times 2$ blocks $A$, $B$)",
    )


def transpose_product_blockwise(der: Derivation) -> Step:
    """Add ``diag(A, B)^T diag(C, D) - diag(A^T C, B^T D) = 0`` for any 2x2 blocks A, B, C, D.

    >>> transpose_product_blockwise(Derivation("blocks")).status
    'proved'
    """
    return _for_any_blocks(
        der,
        {s: (2, 2) for s in "ABCD"},
        lambda a, b, c, e: sp.BlockDiagMatrix(a, b).T * sp.BlockDiagMatrix(c, e) - sp.BlockDiagMatrix(a.T * c, b.T * e),
        lambda a, b, c, e: sp.diag(a, b).T * sp.diag(c, e) - sp.diag(a.T * c, b.T * e),
        sp.zeros(4, 4),
        r"block-diagonal matrices: transpose and product go block by block "
        r"(any $2 \times 2$ blocks $A$, $B$, $C$, $D$)",
    )

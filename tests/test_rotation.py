"""derive.rotation: the sympy building blocks for Exercises 13.15, 13.16, 13.26 and 13.27."""

import doctest
import subprocess
import sys

import pytest
import sympy as sp

import derive.rotation as rot
from derive.rotation import (
    block_diag_rotation,
    half_permutation,
    pe_pair,
    pe_shift_block,
    pe_shift_matrix,
    pe_vector,
    rope_matrix,
    rot2,
    sinusoidal_frequency,
)

a, b, pos, k, m = sp.symbols("a b pos k m", real=True)
ths = sp.symbols("theta_0:3", positive=True)


def is_zero(e) -> bool:
    return sp.simplify(sp.expand(e, trig=True)) == sp.zeros(*e.shape)


def test_doctests_pass():
    res = doctest.testmod(rot)
    assert res.attempted >= 4 and res.failed == 0


def test_imports_without_torch():
    code = "import sys, derive.rotation; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rot2_is_a_rotation_group():
    assert is_zero(rot2(a) * rot2(b) - rot2(a + b))
    assert is_zero(rot2(a).T * rot2(a) - sp.eye(2))
    assert sp.simplify(rot2(a).det()) == 1
    assert rot2(0) == sp.eye(2)


def test_block_diag_rotation_shape_and_blocks():
    R = block_diag_rotation(ths)
    assert R.shape == (6, 6)
    assert R[2:4, 2:4] == rot2(ths[1]) and R[0:2, 2:4] == sp.zeros(2, 2)


def test_pe_shift_is_the_offset_map():
    assert is_zero(pe_shift_block(k, a) * pe_pair(pos, a) - pe_pair(pos + k, a))
    assert is_zero(pe_shift_matrix(k, ths) * pe_vector(pos, ths) - pe_vector(pos + k, ths))
    assert sp.diff(pe_shift_matrix(k, ths), pos) == sp.zeros(6, 6)


def test_exercise_13_15_values():
    ws = [sinusoidal_frequency(i, 4) for i in range(2)]
    assert ws == [1, sp.Rational(1, 100)]
    assert list(pe_vector(0, ws)) == [0, 1, 0, 1]
    assert list(pe_vector(1, ws)) == [sp.sin(1), sp.cos(1), sp.sin(sp.Rational(1, 100)), sp.cos(sp.Rational(1, 100))]


def test_exercise_13_16_block():
    assert rope_matrix(m, [1]) == sp.Matrix([[sp.cos(m), -sp.sin(m)], [sp.sin(m), sp.cos(m)]])


def test_half_layout_is_a_permutation_of_interleaved():
    P = half_permutation(6)
    assert P * P.T == sp.eye(6)
    assert is_zero(P * rope_matrix(m, ths, "half") * P.T - rope_matrix(m, ths, "interleaved"))


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="^convention:"):
        rope_matrix(m, ths, "split")
    with pytest.raises(ValueError, match="^dim:"):
        half_permutation(3)

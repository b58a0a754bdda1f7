"""derive.kv: the KV-cache byte formulas, sympy only."""

import subprocess
import sys

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derive import kv
from derive.counts import L, h, h_kv


def test_no_torch_import():
    code = "import sys, derive.kv; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_symbolic_forms():
    assert sp.expand(kv.bytes_per_token() - 2 * L * h_kv * kv.d_head * kv.s) == 0
    assert sp.expand(kv.cache_bytes() - kv.T * kv.bytes_per_token()) == 0
    assert sp.simplify(kv.savings() - h / h_kv) == 0
    assert kv.savings(h, 1) == h


@given(
    st.integers(1, 200),
    st.integers(1, 128).flatmap(
        lambda n: st.tuples(st.just(n), st.sampled_from([k for k in range(1, n + 1) if n % k == 0]))
    ),
    st.integers(1, 512),
    st.sampled_from(sorted(kv.DTYPE_BYTES)),
    st.integers(1, 10**6),
    st.integers(1, 8),
)
def test_numbers_match_plain_arithmetic(layers, hk, hd, dtype, T, batch):
    heads, n_kv = hk
    size = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}[dtype]
    assert kv.bytes_per_token(layers, n_kv, hd, kv.dtype_bytes(dtype)) == 2 * layers * n_kv * hd * size
    assert kv.cache_bytes(T, layers, n_kv, hd, size, batch) == batch * T * 2 * layers * n_kv * hd * size
    assert kv.savings(heads, n_kv) == heads // n_kv


def test_exercise_values():
    assert kv.bytes_per_token(80, 64, 128, 2) == 2_621_440
    assert kv.cache_bytes(32768, 80, 64, 128, 2) == 80 * 2**30
    assert kv.savings(64, 8) == 8 and kv.savings(12, 1) == 12


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kv.dtype_bytes("fp64"), "dtype"),
        (lambda: kv.bytes_per_token(0, 1, 1, 2), "layers"),
        (lambda: kv.bytes_per_token(1, -1, 1, 2), "kv_heads"),
        (lambda: kv.bytes_per_token(1, 1, 2.5, 2), "head_dim"),
        (lambda: kv.cache_bytes(0, 1, 1, 1, 2), "context"),
        (lambda: kv.savings(12, 5), "kv_heads"),
    ],
)
def test_bad_input_names_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()

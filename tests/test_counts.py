"""derive.counts: exact parameter and FLOP formulas, sympy only."""

import subprocess
import sys

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derive import counts
from derive.counts import L, V, d, h, h_kv, n_ctx


def divisor_pair(max_d=512):
    """(d, h) with h dividing d."""
    return st.integers(1, max_d).flatmap(lambda n: st.tuples(st.just(n), st.sampled_from(counts_divisors(n))))


def counts_divisors(n):
    return [k for k in range(1, n + 1) if n % k == 0]


def test_no_torch_import():
    code = "import sys, derive.counts; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_attention_symbolic():
    assert sp.expand(counts.attention_params() - (4 * d**2 + 4 * d)) == 0
    assert sp.expand(counts.attention_params(bias=False) - 4 * d**2) == 0
    assert sp.diff(counts.attention_params(), h) == 0
    assert sp.simplify(h * counts.attention_head_params() - 3 * d**2) == 0
    assert sp.simplify(counts.head_dim() - d / h) == 0
    gqa = counts.attention_params(bias=False, n_kv=h_kv)
    assert sp.simplify(gqa - (2 * d**2 + 2 * d * h_kv * d / h)) == 0
    assert sp.simplify(gqa.subs(h_kv, h) - 4 * d**2) == 0


def test_mlp_norm_embedding():
    assert sp.expand(counts.mlp_params() - (8 * d**2 + 5 * d)) == 0
    assert sp.expand(counts.mlp_params(bias=False) - 8 * d**2) == 0
    assert sp.expand(counts.mlp_params(bias=False, kind="swiglu") - 8 * d**2) == 0  # d_ff = 8d/3
    ff = counts.d_ff
    assert sp.expand(counts.mlp_params(d_ff=ff, bias=False, kind="swiglu") - 3 * d * ff) == 0
    assert sp.expand(counts.mlp_params(d_ff=ff, kind="swiglu") - (3 * d * ff + 2 * ff + d)) == 0
    assert counts.norm_params() == 2 * d
    assert counts.norm_params(bias=False) == d
    assert counts.norm_params(kind="rmsnorm") == d
    assert sp.expand(counts.embedding_params() - (V * d + n_ctx * d)) == 0
    for pos in ("sinusoidal", "rope", "none"):
        assert counts.embedding_params(pos=pos) == V * d


def test_block_and_model_totals():
    assert sp.expand(counts.block_params() - (12 * d**2 + 13 * d)) == 0  # 4d^2+4d + 8d^2+5d + 2*2d
    assert sp.expand(L * counts.block_matmul_params() - 2 * d * L * (2 * d + 4 * d)) == 0  # Kaplan's N
    tied = counts.model_params()
    untied = counts.model_params(tie=False)
    assert sp.expand(untied - tied - V * d) == 0
    assert sp.expand(counts.model_params(prenorm=False) - tied + 2 * d) == 0  # no final norm
    assert sp.expand(tied - counts.non_embedding_params() - (V * d + n_ctx * d)) == 0


def test_flops_conventions():
    N = sp.Symbol("N", positive=True)
    kaplan = counts.forward_flops_per_token(N)
    assert sp.expand(kaplan - (2 * N + 2 * L * n_ctx * d + 2 * d * V)) == 0
    dense = counts.attention_flops_per_token(attention="dense")
    assert sp.simplify(dense / counts.attention_flops_per_token() - 2) == 0
    assert counts.attention_flops_per_token(attention="none") == 0
    assert sp.expand(counts.forward_flops_per_token(N, attention="none") - 2 * N - 2 * d * V) == 0


@given(divisor_pair(), st.booleans())
def test_attention_count_is_h_free_integer(dh, bias):
    dd, hh = dh
    got = counts.attention_params(dd, hh, bias)
    assert got.is_Integer
    assert int(got) == 4 * dd * dd + (4 * dd if bias else 0)
    assert int(counts.attention_head_params(dd, hh)) * hh == 3 * dd * dd


@given(
    divisor_pair(256).flatmap(lambda p: st.tuples(st.just(p), st.sampled_from(counts_divisors(p[1])))), st.booleans()
)
def test_gqa_count(pk, bias):
    (dd, hh), kv = pk
    dk = dd // hh
    got = counts.attention_params(dd, hh, bias, n_kv=kv)
    want = 2 * dd * dd + 2 * dd * kv * dk + ((2 * dd + 2 * kv * dk) if bias else 0)
    assert got.is_Integer and int(got) == want
    assert (int(got) == counts.attention_params(dd, hh, bias)) == (kv == hh)


@given(
    st.integers(1, 300),
    st.integers(1, 16).flatmap(lambda n: st.tuples(st.just(n), st.sampled_from(counts_divisors(n)))),
    st.integers(1, 64),
    st.booleans(),
)
def test_head_size_other_than_d_over_h(dd, hk, dh, bias):
    """A given d_head: Q is d x h d_head, K and V d x kv d_head, the output projection h d_head x d;
    h need not divide d."""
    hh, kv = hk
    got = counts.attention_params(dd, hh, bias, n_kv=kv, d_head=dh)
    want = 2 * dd * hh * dh + 2 * dd * kv * dh + ((hh * dh + 2 * kv * dh + dd) if bias else 0)
    assert got.is_Integer and int(got) == want
    assert int(counts.attention_head_params(dd, hh, d_head=dh)) == 3 * dd * dh
    if dd % hh == 0:  # d_head = d / h is the default
        assert counts.attention_params(dd, hh, bias, kv, dd // hh) == counts.attention_params(dd, hh, bias, kv)


def test_head_size_through_the_totals():
    dh = sp.Symbol("d_head", positive=True, integer=True)
    att = counts.attention_params(bias=False, n_kv=h_kv, d_head=dh)
    assert sp.expand(att - (2 * d * h * dh + 2 * d * h_kv * dh)) == 0
    assert sp.simplify(att.subs(dh, d / h) - counts.attention_params(bias=False, n_kv=h_kv)) == 0
    total = counts.model_params(d_head=dh)
    assert sp.expand(total - counts.model_params() - L * (counts.attention_params(d_head=dh) - 4 * d**2 - 4 * d)) == 0
    assert counts.attention_params(3072, 16, bias=False, d_head=256) == 50_331_648  # Gemma-7B
    gemma = counts.model_params(
        28, 3072, 16, 256000, 1, False, "swiglu", "rmsnorm", None, 24576, True, True, "rope", 256
    )
    assert gemma == 8_537_680_896
    llama2 = counts.model_params(80, 8192, 64, 32000, 1, False, "swiglu", "rmsnorm", 8, 28672, True, False, "rope")
    assert llama2 == 68_976_648_192


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: counts.attention_params(64, 5), "h"),
        (lambda: counts.attention_params(64, 4, n_kv=3), "n_kv"),
        (lambda: counts.attention_params(0, 1), "d"),
        (lambda: counts.attention_params(sp.Rational(5, 2), 1), "d"),
        (lambda: counts.mlp_params(kind="relu"), "kind"),
        (lambda: counts.norm_params(kind="batchnorm"), "kind"),
        (lambda: counts.embedding_params(pos="alibi"), "pos"),
        (lambda: counts.attention_flops_per_token(attention="half"), "attention"),
        (lambda: counts.mlp_params(8, d_ff=-1), "d_ff"),
        (lambda: counts.attention_params(64, 4, d_head=0), "d_head"),
        (lambda: counts.attention_params(64, 4, d_head=sp.Rational(3, 2)), "d_head"),
        (lambda: counts.attention_params(64, 5, d_head=16, n_kv=2), "n_kv"),
    ],
)
def test_bad_input_names_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()

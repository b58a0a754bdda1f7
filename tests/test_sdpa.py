"""Exercises 13.19 and 13.20: attention by hand equals torch's, and the GPT's two attention paths agree."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from models.attention import scaled_dot_product_attention as by_hand
from proofs import sdpa_by_hand, sdpa_switch


@pytest.mark.slow
@pytest.mark.parametrize("mod", [sdpa_by_hand, sdpa_switch])
def test_derivation_proved_check_passes_controls_rejected(mod):
    assert mod.derivation().all_proved
    res = mod.check(device="cpu", seed=0)
    assert res.passed and res.controls and all(not c.agrees for c in res.controls)


def test_fewer_than_ten_lines():
    assert sdpa_by_hand.line_count() < 10


@given(
    st.lists(st.integers(1, 3), max_size=2),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 8),
    st.sampled_from(["none", "bool", "additive", "causal"]),
    st.integers(0, 2**16),
)
def test_matches_torch_float64(batch, L, S, dk, mask, seed):
    """L and S differ freely, also under is_causal (top-left aligned: query i sees keys j <= i)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*batch, n, dk, generator=g, dtype=torch.float64) for n in (L, S, S))
    kw = {}
    if mask == "bool":
        keep = torch.rand(*batch, L, S, generator=g) < 0.5
        keep[..., 0] = True
        kw["attn_mask"] = keep
    elif mask == "additive":
        kw["attn_mask"] = torch.randn(L, S, generator=g, dtype=torch.float64)
    elif mask == "causal":
        kw["is_causal"] = True
    torch.testing.assert_close(
        by_hand(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw), rtol=0, atol=1e-12
    )


def unguarded(q, k, v, attn_mask):
    """The implementation before the fully-masked-row guard: a plain softmax, 0/0 = NaN on such a row."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return s.softmax(dim=-1) @ v


@pytest.mark.parametrize("additive", [False, True])
def test_smallest_fully_masked_row_gives_zeros(additive):
    """Regression: one query, one key, masked. torch 2.13 gives [0, 0]; the plain softmax gave NaN."""
    q = k = v = torch.ones(1, 1, 1, 2)
    mask = torch.tensor([[float("-inf")]]) if additive else torch.tensor([[False]])
    want = torch.zeros(1, 1, 1, 2)
    assert torch.equal(F.scaled_dot_product_attention(q, k, v, attn_mask=mask), want)
    with sdpa_kernel(SDPBackend.MATH):
        assert torch.equal(F.scaled_dot_product_attention(q, k, v, attn_mask=mask), want)
    assert torch.equal(by_hand(q, k, v, attn_mask=mask), want)
    assert unguarded(q, k, v, mask).isnan().all()  # the old behaviour, which the equality above rejects


@settings(max_examples=40)
@given(
    st.lists(st.integers(1, 3), max_size=2),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 8),
    st.booleans(),
    st.sampled_from(["default", "math"]),
    st.integers(0, 2**16),
)
def test_fully_masked_rows_match_torch_forward_and_backward(batch, L, S, dk, additive, backend, seed):
    """Random boolean or additive (-inf) masks with some query rows entirely masked, L != S allowed:
    the output rows are exactly 0 as torch's, every other entry within 1e-12 (float64, O(1) values);
    gradients finite and within 1e-11. The unguarded softmax fails the same comparison (NaN rows)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*batch, n, dk, generator=g, dtype=torch.float64, requires_grad=True) for n in (L, S, S))
    keep = torch.rand(*batch, L, S, generator=g) < 0.6
    dead = torch.rand(*batch, L, 1, generator=g) < 0.3
    dead[..., torch.randint(L, (1,), generator=g).item(), :] = True  # at least one fully masked query
    keep &= ~dead
    mask = torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, float("-inf")) if additive else keep
    w = torch.randn(*batch, L, dk, generator=g, dtype=torch.float64)  # a generic loss sum(w * out)

    def run(fn):
        for t in (q, k, v):
            t.grad = None
        out = fn(q, k, v, attn_mask=mask)
        (out * w).sum().backward()
        return out.detach(), [t.grad.clone() for t in (q, k, v)]

    with sdpa_kernel(SDPBackend.MATH) if backend == "math" else contextlib.nullcontext():
        ref, ref_grads = run(F.scaled_dot_product_attention)
    out, grads = run(by_hand)
    rows = dead.expand_as(ref)
    assert torch.equal(ref[rows], torch.zeros_like(ref[rows]))  # what torch does, checked here too
    assert torch.equal(out[rows], torch.zeros_like(out[rows]))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        assert got.isfinite().all()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-11)
    with pytest.raises(AssertionError):  # negative control: the same comparison rejects the plain softmax
        torch.testing.assert_close(unguarded(q, k, v, mask).detach(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("L, S", [(3, 7), (7, 3), (1, 5), (5, 1)])
def test_causal_with_unequal_lengths(L, S):
    """is_causal alone masks no row fully (query i always sees key 0); by hand equals torch for L < S and L > S."""
    g = torch.Generator().manual_seed(L * 10 + S)
    q, k, v = (torch.randn(2, n, 4, generator=g, dtype=torch.float64) for n in (L, S, S))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    with sdpa_kernel(SDPBackend.MATH):
        torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, is_causal=True), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(by_hand(q, k, v, is_causal=True), ref, rtol=0, atol=1e-12)
    wrong = torch.ones(L, S, dtype=torch.bool).tril(S - L)  # bottom-right aligned: a different mask when L != S
    assert (by_hand(q, k, v, attn_mask=wrong) - ref).abs().max() > 1e-3


def test_check_covers_fully_masked_rows_and_rejects_the_unguarded_softmax(monkeypatch):
    res = sdpa_by_hand.check(device="cpu", seed=1)
    assert res.passed and all(row["fully masked rows"] > 0 for row in res.table)
    no_guard = [c for c in res.controls if "no guard" in c.claim]
    assert len(no_guard) == 2 and not any(c.agrees for c in no_guard)
    old = sdpa_by_hand._unguarded  # the implementation before the guard, as the module under test
    monkeypatch.setattr(
        sdpa_by_hand,
        "by_hand",
        lambda q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False: old(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal
        ),
    )
    bad = sdpa_by_hand.check(device="cpu", seed=1)
    assert not bad.passed
    assert not any(c.agrees for c in bad.claims if "max |hand - torch|" in c.claim)


def test_a_wrong_scale_is_caught():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v)
    assert (by_hand(q * 2, k, v) - ref).abs().max() > 1e-3


@pytest.mark.gpu
def test_sdpa_switch_on_cuda():
    assert sdpa_switch.check(device="cuda").passed and sdpa_by_hand.check(device="cuda").passed

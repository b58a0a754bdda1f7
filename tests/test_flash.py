"""models.flash: tiled attention with an online softmax equals naive attention, forward and backward.

float64: within 1e-12 of ``models.attention.scaled_dot_product_attention`` and of autograd through it, for both
masks, lengths that are not multiples of the blocks and every block size from 1 to N. Low precision: FlashAttention's
own rule, error against a float64 reference at most twice plain attention's in the same precision. The merge
without rescaling (the negative control) fails both comparisons."""

import math

import pytest
import torch

from models.attention import scaled_dot_product_attention as naive
from models.flash import flash_attention, flash_forward, merge

TOL64 = 1e-12  # float64 results of size O(1): rounding is ~1e-15


def draw(seed, shape, dtype=torch.float64, scale=1.0):
    """q, k, v and an upstream gradient dO, standard normal (q and k times ``scale``), float64 then cast."""
    g = torch.Generator().manual_seed(seed)
    q, k, v, do = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4))
    return [t.to(dtype) for t in (q * scale, k * scale, v, do)]


def run(fn, q, k, v, do):
    """fn's output and its gradients with respect to q, k, v (autograd), as a list of 4 tensors."""
    x = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = fn(*x)
    return [out.detach(), *torch.autograd.grad(out, x, do)]


def gap(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n, blocks", [(1, (1, 1)), (37, (8, 5)), (70, (64, 64)), (100, (48, 32)), (33, (1, 33))])
def test_float64_output_and_gradients_equal_naive_attention(causal, n, blocks):
    q, k, v, do = draw(n, (2, 3, n, 16))
    flash = run(lambda *x: flash_attention(*x, causal, *blocks), q, k, v, do)
    ref = run(lambda *x: naive(*x, is_causal=causal), q, k, v, do)
    for name, a, b in zip(["output", "dq", "dk", "dv"], flash, ref):
        assert gap(a, b) <= TOL64, name


@pytest.mark.parametrize("causal", [False, True])
def test_every_block_size_from_1_to_n(causal):
    n = 9
    q, k, v, do = draw(1, (1, 2, n, 4))
    ref = run(lambda *x: naive(*x, is_causal=causal), q, k, v, do)
    for bq in range(1, n + 1):
        for bk in range(1, n + 1):
            flash = run(lambda *x, bq=bq, bk=bk: flash_attention(*x, causal, bq, bk), q, k, v, do)
            assert max(gap(a, b) for a, b in zip(flash, ref)) <= TOL64, (bq, bk)


def test_value_dim_may_differ_and_blocks_may_exceed_n():
    q, k, _, _ = draw(2, (1, 2, 11, 8))
    v = torch.randn(1, 2, 11, 5, dtype=torch.float64)
    assert gap(flash_attention(q, k, v, True, 64, 3), naive(q, k, v, is_causal=True)) <= TOL64


def test_log_sum_exp_is_that_of_the_scaled_masked_scores():
    q, k, v, _ = draw(3, (2, 2, 29, 8))
    for causal in (False, True):
        _, lse = flash_forward(q, k, v, causal, 8, 5)
        s = q @ k.transpose(-2, -1) / math.sqrt(8)
        if causal:
            s = s.masked_fill(~torch.ones(29, 29, dtype=torch.bool).tril(), -math.inf)
        assert gap(lse, torch.logsumexp(s, -1)) <= TOL64


def test_large_scores_do_not_overflow():
    """Scores of standard deviation ~30 (exp overflows float32 beyond 88): the running maximum keeps it finite."""
    q, k, v, do = draw(4, (1, 2, 64, 16), scale=12.0)
    ref = run(lambda *x: naive(*x, is_causal=True), q, k, v, do)
    x32 = [t.float() for t in (q, k, v, do)]
    got = run(lambda *x: flash_attention(*x, True, 16, 16), *x32)
    plain = run(lambda *x: naive(*x, is_causal=True), *x32)
    assert all(torch.isfinite(t).all() for t in got)
    for name, a, p, r in zip(["output", "dq", "dk", "dv"], got, plain, ref):
        assert gap(a, r) <= 2 * gap(p, r), name


def rule_ratios(dtype, seed, causal, blocks=(32, 24), n=100, rescale=True):
    """FlashAttention's test rule: max|flash - ref| / max|plain - ref| for the output and each gradient, the
    inputs rounded to ``dtype``, ``ref`` naive attention in float64 on the same rounded inputs."""
    q, k, v, do = (t.to(dtype) for t in draw(seed, (2, 2, n, 32)))
    ref = run(lambda *x: naive(*x, is_causal=causal), *(t.double() for t in (q, k, v, do)))
    plain = run(lambda *x: naive(*x, is_causal=causal), q, k, v, do)
    if rescale:
        flash = run(lambda *x: flash_attention(*x, causal, *blocks), q, k, v, do)
    else:  # the control: the forward alone, merged without the factors e^{m_old - m_new}
        flash = [flash_forward(q, k, v, causal, *blocks, rescale=False)[0]]
    return [gap(f, r) / gap(p, r) for f, p, r in zip(flash, plain, ref)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_low_precision_within_twice_plain_attentions_error(dtype, causal):
    for seed in range(3):
        ratios = rule_ratios(dtype, seed, causal)
        assert max(ratios) <= 2.0, (seed, ratios)


def test_merge_without_rescaling_is_rejected_by_the_same_comparisons():
    q, k, v, _ = draw(5, (2, 3, 100, 16))
    for causal in (False, True):
        wrong, _ = flash_forward(q, k, v, causal, 48, 32, rescale=False)
        assert gap(wrong, naive(q, k, v, is_causal=causal)) > 1e-2  # 10^10 times the float64 tolerance
        assert rule_ratios(torch.float32, 5, causal, rescale=False)[0] > 100  # and far outside the 2x rule
    one_block, _ = flash_forward(q, k, v, False, 48, 100, rescale=False)  # one key block: nothing to rescale
    assert gap(one_block, naive(q, k, v)) <= TOL64


def block_state(s, v):
    """(m, l, o) of one block of scores s (L, S) and values v (S, d): max, sum of e^{s - m}, sum of e^{s - m} v."""
    m = s.amax(-1, keepdim=True)
    p = torch.exp(s - m)
    return m, p.sum(-1, keepdim=True), p @ v


def test_merge_of_two_blocks_is_the_state_of_their_concatenation():
    g = torch.Generator().manual_seed(6)
    s, v = torch.randn(5, 7, generator=g, dtype=torch.float64) * 5, torch.randn(7, 3, generator=g, dtype=torch.float64)
    m, ell, o = merge(*block_state(s[:, :3], v[:3]), *block_state(s[:, 3:], v[3:]))
    want = block_state(s, v)
    assert max(gap(a, b) for a, b in zip((m, ell, o), want)) <= TOL64
    assert gap(o / ell, torch.softmax(s, -1) @ v) <= TOL64


def test_merge_with_the_empty_state_is_neutral_and_two_empty_rows_stay_empty():
    g = torch.Generator().manual_seed(7)
    state = block_state(torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64))
    empty = (torch.full((4, 1), -math.inf, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64))
    empty = (*empty, torch.zeros(4, 2, dtype=torch.float64))
    assert all(torch.equal(a, b) for a, b in zip(merge(*empty, *state), state))
    m, ell, o = merge(*empty, *empty)
    assert torch.isneginf(m).all() and not ell.any() and not o.any()  # no NaN from e^{-inf + inf}


def test_saved_state_is_linear_in_n():
    """Everything autograd keeps for the backward pass has at most B H N d elements: no N x N tensor."""
    B, H, n, d = 1, 2, 96, 8
    q, k, v = (torch.randn(B, H, n, d, dtype=torch.float64, requires_grad=True) for _ in range(3))
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        flash_attention(q, k, v, True, 16, 16)
    assert sizes and max(sizes) <= B * H * n * d
    sizes.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        naive(q, k, v, is_causal=True)
    assert max(sizes) >= B * H * n * n  # the control: naive attention keeps the n x n probabilities


def test_output_keeps_the_input_dtype():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        q = torch.randn(1, 1, 5, 4).to(dtype).requires_grad_()
        out = flash_attention(q, q, q, True, 2, 2)
        out.sum().backward()
        assert out.dtype == dtype and q.grad.dtype == dtype


def test_gradcheck_on_tiny_float64_inputs():
    x = [torch.randn(1, 2, 6, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    for causal in (False, True):
        assert torch.autograd.gradcheck(lambda q, k, v, c=causal: flash_attention(q, k, v, c, 4, 3), x)


@pytest.mark.parametrize(
    "args, name",
    [
        ((torch.zeros(2, 4, 8), torch.zeros(2, 4, 8), torch.zeros(2, 4, 8)), "q"),
        ((torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 5, 8), torch.zeros(1, 1, 4, 8)), "k"),
        ((torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8), torch.zeros(1, 2, 4, 8)), "v"),
        ((torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8, dtype=torch.float64), torch.zeros(1, 1, 4, 8)), "k"),
        ((torch.zeros(1, 1, 4, 8, dtype=torch.long), torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8)), "q"),
        ((torch.zeros(1, 1, 0, 8), torch.zeros(1, 1, 0, 8), torch.zeros(1, 1, 0, 8)), "q"),
        (([[1.0]], torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8)), "q"),
    ],
)
def test_bad_tensors_raise_value_error_naming_the_argument(args, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        flash_attention(*args)


@pytest.mark.parametrize("block", [0, -1, 1.5, True, None])
def test_bad_block_sizes_raise_value_error_naming_them(block):
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="^block_q: "):
        flash_attention(q, q, q, False, block, 4)
    with pytest.raises(ValueError, match="^block_k: "):
        flash_forward(q, q, q, False, 4, block)

"""models.gpt.KVCache.rollback: dropping the last positions (rejected draft tokens) is exact."""

import itertools

import pytest
import torch

from models.gpt import GPT, GPTConfig, KVCache

SMALL = dict(block_size=32, vocab_size=11, n_layer=2, n_head=4, n_embd=32)
POS_KV = list(itertools.product(["learned", "sinusoidal", "rope"], [None, 2, 1]))  # MHA, GQA, MQA


def build(dtype, **kw) -> GPT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = GPT(GPTConfig(**(SMALL | kw)))
    with torch.no_grad():  # larger weights than the init, so attention is far from uniform
        for p in m.parameters():
            p.mul_(5.0)
    return m.to(dtype).eval()


def tokens(B, T, seed=0):
    return torch.randint(0, SMALL["vocab_size"], (B, T), generator=torch.Generator().manual_seed(seed))


def feed(m, cache, idx, chunks):
    """Feed idx through the cache in the given chunk sizes; the logits of every chunk."""
    out, t = [], 0
    for n in chunks:
        out.append(m(idx[:, t : t + n], cache=cache)[0])
        t += n
    return out


@pytest.mark.parametrize("attn", ["sdpa", "manual"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pos, n_kv", POS_KV)
@torch.no_grad()
def test_rollback_equals_a_cache_that_never_saw_the_draft(pos, n_kv, dtype, attn):
    """Decode n tokens, feed k draft tokens, roll back to n: the next logits (one token, then a chunk of
    3 with an offset mask, then single tokens) are bit for bit those of a cache that never saw the draft,
    also with NaN written into the forgotten positions (so they are provably never read)."""
    m = build(dtype, pos=pos, n_kv_head=n_kv, attn=attn)
    hist, draft, nxt = tokens(2, 8), tokens(2, 4, seed=1), tokens(2, 6, seed=2)
    a, b = m.new_cache(2, 20), m.new_cache(2, 20)
    for cache in (a, b):
        feed(m, cache, hist, [5, 1, 1, 1])  # prefill, then decode: n = 8
    n = a.length
    feed(m, a, draft, [4])  # the target verifies 4 draft tokens at once
    feed(m, a, draft, [1])  # and one more, single
    assert a.length == n + 5
    a.rollback(n)
    assert a.length == n
    for t in a.k + a.v:
        t[:, :, n:] = float("nan")
    got, want = feed(m, a, nxt, [1, 3, 1, 1]), feed(m, b, nxt, [1, 3, 1, 1])
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert all(torch.equal(x[:, :, : a.length], y[:, :, : b.length]) for x, y in zip(a.k + a.v, b.k + b.v))


@pytest.mark.parametrize("pos, n_kv", POS_KV)
@torch.no_grad()
def test_partial_acceptance_matches_the_full_forward(pos, n_kv):
    """Speculative decoding: of 4 draft tokens 2 are accepted (rollback to n + 2); decoding on gives the
    logits of an uncached forward over the accepted sequence; keeping one rejected token is caught."""
    m = build(torch.float64, pos=pos, n_kv_head=n_kv)
    hist, draft, nxt = tokens(2, 6), tokens(2, 4, seed=1), tokens(2, 3, seed=2)
    cache = m.new_cache(2, 16)
    feed(m, cache, hist, [6])
    feed(m, cache, draft, [4])
    cache.rollback(8)
    steps = feed(m, cache, nxt, [1, 1, 1])
    full, _ = m(torch.cat([hist, draft[:, :2], nxt], 1))
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 8:], rtol=0, atol=1e-10)
    cache.rollback(6)  # control: keeping a rejected draft token (length 9, not 8) is caught
    feed(m, cache, draft, [3])
    assert (feed(m, cache, nxt, [1])[0] - full[:, 8:9]).abs().max() > 1e-3


@torch.no_grad()
def test_rollback_to_zero_restarts_and_to_length_is_a_no_op():
    m = build(torch.float64, pos="rope", n_kv_head=2)
    idx = tokens(2, 7)
    cache = m.new_cache(2, 10)
    first = feed(m, cache, idx, [7])[0]
    cache.rollback(7)
    assert cache.length == 7
    cache.rollback(0)
    assert torch.equal(feed(m, cache, idx, [7])[0], first)


@pytest.mark.parametrize("bad", [-1, 6, 100, 2.0, True, None])
def test_bad_rollback_is_refused_and_changes_nothing(bad):
    cache = KVCache(GPTConfig(**SMALL), 1, 10)
    cache.length = 5
    with pytest.raises(ValueError, match=r"^length: must be an integer in \[0, 5\]"):
        cache.rollback(bad)
    assert cache.length == 5


def test_rollback_copies_nothing():
    """Rolling back is a change of length: the stored tensors are the same objects, untouched."""
    cache = KVCache(GPTConfig(**SMALL), 1, 10)
    cache.length = 9
    before = [t.clone() for t in cache.k + cache.v]
    ids = [id(t) for t in cache.k + cache.v]
    cache.rollback(3)
    assert [id(t) for t in cache.k + cache.v] == ids
    assert all(torch.equal(x, y) for x, y in zip(before, cache.k + cache.v))

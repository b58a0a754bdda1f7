"""models.gpt: shapes, loss, every switch, KV-cache generation, attention kernels, config errors, counts."""

import itertools
import math

import pytest
import torch

from derive import counts
from models.gpt import GPT, CausalSelfAttention, GPTConfig, swiglu_hidden

SMALL = dict(block_size=24, vocab_size=11, n_layer=2, n_head=4, n_embd=32)


def build(dtype=torch.float32, scale=1.0, **kw) -> GPT:
    """A small GPT with weights from a private RNG stream (the global one is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = GPT(GPTConfig(**(SMALL | kw)))
    m = m.to(dtype).eval()
    if scale != 1.0:  # larger weights: logits far from uniform, so greedy choices are not near-ties
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(scale)
    return m


def tokens(B, T, V=SMALL["vocab_size"], seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


SWITCHES = [
    {},
    {"pos": "sinusoidal"},
    {"pos": "rope"},
    {"pos": "none"},
    {"norm": "rmsnorm"},
    {"mlp": "swiglu"},
    {"mlp": "none"},
    {"mlp": "none", "prenorm": False},
    {"n_kv_head": 2},
    {"n_kv_head": 1},
    {"prenorm": False},
    {"attn": "manual"},
    {"bias": False},
    {"tie_weights": False},
    {"dropout": 0.1},
    {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 2, "bias": False, "tie_weights": False},
    {"pos": "sinusoidal", "prenorm": False, "attn": "manual", "n_kv_head": 1, "mlp": "swiglu"},
]


@pytest.mark.parametrize("kw", SWITCHES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_every_switch_runs_and_trains(kw):
    m = build(**kw).train()
    idx, tgt = tokens(3, 10), tokens(3, 10, seed=1)
    logits, loss = m(idx, tgt)
    assert logits.shape == (3, 10, SMALL["vocab_size"])
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    logits, loss = m.eval()(idx)
    assert loss is None and logits.shape == (3, 10, SMALL["vocab_size"])


def test_initial_loss_is_near_log_vocab():
    _, loss = build()(tokens(4, 16), tokens(4, 16, seed=2))
    assert abs(loss.item() - math.log(SMALL["vocab_size"])) < 0.1


@pytest.mark.parametrize("pos, n_kv", list(itertools.product(["learned", "sinusoidal", "rope"], [None, 2, 1])))
def test_cached_greedy_generation_equals_uncached(pos, n_kv):
    m = build(torch.float64, scale=20.0, pos=pos, n_kv_head=n_kv)
    idx = tokens(2, 5)
    with_cache = m.generate(idx, 15, temperature=0, use_cache=True)
    without = m.generate(idx, 15, temperature=0, use_cache=False)
    assert torch.equal(with_cache, without)
    # and the cached logits equal the full forward's, position by position
    cache = m.new_cache(2, 20)
    with torch.no_grad():
        full, _ = m(with_cache)
        steps = [m(with_cache[:, :7], cache=cache)[0]] + [
            m(with_cache[:, t : t + 1], cache=cache)[0] for t in range(7, 20)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-9)


def test_sampling_is_seeded():
    m = build()
    a = m.generate(tokens(1, 3), 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    b = m.generate(tokens(1, 3), 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (1, 11)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("n_kv", [None, 2, 1])
def test_manual_attention_matches_sdpa(dtype, tol, n_kv):
    fast, manual = build(dtype, n_kv_head=n_kv), build(dtype, n_kv_head=n_kv, attn="manual")
    manual.load_state_dict(fast.state_dict())
    idx = tokens(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(manual(idx)[0], fast(idx)[0], rtol=0, atol=tol)
        # with a cache: a prompt, then a chunk of 3 (a mask with an offset), then single tokens
        outs = {}
        for name, m in (("fast", fast), ("manual", manual)):
            cache = m.new_cache(2, 12)
            outs[name] = torch.cat(
                [m(idx[:, :5], cache=cache)[0], m(idx[:, 5:8], cache=cache)[0]]
                + [m(idx[:, t : t + 1], cache=cache)[0] for t in range(8, 12)],
                1,
            )
        torch.testing.assert_close(outs["manual"], outs["fast"], rtol=0, atol=tol)
        torch.testing.assert_close(outs["fast"], fast(idx)[0], rtol=0, atol=tol)


def test_manual_and_sdpa_differ_when_weights_differ():
    """The comparison above can fail: two differently initialised models disagree."""
    a, b = build(attn="manual"), build(attn="sdpa", scale=1.5)
    idx = tokens(2, 12)
    with torch.no_grad():
        assert (a(idx)[0] - b(idx)[0]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"n_embd": 30}, "n_head"),
        ({"n_kv_head": 3}, "n_kv_head"),
        ({"n_kv_head": 0}, "n_kv_head"),
        ({"block_size": 0}, "block_size"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"n_layer": 0}, "n_layer"),
        ({"n_head": 0}, "n_head"),
        ({"pos": "alibi"}, "pos"),
        ({"norm": "batchnorm"}, "norm"),
        ({"mlp": "relu"}, "mlp"),
        ({"attn": "flash"}, "attn"),
        ({"dropout": 1.0}, "dropout"),
        ({"pos": "rope", "n_embd": 12, "n_head": 4}, "n_embd"),
        ({"pos": "sinusoidal", "n_embd": 15, "n_head": 3}, "n_embd"),
    ],
)
def test_bad_config_names_field(kw, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        GPTConfig(**(SMALL | kw))


def test_too_long_input_raises():
    m = build()
    with pytest.raises(ValueError, match=r"^idx:"):
        m(tokens(1, SMALL["block_size"] + 1))
    with pytest.raises(ValueError, match=r"^max_new_tokens:"):
        m.generate(tokens(1, 20), 10)


@pytest.mark.parametrize("kw", SWITCHES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_parameter_count_equals_formula(kw):
    m = build(**kw)
    c = m.config
    d_ff = swiglu_hidden(c.n_embd) if c.mlp == "swiglu" else None
    args = (c.n_layer, c.n_embd, c.n_head, c.vocab_size)
    opts = dict(bias=c.bias, mlp=c.mlp, norm=c.norm, n_kv=c.n_kv_head, d_ff=d_ff, prenorm=c.prenorm, tie=c.tie_weights)
    total = counts.model_params(*args, c.block_size, **opts, pos=c.pos)
    assert m.num_params() == int(total)
    assert m.num_params(non_embedding=True) == int(counts.non_embedding_params(*args, **opts))
    attn = CausalSelfAttention(c)
    assert sum(p.numel() for p in attn.parameters()) == int(
        counts.attention_params(c.n_embd, c.n_head, c.bias, c.n_kv_head)
    )


def test_generate_rejects_bad_top_k():
    m = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="^top_k"):
        m.generate(torch.zeros(1, 2, dtype=torch.long), 2, top_k=0)

"""models.gpt attention with ``causal`` and a key padding mask: the SDPA and manual paths agree, and
the masks mean what they say. One set of blocks serves the GPT (causal) and an encoder (causal=False)."""

import itertools

import pytest
import torch

from models.gpt import GPT, Block, CausalSelfAttention, GPTConfig, KVCache

CFG = dict(block_size=16, vocab_size=2, n_layer=1, n_head=4, n_embd=32)
B, T = 3, 9


def pair(causal, dtype=torch.float64, **kw):
    """The same seeded attention layer through the manual and the SDPA path."""
    g = torch.Generator().manual_seed(0)
    out = []
    for attn in ("manual", "sdpa"):
        layer = CausalSelfAttention(GPTConfig(**CFG, attn=attn, **kw), causal=causal).to(dtype).eval()
        for p in layer.parameters():  # larger than the GPT init so attention is not flat
            p.data.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=dtype) * 0.3)
        out.append(layer)
    x = torch.randn(B, T, CFG["n_embd"], generator=g, dtype=dtype)
    return out, x


def padding(seed=1, Tk=T):
    """Random keep-mask with a fully padded batch row and a kept first key elsewhere."""
    keep = torch.rand(B, Tk, generator=torch.Generator().manual_seed(seed)) < 0.6
    keep[1:, 0] = True
    keep[0] = False
    return keep


KV = [dict(), dict(n_kv_head=2), dict(n_kv_head=1, pos="rope")]  # MHA, GQA, MQA with rotary positions
CASES = list(itertools.product([True, False], [False, True], KV))


@pytest.mark.parametrize("causal, padded, kw", CASES)
@torch.no_grad()
def test_manual_equals_sdpa_float64(causal, padded, kw):
    """Full pass and a cached pass (prefill 4, a chunk of 3, two single tokens), causal and not, with and
    without a padding mask: the two paths agree within 1e-12 (float64, O(1) values)."""
    (manual, sdpa), x = pair(causal, **kw)
    keep = padding() if padded else None
    ym, ys = manual(x, key_padding_mask=keep), sdpa(x, key_padding_mask=keep)
    assert ym.isfinite().all()
    torch.testing.assert_close(ym, ys, rtol=0, atol=1e-12)
    outs = []
    for layer in (manual, sdpa):
        cache, parts = KVCache(layer.cfg, B, T, dtype=x.dtype), []
        for lo, hi in [(0, 4), (4, 7), (7, 8), (8, 9)]:
            parts.append(layer(x[:, lo:hi], cache, None if keep is None else keep[:, :hi]))
            cache.length = hi
        outs.append(torch.cat(parts, 1))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    if causal:  # a causal cached pass is the full pass; a bidirectional one is not (later keys are unseen)
        torch.testing.assert_close(outs[0], ym, rtol=0, atol=1e-12)


@pytest.mark.parametrize("attn", ["manual", "sdpa"])
@torch.no_grad()
def test_padded_keys_are_invisible(attn):
    """Changing the inputs at padded positions leaves every other position's output unchanged
    (bidirectional); without the mask it does not, and a mask of all True is no mask."""
    (manual, sdpa), x = pair(False)
    layer = manual if attn == "manual" else sdpa
    keep = padding()
    keep[0, :2] = True  # every row keeps a key
    y = layer(x, key_padding_mask=keep)
    x2 = torch.where(keep[..., None], x, 2 * x + 1.0)
    torch.testing.assert_close(layer(x2, key_padding_mask=keep)[keep], y[keep], rtol=0, atol=1e-12)
    assert (layer(x2)[keep] - layer(x)[keep]).abs().max() > 1e-3  # control: unmasked, it leaks
    torch.testing.assert_close(layer(x, key_padding_mask=torch.ones(B, T, dtype=torch.bool)), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("attn", ["manual", "sdpa"])
@torch.no_grad()
def test_causal_switch(attn):
    """causal=True: position 0 ignores later tokens; causal=False: it sees them. Same weights, same blocks."""
    cfg = GPTConfig(**CFG, attn=attn)
    torch.manual_seed(0)
    dec = Block(cfg).double().eval()
    enc = Block(cfg, causal=False).double().eval()
    enc.load_state_dict(dec.state_dict())
    x = torch.randn(B, T, cfg.n_embd, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    x2[:, -1] = torch.randn(B, cfg.n_embd, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(dec(x)[:, :-1], dec(x2)[:, :-1])
    assert (enc(x)[:, 0] - enc(x2)[:, 0]).abs().max() > 1e-6
    assert all(b.attn.causal for b in GPT(cfg).h) and not enc.attn.causal


@pytest.mark.parametrize(
    "mask",
    [torch.ones(B, T + 1, dtype=torch.bool), torch.ones(B, T), torch.ones(T, dtype=torch.bool)],
    ids=["length", "dtype", "rank"],
)
def test_bad_padding_mask_names_argument(mask):
    (manual, sdpa), x = pair(False)
    for layer in (manual, sdpa):
        with pytest.raises(ValueError, match=r"^key_padding_mask: must be a bool tensor of shape \(3, 9\)"):
            layer(x, key_padding_mask=mask)

"""numeric.flops: a matmul of (m, k) by (k, n) counts 2 m k n FLOPs; elementwise work counts none; SDPA on the
CPU counts as attention written out; a fused attention kernel without a formula is refused."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from numeric.flops import count_flops


def test_matmul_counts_two_per_multiply_add():
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    out, flops = count_flops(lambda: a @ b)
    assert out.shape == (3, 7) and flops == 2 * 3 * 5 * 7
    assert count_flops(lambda: a @ b @ b.T)[1] == 2 * 3 * 5 * 7 + 2 * 3 * 7 * 5


def test_elementwise_counts_nothing():
    x = torch.randn(100)
    assert count_flops(lambda: (x * 2 + 1).exp())[1] == 0


# -- attention: F.scaled_dot_product_attention on the CPU against attention written out ---------------
#
# Expected counts are worked out here from the shapes: a (m, k) @ (k, n) product is 2 m k n FLOPs. Attention
# written out is two products per head, q @ kᵀ and p @ v, over the full L x S score matrix whatever the mask.


def written_out(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False):
    if enable_gqa:  # each K/V head serves h_q / h_kv query heads
        k, v = (t.repeat_interleave(q.size(-3) // k.size(-3), dim=-3) for t in (k, v))
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if is_causal:
        attn_mask = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf"))
    return s.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Queries from x (b, L, d), keys and values from m (b, S, d), h query heads and h_kv K/V heads."""

    def __init__(self, d, h, h_kv, attend):
        super().__init__()
        self.h, self.h_kv, self.hd, self.attend = h, h_kv, d // h, attend
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * h_kv * (d // h)), nn.Linear(d, d)

    def forward(self, x, m, **kw):
        (b, L, d), S = x.shape, m.size(1)
        q = self.q(x).view(b, L, self.h, self.hd).transpose(1, 2)
        k, v = (t.view(b, S, self.h_kv, self.hd).transpose(1, 2) for t in self.kv(m).chunk(2, dim=-1))
        y = self.attend(q, k, v, enable_gqa=self.h_kv != self.h, **kw)
        return self.out(y.transpose(1, 2).reshape(b, L, d))


def pair(d, h, h_kv):
    """The same module twice, one calling SDPA and one with attention written out, sharing weights."""
    with torch.random.fork_rng(devices=[]):  # weights from a private stream; the global one is left alone
        torch.manual_seed(0)
        a = Attention(d, h, h_kv, F.scaled_dot_product_attention)
    b = Attention(d, h, h_kv, written_out)
    b.load_state_dict(a.state_dict())
    return a, b


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func._overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


CPU_SDPA = "_scaled_dot_product_flash_attention_for_cpu"
# (batch, d, h, h_kv, L, S, mask): causal needs nothing else; "bool" is a random boolean mask
CASES = [
    (2, 64, 4, 4, 8, 8, None),
    (2, 64, 4, 4, 8, 8, "causal"),
    (1, 32, 4, 4, 5, 11, "causal"),  # fewer queries than keys
    (3, 32, 2, 2, 9, 4, "causal"),  # more queries than keys
    (2, 48, 4, 4, 6, 7, "bool"),
    (2, 64, 8, 2, 6, 6, "causal"),  # GQA through enable_gqa
    (2, 64, 4, 1, 7, 5, None),  # MQA
]


def inputs(b, d, L, S, mask, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, m = torch.randn(b, L, d, generator=g), torch.randn(b, S, d, generator=g)
    kw = {"is_causal": True} if mask == "causal" else {}
    if mask == "bool":
        keep = torch.rand(L, S, generator=g) < 0.6
        keep[:, 0] = True
        kw["attn_mask"] = keep
    return x, m, kw


@pytest.mark.parametrize("b, d, h, h_kv, L, S, mask", CASES)
def test_sdpa_on_the_cpu_counts_as_attention_written_out(b, d, h, h_kv, L, S, mask):
    sdpa, manual = pair(d, h, h_kv)
    x, m, kw = inputs(b, d, L, S, mask)
    hd = d // h
    projections = 2 * b * L * d * d + 2 * b * S * d * (2 * h_kv * hd) + 2 * b * L * d * d
    attention = 2 * b * h * L * S * hd + 2 * b * h * L * S * hd  # q @ kᵀ and p @ v, full matrix
    with torch.no_grad(), OpLog() as log:
        y_sdpa, n_sdpa = count_flops(lambda: sdpa(x, m, **kw))
    with torch.no_grad():
        y_manual, n_manual = count_flops(lambda: manual(x, m, **kw))
    assert CPU_SDPA in log.ops  # the CPU kernel ran, not a decomposition into matmuls
    torch.testing.assert_close(y_sdpa, y_manual, rtol=1e-5, atol=1e-6)  # the two modules compute the same
    assert n_manual == projections + attention
    assert n_sdpa == n_manual
    with torch.no_grad(), FlopCounterMode(display=False) as plain:  # negative control: torch's counter alone
        sdpa(x, m, **kw)
    assert plain.get_total_flops() == projections  # misses all of the attention


@pytest.mark.parametrize("b, d, h, h_kv, L, S, mask", CASES)
def test_forward_and_backward(b, d, h, h_kv, L, S, mask):
    """Written out: forward + backward = 3 x forward exactly (each product has two gradient products).
    SDPA: torch's formula for the fused backward also counts recomputing q @ kᵀ (the kernel keeps only
    the log-sum-exp), one more 2 b h L S d_k per call."""
    sdpa, manual = pair(d, h, h_kv)
    x, m, kw = inputs(b, d, L, S, mask)
    x.requires_grad_(), m.requires_grad_()  # so the first projections' input gradients are counted too

    def counts(mod):
        return count_flops(lambda: mod(x, m, **kw))[1], count_flops(lambda: mod(x, m, **kw).sum().backward())[1]

    (f_sdpa, t_sdpa), (f_manual, t_manual) = counts(sdpa), counts(manual)
    assert f_sdpa == f_manual and t_manual == 3 * f_manual
    assert t_sdpa == t_manual + 2 * b * h * L * S * (d // h)


@pytest.mark.parametrize("kw", [{}, {"n_kv_head": 2}], ids=["mha", "gqa"])
def test_gpt_sdpa_and_manual_paths_count_the_same(kw):
    from models.gpt import GPT, GPTConfig

    cfg = dict(block_size=16, vocab_size=13, n_layer=2, n_head=4, n_embd=32) | kw
    fast, slow = GPT(GPTConfig(**cfg)).eval(), GPT(GPTConfig(**cfg, attn="manual")).eval()
    slow.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 13, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), OpLog() as log:
        _, n_fast = count_flops(lambda: fast(idx))
    with torch.no_grad():
        _, n_slow = count_flops(lambda: slow(idx))
    assert CPU_SDPA in log.ops and n_fast == n_slow > 0
    fast.train(), slow.train()
    _, t_fast = count_flops(lambda: fast(idx, idx)[1].backward())
    _, t_slow = count_flops(lambda: slow(idx, idx)[1].backward())
    assert t_fast == t_slow + cfg["n_layer"] * 2 * 3 * 4 * 16 * 16 * (32 // 4)  # one score recompute per layer


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.MultiheadAttention(32, 4, batch_first=True),
        lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True),
    ],
    ids=["MultiheadAttention", "TransformerEncoderLayer"],
)
def test_a_fused_kernel_without_a_formula_is_refused(make):
    """In eval mode under no_grad these modules run one fused op that FlopCounterMode counts as 0."""
    mod = make().eval()  # counts do not depend on the weights
    x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(0))
    call = (lambda: mod(x, x, x, need_weights=False)[0]) if isinstance(mod, nn.MultiheadAttention) else (lambda: mod(x))
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        call()
    assert plain.get_total_flops() == 0  # what torch's counter alone reports
    refused = r"^count_flops: aten\._(native_multi_head_attention|transformer_encoder_layer_fwd)\.default runs"
    with torch.no_grad(), pytest.raises(ValueError, match=refused) as e:
        count_flops(call)
    assert "\n" not in str(e.value)
    assert count_flops(call)[1] > 0  # with gradients on, the module takes the unfused path, which is counted

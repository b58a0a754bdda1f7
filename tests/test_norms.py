"""Exercise 13.22's parts: RMSNorm equals torch.nn.RMSNorm with the same eps; SwiGLU is silu(xW)*(xV) W2."""

import pytest
import torch
import torch.nn.functional as F

from models.gpt import MLP, GPTConfig, RMSNorm, swiglu_hidden


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
@pytest.mark.parametrize("eps", [1e-5, 1e-8])
def test_rmsnorm_equals_torch(dtype, tol, eps):
    g = torch.Generator().manual_seed(0)
    ours, ref = RMSNorm(48, eps=eps).to(dtype), torch.nn.RMSNorm(48, eps=eps, dtype=dtype)
    w = torch.randn(48, generator=g, dtype=dtype)
    ours.weight.data.copy_(w)
    ref.weight.data.copy_(w)
    x = torch.randn(3, 7, 48, generator=g, dtype=dtype) * 5
    assert (ours(x) - ref(x)).abs().max().item() <= tol * 5
    # negative control: LayerNorm (which also subtracts the mean) is not RMSNorm
    assert (F.layer_norm(x, (48,), w, eps=eps) - ref(x)).abs().max().item() > 1e-2


def test_swiglu_is_gated_silu():
    cfg = GPTConfig(n_embd=48, n_head=4, mlp="swiglu", bias=False, vocab_size=2, block_size=4)
    mlp = MLP(cfg).double()
    hidden = swiglu_hidden(48)
    assert hidden % 32 == 0 and 2 / 3 * 4 * 48 <= hidden < 2 / 3 * 4 * 48 + 32
    W, V = mlp.c_fc.weight[:hidden], mlp.c_fc.weight[hidden:]
    x = torch.randn(5, 48, dtype=torch.float64)
    want = (F.silu(x @ W.T) * (x @ V.T)) @ mlp.c_proj.weight.T
    assert (mlp(x) - want).abs().max().item() < 1e-12
    assert (mlp(x) - (F.gelu(x @ W.T) * (x @ V.T)) @ mlp.c_proj.weight.T).abs().max().item() > 1e-6


def test_swiglu_keeps_the_parameter_budget():
    d = 384
    n_swiglu = sum(p.numel() for p in MLP(GPTConfig(n_embd=d, n_head=6, mlp="swiglu", bias=False)).parameters())
    n_gelu = sum(p.numel() for p in MLP(GPTConfig(n_embd=d, n_head=6, mlp="gelu", bias=False)).parameters())
    assert n_swiglu == 3 * d * swiglu_hidden(d) and n_gelu == 8 * d * d
    assert abs(n_swiglu - n_gelu) / n_gelu < 0.05

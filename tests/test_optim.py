"""models.optim.AdamW: torch's AdamW update and state dict, without importing torch._dynamo."""

import copy
import subprocess
import sys

import pytest
import torch

from models.training.optim import AdamW


def _train(cls, steps=15, device="cpu", scaler=False, **kw):
    """A few clipped steps of a small net with two weight-decay groups (through a float16 GradScaler
    when ``scaler``); returns (params, optimizer)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    net = net.to(device)
    gs = torch.amp.GradScaler(device, enabled=scaler, init_scale=2.0**10)
    ps = list(net.parameters())
    groups = [
        {"params": [p for p in ps if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = cls(groups, lr=1e-2, betas=(0.9, 0.99), **kw)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        with torch.autocast(device, dtype=torch.float16, enabled=scaler):
            loss = net(torch.randn(5, 8, generator=gen).to(device)).pow(2).mean()
        gs.scale(loss).backward()
        gs.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        gs.step(opt)
        gs.update()
        opt.zero_grad(set_to_none=True)
    return ps, opt


@pytest.mark.parametrize(
    "kw",
    [{}, {"fused": True}, {"foreach": True}, {"fused": True, "scaler": True}],
    ids=["default", "fused", "foreach", "fused-fp16-scaler"],
)
def test_same_update_and_state_as_torch(kw):
    ours, o1 = _train(AdamW, **kw)
    ref, o2 = _train(torch.optim.AdamW, **kw)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))  # bit for bit
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s2["state"]:
        assert s1["state"][k].keys() == s2["state"][k].keys()
        assert all(torch.equal(s1["state"][k][n], s2["state"][k][n]) for n in s2["state"][k])
    # negative control: one step fewer is not the same parameters
    short, _ = _train(AdamW, steps=14, **kw)
    assert not all(torch.equal(a, b) for a, b in zip(short, ref))


def test_state_dict_continues_in_torch_adamw():
    """A state dict written by ours loads into torch.optim.AdamW (and ours), and both continue alike."""
    ps, opt = _train(AdamW, steps=5)
    state = opt.state_dict()

    def one_more_step(cls):
        qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
        o = cls([{"params": [q for q in qs if q.dim() >= 2]}, {"params": [q for q in qs if q.dim() < 2]}], lr=1.0)
        o.load_state_dict(copy.deepcopy(state))  # loading shares tensors, and the step mutates them
        for q in qs:
            q.grad = torch.ones_like(q)
        o.step()
        return qs, o

    mine, o1 = one_more_step(AdamW)
    theirs, o2 = one_more_step(torch.optim.AdamW)
    assert all(torch.equal(p, q) for p, q in zip(mine, theirs))
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] == 1e-2  # the saved hyper-parameters
    assert not all(torch.equal(p, q) for p, q in zip(mine, ps))  # the step did move them


@pytest.mark.gpu
@pytest.mark.parametrize("scaler", [False, True], ids=["fp32", "fp16-scaler"])
def test_same_update_as_torch_fused_on_cuda(scaler):
    """The trainer's CUDA configuration: fused kernels, and the GradScaler's grad_scale/found_inf hand-off."""
    ours, _ = _train(AdamW, device="cuda", scaler=scaler, fused=True)
    ref, _ = _train(torch.optim.AdamW, device="cuda", scaler=scaler, fused=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    short, _ = _train(AdamW, steps=14, device="cuda", scaler=scaler, fused=True)
    assert not all(torch.equal(a, b) for a, b in zip(short, ref))  # negative control


_PROBE = """
import sys, torch
from models.data.chars import CharData
from models.gpt import GPTConfig
from models.training.gpt_chars import TrainConfig, make_run
data = CharData.from_text("abcdefgh" * 500)
tc = TrainConfig(batch_size=4, max_iters=3, eval_interval=3, eval_iters=2, device="cpu", progress=False)
if sys.argv[1] == "torch":
    import models.training.loop as t
    t.AdamW = torch.optim.AdamW
make_run(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=data.vocab_size), tc, data).fit()
print("torch._dynamo" in sys.modules)
"""


@pytest.mark.slow
def test_eager_cpu_training_never_imports_dynamo():
    """Three steps and an evaluation leave torch._dynamo unimported (its import is ~1.2 s of a 2-core
    CPU run); the same probe with torch.optim.AdamW imports it, so the probe can tell."""
    run = lambda which: subprocess.run(  # noqa: E731
        [sys.executable, "-c", _PROBE, which], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert run("ours") == "False"
    assert run("torch") == "True"  # negative control

"""The project's GPT as the FLOP-counting checks build it, and the FLOPs of its steps, counted by
``FlopCounterMode`` (:func:`numeric.flops.count_flops`; 2 FLOPs per multiply-add).

The GPT has no biases and writes attention out (``attn="manual"``), so that every matmul, attention
included, is counted on every device; what it multiplies by are the weights of its ``nn.Linear``
layers (:func:`linear_weights`).

>>> m = counted_gpt(layers=1, width=8, heads=2, context=4, vocab=5, device="cpu")
>>> linear_weights(m.h), forward_flops(m, torch.zeros(1, 4, dtype=torch.long))
(768, 6976)
"""

from __future__ import annotations

import torch

from models.gpt import GPT, GPTConfig
from numeric.flops import count_flops


def counted_gpt(layers: int, width: int, heads: int, context: int, vocab: int, device, **style) -> GPT:
    """A bias-free GPT with attention written out, built on ``device``; ``style`` holds further
    ``GPTConfig`` fields (``mlp="swiglu"``, ``tie_weights=False``, ...). In training mode.

    >>> counted_gpt(1, 8, 2, 4, 5, "cpu", mlp="swiglu").config.mlp
    'swiglu'
    """
    fields = dict(block_size=context, vocab_size=vocab, n_layer=layers, n_head=heads, n_embd=width)
    with torch.device(device):
        return GPT(GPTConfig(**fields, bias=False, attn="manual", **style))


def linear_weights(module: torch.nn.Module) -> int:
    """Weights of every ``nn.Linear`` inside ``module``: what its matmuls multiply by.

    >>> linear_weights(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)))
    20
    """
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def inference_flops(fn) -> int:
    """FLOPs recorded while ``fn()`` runs under ``torch.no_grad()`` (inference).

    >>> inference_flops(lambda: torch.ones(2, 3) @ torch.ones(3, 4))
    48
    """
    with torch.no_grad():
        return count_flops(fn)[1]


def forward_flops(model: GPT, idx) -> int:
    """FLOPs of one full forward of ``model`` over the token ids ``idx`` (B, n), without gradients.

    >>> forward_flops(counted_gpt(1, 8, 2, 4, 5, "cpu"), torch.zeros(1, 2, dtype=torch.long))  # n (2N + 2dV) + 4Ln^2d
    3360
    """
    return inference_flops(lambda: model(idx))


def decode_flops(model: GPT, idx, t: int) -> int:
    """FLOPs of the KV-cache decode step at position ``t`` of ``idx`` (1, n). The cache is marked as
    holding t earlier positions without running the prefill: their entries do not change the count.

    >>> m, idx = counted_gpt(1, 8, 2, 4, 5, "cpu"), torch.zeros(1, 4, dtype=torch.long)
    >>> decode_flops(m, idx, 3) - decode_flops(m, idx, 2)  # 4 L d more per position
    32
    """
    cache = model.new_cache(1, t + 1)
    cache.length = t
    return inference_flops(lambda: model(idx[:, t : t + 1], cache=cache))


def train_step_flops(model: GPT, idx, targets) -> tuple[int, int]:
    """(forward FLOPs, backward FLOPs) of one training step's loss on ``idx`` and ``targets`` (B, n).

    >>> fwd, bwd = train_step_flops(counted_gpt(1, 8, 2, 4, 5, "cpu"), *torch.zeros(2, 1, 4, dtype=torch.long))
    >>> bwd == 2 * fwd
    True
    """
    model.zero_grad(set_to_none=True)
    loss, fwd = count_flops(lambda: model(idx, targets)[1])
    _, bwd = count_flops(loss.backward)
    return fwd, bwd

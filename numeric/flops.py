"""Counting the FLOPs PyTorch runs: ``torch.utils.flop_counter.FlopCounterMode`` around a call.

The counter records matrix products (2 FLOPs per multiply-add) and the attention kernels it has
formulas for; elementwise work (softmax, scaling, masking) is not counted. Gradient mode is the
caller's: wrap the call in ``torch.no_grad()`` for inference.

``F.scaled_dot_product_attention`` is counted on every device. torch (2.13) has formulas for its
CUDA kernels only; on the CPU it runs ``aten._scaled_dot_product_flash_attention_for_cpu`` (4-D
inputs without dropout; other calls decompose into counted matmuls), which the counter would
count as 0. Here that kernel and its backward get torch's own CUDA formulas: forward
2·b·h_q·L·S·(d_k + d_v), the full L x S score matrix even under a causal or other mask (as
written-out attention counts it), with GQA counted over the h_q query heads; backward
2·b·h_q·L·S·(3·d_k + 2·d_v), which includes recomputing the scores, so one call counts
2·b·h_q·L·S·d_k more in the backward than attention written out as q @ kᵀ, softmax, @ v.

An attention or transformer kernel the counter has no formula for (``nn.MultiheadAttention``'s and
``nn.TransformerEncoderLayer``'s fused inference paths, MPS or other backends' SDPA kernels) makes
:func:`count_flops` raise ``ValueError`` rather than return an undercount.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

T = TypeVar("T")
aten = torch.ops.aten


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# the CPU SDPA kernel takes (query, key, value, ...) and its backward (grad_out, query, key, value, ...),
# the argument order of the CUDA kernels that torch's formulas are written for
CPU_SDPA = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
}
FUSED_WORDS = ("attention", "transformer")  # an op so named that runs as one uncounted kernel is refused


class _RefuseUncounted(TorchDispatchMode):
    """Sits under the counter and sees every op the counter runs whole: refuses an uncounted fused one."""

    def __init__(self, registry):
        super().__init__()
        self.registry = registry

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "_overloadpacket", func)
        name = getattr(packet, "__name__", str(packet))
        if packet not in self.registry and any(w in name for w in FUSED_WORDS):
            raise ValueError(
                f"count_flops: {func} runs attention in one kernel that FlopCounterMode has no formula for; "
                "counting it as 0 FLOPs would undercount (write attention out, or use a path that calls SDPA)"
            )
        return func(*args, **(kwargs or {}))


def count_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn()`` once and return (its result, the FLOPs the counter recorded).

    Raises ValueError if ``fn`` runs an attention kernel that cannot be counted (see the module docstring).

    Examples
    --------
    >>> out, flops = count_flops(lambda: torch.ones(2, 3) @ torch.ones(3, 4))
    >>> out.shape, flops  # 2 * 3 * 4 multiply-adds, 2 FLOPs each
    (torch.Size([2, 4]), 48)
    """
    fc = FlopCounterMode(display=False, custom_mapping=CPU_SDPA)
    with _RefuseUncounted(fc.flop_registry), fc:
        out = fn()
    return out, int(fc.get_total_flops())

"""Counting the FLOPs PyTorch runs: ``torch.utils.flop_counter.FlopCounterMode`` around a call.

The counter records matrix products (2 FLOPs per multiply-add) and attention kernels where it
knows them (``F.scaled_dot_product_attention`` on CUDA, not on the CPU); elementwise work is not
counted. Gradient mode is the caller's: wrap the call in ``torch.no_grad()`` for inference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch.utils.flop_counter import FlopCounterMode

T = TypeVar("T")


def count_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn()`` once and return (its result, the FLOPs the counter recorded)."""
    with FlopCounterMode(display=False) as fc:
        out = fn()
    return out, int(fc.get_total_flops())

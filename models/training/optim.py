"""AdamW that trains without importing ``torch._dynamo``.

``torch.optim.AdamW`` wraps ``step``, ``zero_grad`` and ``add_param_group`` in guards that import
``torch._dynamo`` on first use, so that a compiled optimizer graph-breaks around them. Eager training
never needs it, and the import costs about 1.2 s on a 2-core CPU: a tenth of a 200-step run of the
``cpu`` preset. This class runs torch's own unwrapped methods, so the update (foreach or fused
kernels, same numerics) and the state dict are torch's; only the import is skipped.
"""

from __future__ import annotations

import inspect

import torch

_ADAM_STEP = inspect.unwrap(torch.optim.Adam.step)  # the update itself, under the dynamo guards


class AdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` minus the lazy ``torch._dynamo`` import; not meant to be compiled itself."""

    add_param_group = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    zero_grad = inspect.unwrap(torch.optim.Optimizer.zero_grad)

    def step(self, closure=None):
        """One AdamW update (Loshchilov & Hutter 2019), exactly ``torch.optim.AdamW.step``."""
        with torch.set_grad_enabled(self.defaults["differentiable"]):  # as torch's guard does
            return _ADAM_STEP(self, closure)

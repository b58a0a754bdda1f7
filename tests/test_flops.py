"""numeric.flops: a matmul of (m, k) by (k, n) counts 2 m k n FLOPs; elementwise work counts none."""

import torch

from numeric.flops import count_flops


def test_matmul_counts_two_per_multiply_add():
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    out, flops = count_flops(lambda: a @ b)
    assert out.shape == (3, 7) and flops == 2 * 3 * 5 * 7
    assert count_flops(lambda: a @ b @ b.T)[1] == 2 * 3 * 5 * 7 + 2 * 3 * 7 * 5


def test_elementwise_counts_nothing():
    x = torch.randn(100)
    assert count_flops(lambda: (x * 2 + 1).exp())[1] == 0

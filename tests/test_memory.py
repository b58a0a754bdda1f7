"""models.utils.memory: peak_bytes measures what fn allocates (a known tensor counts, at least its bytes and not much
more; a tensor that was live before fn does not; freeing old memory does not make the peak negative; the peak of
two live tensors is their sum, of two freed in turn the larger), on the CPU and on CUDA; the measurement repeats to
the byte. loglog_slope recovers exact power laws and refuses bad input naming the argument."""

import math

import numpy as np
import pytest
import torch

from models.utils.memory import loglog_slope, peak_bytes

N = 1 << 20  # bytes of the known tensor: 1 MiB
SLACK = 4096  # bookkeeping the allocator may add (CUDA rounds blocks to 512 bytes; the CPU adds nothing)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_a_known_tensor_is_measured(device):
    got = peak_bytes(lambda: torch.empty(N, dtype=torch.uint8, device=device), device)
    assert N <= got < N + SLACK


@pytest.mark.parametrize("device", DEVICES)
def test_a_tensor_live_before_fn_does_not_count(device):
    old = torch.ones(2 * N, dtype=torch.float32, device=device)
    got = peak_bytes(lambda: old + 1, device)  # only the new result (N * 8 bytes once) is allocated
    assert 8 * N <= got < 8 * N + SLACK
    assert peak_bytes(lambda: old.sum(), device) < SLACK  # reading it allocates nothing large
    # a temporary inside one operator is seen: summing uint8 first casts to int64 (8 bytes per element)
    small = torch.ones(N, dtype=torch.uint8, device=device)
    assert 8 * N <= peak_bytes(lambda: small.sum(), device) < 8 * N + SLACK


@pytest.mark.parametrize("device", DEVICES)
def test_peak_of_live_and_of_freed_tensors(device):
    def both_live():
        a = torch.ones(N, dtype=torch.uint8, device=device)
        b = torch.ones(2 * N, dtype=torch.uint8, device=device)
        return a, b

    def one_at_a_time():
        a = torch.ones(N, dtype=torch.uint8, device=device)
        del a
        b = torch.ones(2 * N, dtype=torch.uint8, device=device)
        return b

    assert 3 * N <= peak_bytes(both_live, device) < 3 * N + SLACK
    assert 2 * N <= peak_bytes(one_at_a_time, device) < 2 * N + SLACK  # not 3N: a was freed first


def test_freeing_memory_from_before_gives_zero_not_negative():
    box = [torch.ones(N, dtype=torch.uint8)]
    assert peak_bytes(lambda: box.pop(), "cpu") == 0


def test_nested_operators_are_not_counted_twice():
    # torch.ones calls aten::empty inside aten::ones; the profiler reports the bytes on both
    assert peak_bytes(lambda: torch.ones(N // 4, dtype=torch.float32), "cpu") == N


def test_repeated_measurement_is_identical():
    x = torch.randn(64, 64)
    fn = lambda: (x @ x).softmax(-1) @ x  # noqa: E731
    assert len({peak_bytes(fn, "cpu") for _ in range(3)}) == 1


def test_profiler_lines_do_not_reach_stderr(capfd):
    peak_bytes(lambda: torch.empty(10), "cpu")
    assert "USDT" not in capfd.readouterr().err


@pytest.mark.parametrize("bad, name", [(None, "fn"), (3, "fn"), ("x", "fn")])
def test_bad_fn(bad, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        peak_bytes(bad, "cpu")


@pytest.mark.parametrize("bad", ["tpu", "nonsense", 7])
def test_bad_device(bad):
    with pytest.raises(ValueError, match="^device:"):
        peak_bytes(lambda: None, bad)


@pytest.mark.parametrize("k", [1.0, 2.0, 0.5])
def test_slope_of_exact_power_laws(k):
    ns = [128, 256, 512, 1024]
    slope, se = loglog_slope(ns, [3.0 * n**k for n in ns])
    assert math.isclose(slope, k, abs_tol=1e-12) and se < 1e-12


def test_slope_of_quadratic_plus_linear_lies_between_1_and_2():
    ns = np.array([128, 256, 512, 1024])
    slope, se = loglog_slope(ns, ns**2 + 100 * ns)
    assert 1 < slope < 2 and se > 0


@pytest.mark.parametrize(
    "ns, values, name",
    [
        ([1, 2, 3], [1, 2], "values"),
        ([1, 2], [1, 2], "ns"),
        ([1, 2, 0], [1, 2, 3], "ns"),
        ([1, 2, 3], [1, -2, 3], "values"),
        ([1, 2, float("nan")], [1, 2, 3], "ns"),
        ([1, 2, 3], [1, 2, float("inf")], "values"),
        ([2, 2, 2], [1, 2, 3], "ns"),
        (["a", "b", "c"], [1, 2, 3], "ns"),
        ([[1, 2, 3]], [1, 2, 3], "ns"),
    ],
)
def test_slope_bad_input_names_the_argument(ns, values, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        loglog_slope(ns, values)


def test_slope_and_stderr_match_scipy():
    from scipy.stats import linregress

    ns = np.array([100, 200, 400, 800, 1600])
    values = 5.0 * ns**1.5 * np.array([1.0, 1.1, 0.9, 1.05, 0.97])
    slope, se = loglog_slope(ns, values)
    ref = linregress(np.log(ns), np.log(values))
    assert math.isclose(slope, ref.slope, rel_tol=1e-12) and math.isclose(se, ref.stderr, rel_tol=1e-9)

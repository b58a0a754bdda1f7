"""Exercise 13.9 (proofs.attention_memory): the derivation is proved and its crossovers have the right values (by an
independent float computation); the slope test's tolerance follows its formula and refuses settings where it could
not tell n^2 from n; the measurement sees the n x n tensors of naive attention and not of fused SDPA, whose CPU
backend is the one that runs; and a small check passes with every control rejected."""

import math

import pytest
import sympy as sp
import torch

from proofs import attention_memory as am

GPT2 = dict(L=12, h=12, d=768, P=124_439_808)
LLAMA = dict(L=32, h=32, d=4096, P=6_738_415_616)


def test_derivation_is_proved():
    d = am.derivation()
    assert d.status == "proved" and len(d.steps) >= 10


def test_weight_counts_come_from_derive_counts():
    assert am.MODELS["GPT-2 small"][3] == GPT2["P"]
    assert am.MODELS["LLaMA-7B"][3] == LLAMA["P"]


@pytest.mark.parametrize("m", [GPT2, LLAMA])
def test_crossovers_by_an_independent_float_computation(m):
    """At n*, L layers of 2 h n^2 numbers (b = 1) equal the weights, and 2 h n^2 per layer equal 2 L n d (KV cache);
    one layer's equal the weights and the KV cache at the inference crossovers."""
    sub = {am.L: m["L"], am.h: m["h"], am.d: m["d"], am.b: 1, am.Pw: m["P"]}
    got = {k: float(v.subs(sub)) for k, v in am.crossovers().items()}
    train = lambda n: m["L"] * 2 * m["h"] * n * n  # noqa: E731  numbers kept in training
    layer = lambda n: 2 * m["h"] * n * n  # noqa: E731
    kv = lambda n: 2 * m["L"] * n * m["d"]  # noqa: E731
    assert math.isclose(train(got["training vs weights"]), m["P"], rel_tol=1e-12)
    assert math.isclose(train(got["training vs KV cache"]), kv(got["training vs KV cache"]), rel_tol=1e-12)
    assert math.isclose(layer(got["inference vs weights"]), m["P"], rel_tol=1e-12)
    assert math.isclose(layer(got["inference vs KV cache"]), kv(got["inference vs KV cache"]), rel_tol=1e-12)


def test_crossover_values():
    def at(m):
        sub = {am.L: m["L"], am.h: m["h"], am.d: m["d"], am.b: 1, am.Pw: m["P"]}
        return [round(float(v.subs(sub)), 1) for v in am.crossovers().values()]

    assert at(GPT2) == [657.3, 64.0, 2277.1, 768.0]
    assert at(LLAMA) == [1813.9, 128.0, 10261.0, 4096.0]


def test_bytes_per_number_cancel_and_the_n2_term_dominates():
    assert all(am.s not in v.free_symbols for v in am.crossovers().values())
    ratio = sp.simplify(am.L * am.layer_bytes() / am.kv_bytes())
    assert sp.limit(ratio, am.n, sp.oo) == sp.oo


def test_llama_training_at_4096_keeps_64_gib():
    got = (am.L * am.layer_bytes()).subs({am.L: 32, am.h: 32, am.b: 1, am.n: 4096, am.s: 2})
    assert got == 64 * 2**30


def test_slope_tolerance_formula_and_its_bound():
    assert am.slope_tolerance(16, 256) == pytest.approx(2 * 6 * 16 / (6 * 16 + 2 * 256))
    assert am.slope_tolerance(16, 9 * 16) == pytest.approx(am.MAX_TOL)  # min_n = 9 d_k is the edge
    assert am.slope_tolerance(64, 128) > am.MAX_TOL


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(min_n=256, max_n=512), "max_n"),  # fewer than 3 sizes
        (dict(min_n=256, max_n=3000), "max_n"),  # not on the grid
        (dict(min_n=128, max_n=1024, head_dim=64), "min_n"),  # slope test could not tell n^2 from n
        (dict(min_n=2048, max_n=16384, heads=8), "max_n"),  # memory
        (dict(head_dim=0), "head_dim"),
        (dict(heads=1000), "heads"),
    ],
)
def test_bad_settings_name_the_option(kw, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        am.check(device="cpu", **kw)


def test_the_cpu_sdpa_backend_is_flash_and_efficient_does_not_run_there():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn, name = am._fused(torch.device("cpu"))
    assert name == "FLASH_ATTENTION"
    q = torch.randn(1, 2, 64, 8)
    torch.testing.assert_close(attn(q, q, q), torch.nn.functional.scaled_dot_product_attention(q, q, q))
    with pytest.raises(RuntimeError), sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)


def test_the_measurement_sees_the_n_by_n_tensors_of_naive_attention_only():
    from models.utils.memory import peak_bytes

    h, n, dk = 2, 512, 8
    q, k, v = (torch.randn(1, h, n, dk) for _ in range(3))
    unit = h * n * n * 4
    naive = peak_bytes(am._forward(am._naive, q, k, v), "cpu")
    fused = peak_bytes(am._forward(am._fused(torch.device("cpu"))[0], q, k, v), "cpu")
    assert am.K_QUAD * unit <= naive < (am.K_PEAK + 0.1) * unit
    # the fused kernel keeps the output and O(n) buffers (per thread, so their size varies with the machine), never
    # an n x n tensor: at 4n its peak grows at most linearly, where naive attention's grows 16-fold
    q4, k4, v4 = (torch.randn(1, h, 4 * n, dk) for _ in range(3))
    naive4 = peak_bytes(am._forward(am._naive, q4, k4, v4), "cpu")
    fused4 = peak_bytes(am._forward(am._fused(torch.device("cpu"))[0], q4, k4, v4), "cpu")
    assert fused >= h * n * dk * 4 and fused4 / fused <= 4.5 and naive4 / naive > 14


def test_a_small_check_passes_with_every_control_rejected():
    res = am.check(device="cpu", min_n=64, max_n=256, head_dim=4)
    assert res.passed, res.text()
    assert len(res.claims) == 5 and len(res.controls) == 4
    assert all(not c.agrees for c in res.controls)
    assert [row["n"] for row in res.table] == [64, 128, 256]


@pytest.mark.slow
def test_a_larger_grid_still_passes():
    res = am.check(device="cpu", min_n=1024, max_n=4096, head_dim=64, heads=1)  # d_k = 64 needs min_n >= 576
    assert res.passed, res.text()

"""numeric.fused: the fused Triton kernel of the dot-product Monte Carlo.

* host-side parts (validation, dispatch rules, the merge of per-program power sums, the
  package without triton) run everywhere;
* the kernel itself runs under Triton's numpy interpreter (TRITON_INTERPRET=1) on the CPU, in
  a child process because the interpreter must be chosen before triton is first imported;
  skipped where triton is not installed (CI installs only the project's dependencies);
* ``gpu`` tests run the compiled kernel on CUDA (skipped without it).

Statistical checks are two-sided z-tests at false-alarm rate 1e-9 (TESTING.md), with sample
counts large enough that a 5 % error is rejected with probability >= 1 - 1e-6.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from numeric import dotprod, fused
from numeric.montecarlo import Moments, stream
from numeric.stats import Estimate, compare, samples_for_power

ROOT = Path(__file__).resolve().parents[1]
RATE, MISS = 1e-9, 1e-6
CV = {  # sd of (q·k)^2 over Var(q·k), at d_k = 64: sqrt((E[x^4] - d^2) / d^2)
    "gaussian": math.sqrt(2 * (64 + 3) / 64),  # E[x^4] = 3d^2 + 6d
    "uniform": math.sqrt(2 + 0.24 / 64),  # E[x^4] = 3d(d-1) + (9/5)^2 d
    "rademacher": math.sqrt(2 * (64 - 1) / 64),  # E[x^4] = 3d^2 - 2d
}
N_POWER = samples_for_power(0.05, CV["gaussian"], RATE, MISS)  # 98,826: the most any dist needs


def _must_agree(est: Estimate, claimed: float, what: str) -> None:
    v = compare(est, claimed, what, RATE)
    assert v.agrees, str(v)


def _must_reject(est: Estimate, wrong: float, what: str) -> None:
    v = compare(est, wrong, what, RATE)
    assert not v.agrees, str(v)


# -- host side: no triton needed ------------------------------------------------------------


def test_distributions_match_the_plain_sampler():
    assert fused.DISTRIBUTIONS == dotprod.DISTRIBUTIONS


def test_calls_per_sample():
    assert [fused.calls_per_sample(d, "gaussian") for d in (1, 2, 5, 64)] == [1, 1, 3, 32]
    assert [fused.calls_per_sample(d, "uniform") for d in (1, 64, 65)] == [1, 32, 33]
    assert [fused.calls_per_sample(d, "rademacher") for d in (1, 64, 65, 128)] == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((100, 0, "gaussian"), "d_k"),
        ((100, -3, "gaussian"), "d_k"),
        ((0, 8, "gaussian"), "samples"),
        ((-1, 8, "gaussian"), "samples"),
        ((100, 8, "cauchy"), "dist"),
        ((1 << 62, 64, "gaussian"), "samples"),
    ],
)
def test_bad_input_names_the_parameter_before_any_kernel(args, name):
    with pytest.raises(ValueError, match=name):
        fused.fused_dot_product_moments(args[0], args[1], torch.Generator(), args[2])


def test_merge_power_sums_equals_moments_of_all_samples():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10_000, generator=gen, dtype=torch.float64) * 3 + 0.25
    sizes = [1, 7, 4096, 3000, 2896]
    groups = torch.split(x, sizes)
    sums = torch.stack([torch.stack([g.sum(), (g**2).sum(), (g**3).sum(), (g**4).sum()]) for g in groups])
    got = fused.merge_power_sums(torch.tensor(sizes), sums)
    want = Moments.of(x)
    assert got.n == want.n
    for f in ("mean", "m2", "m3", "m4"):
        assert getattr(got, f) == pytest.approx(getattr(want, f), rel=1e-9, abs=1e-9), f
    with pytest.raises(ValueError, match="counts"):
        fused.merge_power_sums(torch.tensor([3, 0]), torch.zeros(2, 4))


def test_dispatch_rules():
    assert fused.use_fused("cpu", False) is False
    assert fused.use_fused("cuda", False) is False
    with pytest.raises(ValueError, match="fused"):
        fused.use_fused("cpu", "yes")
    if not fused._interpreting():
        assert fused.use_fused("cpu", None) is False  # the CPU default stays the torch path
        with pytest.raises(ValueError, match="fused"):
            fused.use_fused("cpu", True)


def test_cpu_default_is_the_unchanged_torch_stream():
    got = dotprod.dot_product_moments(5000, 16, torch.Generator().manual_seed(9), "uniform", 0.5)
    want = stream(
        lambda m, g: dotprod.dot_products(m, 16, g, "uniform", 0.5), 5000, torch.Generator().manual_seed(9), 1 << 18
    )
    assert got == want
    forced = dotprod.dot_product_moments(5000, 16, torch.Generator().manual_seed(9), "uniform", 0.5, fused=False)
    assert forced == want


@pytest.mark.slow
def test_package_works_without_triton():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["triton"] = None  # as if not installed
        import torch
        from numeric import dotprod, fused, bench
        assert not fused.triton_installed() and not fused.available("cuda") and not fused.available("cpu")
        assert not fused.use_fused("cuda", None)
        try:
            fused.use_fused("cuda", True)
        except ValueError as e:
            assert "fused" in str(e) and "not installed" in str(e)
        else:
            raise AssertionError("fused=True without triton must raise")
        try:
            fused.fused_dot_product_moments(10, 4, torch.Generator())
        except fused.FusedError:
            pass
        else:
            raise AssertionError("no FusedError")
        m = dotprod.dot_product_moments(1000, 4, torch.Generator().manual_seed(0))
        assert m.n == 1000
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# -- the kernel under Triton's interpreter (CPU, numpy), in a child process -----------------------

CHILD = textwrap.dedent(
    """
    import json, math, sys, torch
    from numeric import dotprod, fused
    from numeric.montecarlo import Moments

    out = {}
    assert fused.available("cpu") and fused._interpreting()
    try:  # triton <= 3.6's interpreter cannot take a run-time loop bound under numpy >= 2.4
        fused.fused_samples(4, 3, 1, block=16, iters=1)
    except fused.FusedError as e:
        if "0-dimensional" not in str(e):
            raise
        import numpy, triton
        print(json.dumps({"skip": f"triton {triton.__version__} interpreter with numpy {numpy.__version__}: {e}"}))
        sys.exit(0)

    # 1. the kernel's dot products equal q.k of explicit components built from Triton's own
    #    Philox words (tl.randint4x), for odd and even d_k and partial Rademacher counters;
    #    block=64, iters=2 over 300 samples: several programs and a masked tail
    seed = 2**62 + 12345
    ref = {}
    for dist, dks in [("gaussian", [1, 2, 5, 64]), ("uniform", [1, 3, 64]),
                      ("rademacher", [1, 31, 32, 33, 64, 70, 128])]:
        for d in dks:
            n = 300
            x, m = fused.fused_samples(n, d, seed, dist, block=64, iters=2)
            calls = fused.calls_per_sample(d, dist)
            words = fused.philox_words(torch.arange(n * calls), seed).view(n, calls, 4)
            want = fused.reference_dot_products(words, d, dist)
            direct = Moments.of(x)
            ref[f"{dist}/{d}"] = {
                "max_abs_err": (x.double() - want).abs().max().item(),
                "max_abs": want.abs().max().item(),
                "n": m.n,
                "moment_rel_err": max(abs(getattr(m, f) - getattr(direct, f)) / max(abs(getattr(direct, f)), 1e-30)
                                      for f in ("m2", "m4")),
                "mean_abs_err": abs(m.mean - direct.mean),
            }
    out["reference"] = ref

    # 2. the kernel's Philox equals tl.randint4x, also for counters and keys above 2^32
    g = torch.Generator().manual_seed(0)
    ctr = torch.cat([torch.arange(64), torch.randint(0, 2**62, (2000,), generator=g), torch.tensor([2**32 - 1, 2**32])])
    for key in (0, 12345, 2**32 + 7, 2**63 - 25):
        a, b = fused.philox_words(ctr, key), fused.philox_words(ctr, key, own=True)
        out.setdefault("philox_equal", []).append(bool(torch.equal(a, b)))

    # 3. statistics: Var(q.k) and E[q.k]
    def est(m):
        v, e = m.variance_estimate(), m.mean_estimate()
        return {"var": [v.value, v.stderr, v.n], "mean": [e.value, e.stderr, e.n]}
    big = int(sys.argv[1])
    out["stats"] = {
        "gaussian/64": est(fused.fused_dot_product_moments(big, 64, torch.Generator().manual_seed(11))),
        "uniform/64": est(fused.fused_dot_product_moments(big, 64, torch.Generator().manual_seed(12), "uniform")),
        "rademacher/64": est(fused.fused_dot_product_moments(big, 64, torch.Generator().manual_seed(13), "rademacher")),
        "gaussian/5": est(fused.fused_dot_product_moments(65536, 5, torch.Generator().manual_seed(14))),
        "rademacher/70": est(fused.fused_dot_product_moments(big, 70, torch.Generator().manual_seed(15), "rademacher")),
    }

    # 4. reproducible with the generator's seed; fresh seeds on successive calls; scale
    def run(gen, **kw):
        return fused.fused_dot_product_moments(20000, 8, gen, **kw).__dict__
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    first, again = run(g1), run(g2)
    out["same_seed_equal"] = first == again
    out["next_call_differs"] = run(g1) != first
    scaled = fused.fused_dot_product_moments(20000, 8, torch.Generator().manual_seed(7), scale=-0.125).__dict__
    out["scale"] = {"m2_ratio": scaled["m2"] / first["m2"], "m3_ratio": scaled["m3"] / first["m3"],
                    "mean_ratio": scaled["mean"] / first["mean"]}

    # 5. dispatch: fused=True runs the kernel (here on the CPU, interpreted)
    via = dotprod.dot_product_moments(20000, 8, torch.Generator().manual_seed(7), fused=True).__dict__
    out["dispatch_equal"] = via == first

    # 6. a request split over several launches gives the same samples' moments as one launch
    one = fused.fused_dot_product_moments(5000, 3, torch.Generator().manual_seed(8), block=64, iters=2).__dict__
    fused.MAX_PROGRAMS = 3
    many = fused.fused_dot_product_moments(5000, 3, torch.Generator().manual_seed(8), block=64, iters=2).__dict__
    out["launches"] = {"one": one, "many": many}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def interp():
    pytest.importorskip("triton")
    big = math.ceil(N_POWER / 32768) * 32768  # whole interpreter blocks: 131,072
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(big)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, f"interpreter run failed:\n{r.stderr[-4000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    return out | {"big": big}


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_dot_products_equal_explicit_components(interp):
    for key, r in interp["reference"].items():
        dist = key.split("/")[0]
        tol = 0.0 if dist == "rademacher" else 1e-4 * (1 + r["max_abs"])
        assert r["max_abs_err"] <= tol, (key, r)
        assert r["n"] == 300


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_kernel_reduction_equals_moments_of_its_samples(interp):
    for key, r in interp["reference"].items():
        assert r["moment_rel_err"] <= 1e-6, (key, r)
        assert r["mean_abs_err"] <= 1e-6, (key, r)


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_own_philox_equals_triton_randint4x(interp):
    assert interp["philox_equal"] == [True] * 4


@pytest.mark.parametrize("key", ["gaussian/64", "uniform/64", "rademacher/64", "gaussian/5", "rademacher/70"])
@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_variance_is_d_k_and_mean_is_zero(interp, key):
    d = int(key.split("/")[1])
    var, mean = Estimate(*interp["stats"][key]["var"]), Estimate(*interp["stats"][key]["mean"])
    _must_agree(var, d, f"{key}: Var(q·k) = d_k")
    _must_agree(mean, 0.0, f"{key}: E[q·k] = 0")
    if d > 1:
        _must_reject(var, d * d, f"{key}: Var(q·k) = d_k^2")


@pytest.mark.parametrize("dist", ["gaussian", "uniform", "rademacher"])
@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_checks_have_power_against_a_5_percent_error(interp, dist):
    var = Estimate(*interp["stats"][f"{dist}/64"]["var"])
    assert var.n >= samples_for_power(0.05, CV[dist], RATE, MISS)
    _must_reject(var, 64 * 1.05, f"{dist}: Var(q·k) = 1.05 d_k")
    _must_reject(var, 64 * 0.95, f"{dist}: Var(q·k) = 0.95 d_k")


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_same_seed_same_result_and_fresh_seeds(interp):
    assert interp["same_seed_equal"] is True
    assert interp["next_call_differs"] is True


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_scale_multiplies_the_moments(interp):
    s = interp["scale"]
    assert s["m2_ratio"] == pytest.approx(0.125**2, rel=1e-12)
    assert s["m3_ratio"] == pytest.approx(-(0.125**3), rel=1e-12)
    assert s["mean_ratio"] == pytest.approx(-0.125, rel=1e-12)


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_dispatch_true_runs_the_kernel(interp):
    assert interp["dispatch_equal"] is True


@pytest.mark.slow  # the interpreter run (a child process) takes seconds
def test_interp_split_launches_equal_one_launch(interp):
    one, many = interp["launches"]["one"], interp["launches"]["many"]
    assert one["n"] == many["n"] == 5000
    for f in ("mean", "m2", "m3", "m4"):
        assert many[f] == pytest.approx(one[f], rel=1e-9, abs=1e-9), f


# -- the compiled kernel on CUDA ---------------------------------------------------------------


def _cuda_gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cuda").manual_seed(seed)


@pytest.mark.gpu
@pytest.mark.parametrize("dist", ["gaussian", "uniform", "rademacher"])
@pytest.mark.parametrize("d_k", [64, 5, 70])
def test_gpu_variance_is_d_k(dist, d_k):
    pytest.importorskip("triton")
    n = 1 << 26
    m = fused.fused_dot_product_moments(n, d_k, _cuda_gen(21), dist)
    var = m.variance_estimate()
    _must_agree(var, d_k, f"{dist} d_k={d_k}: Var(q·k) = d_k")
    _must_agree(m.mean_estimate(), 0.0, f"{dist} d_k={d_k}: E[q·k] = 0")
    _must_reject(var, d_k * d_k, "Var(q·k) = d_k^2")
    _must_reject(var, d_k * 1.01, "Var(q·k) = 1.01 d_k")  # 2^26 samples resolve 1 %


@pytest.mark.gpu
def test_gpu_fast_and_accurate_math_both_agree():
    pytest.importorskip("triton")
    for fast in (True, False):
        m = fused.fused_dot_product_moments(1 << 26, 64, _cuda_gen(22), fast_math=fast)
        _must_agree(m.variance_estimate(), 64, f"fast_math={fast}: Var(q·k) = 64")
        # a coarse look at the tails: E[x^4] = 3 d^2 + 6 d; 1 % is about 25 standard errors here
        mu4 = m.m4 / m.n
        assert abs(mu4 - (3 * 64**2 + 6 * 64)) / (3 * 64**2 + 6 * 64) < 0.01


@pytest.mark.gpu
def test_gpu_large_run_with_counters_above_2_to_32_and_two_launches():
    pytest.importorskip("triton")
    n = (1 << 31) + 12345  # 2^36 Philox counters; more than one launch at the default shape
    m = fused.fused_dot_product_moments(n, 64, _cuda_gen(23))
    assert m.n == n
    _must_agree(m.variance_estimate(), 64, "Var(q·k) = 64 over 2^31 samples")
    _must_reject(m.variance_estimate(), 64 * 1.001, "Var(q·k) = 1.001 d_k")


@pytest.mark.gpu
@pytest.mark.parametrize(("dist", "d_k"), [("gaussian", 64), ("gaussian", 5), ("uniform", 7), ("rademacher", 70)])
def test_gpu_dot_products_equal_explicit_components(dist, d_k):
    pytest.importorskip("triton")
    n, seed = 5000, 2**62 + 99
    x, m = fused.fused_samples(n, d_k, seed, dist, device="cuda")
    calls = fused.calls_per_sample(d_k, dist)
    words = fused.philox_words(torch.arange(n * calls, device="cuda"), seed).view(n, calls, 4)
    want = fused.reference_dot_products(words, d_k, dist)
    tol = 0 if dist == "rademacher" else 1e-3 * (1 + want.abs().max().item())  # fast-math log2/cos
    assert (x.double() - want).abs().max().item() <= tol
    assert m.n == n


@pytest.mark.gpu
def test_gpu_own_philox_equals_triton_randint4x():
    pytest.importorskip("triton")
    ctr = torch.cat([torch.arange(1000), torch.randint(0, 2**62, (100_000,))]).cuda()
    for key in (0, 2**32 + 7, 2**63 - 25):
        assert torch.equal(fused.philox_words(ctr, key), fused.philox_words(ctr, key, own=True))


@pytest.mark.gpu
def test_gpu_reproducible_and_dispatched():
    pytest.importorskip("triton")
    a = fused.fused_dot_product_moments(1 << 22, 64, _cuda_gen(5))
    b = fused.fused_dot_product_moments(1 << 22, 64, _cuda_gen(5))
    assert a == b
    assert fused.use_fused(torch.device("cuda"), None)
    assert dotprod.dot_product_moments(1 << 22, 64, _cuda_gen(5)) == a
    assert dotprod.dot_product_moments(1 << 22, 64, _cuda_gen(5), fused=False) != a

"""numeric.montecarlo and numeric.stats: the Pébay merge is exact, stream() is chunked and
reproducible, compare() is two-sided, and the z and power formulas give TESTING.md's numbers."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numeric.montecarlo import Moments, stream
from numeric.stats import Estimate, compare, samples_for_power, z_for

FIELDS = ("mean", "m2", "m3", "m4")


def _close(a: Moments, b: Moments, x: torch.Tensor, rel: float = 1e-9) -> None:
    """a == b up to rounding: each central sum M_k within rel * sum |x - mean|^k, plus the effect of
    a centre off by d = 64 eps max|x| (the means agree only to rounding): n((max|c| + d)^k - max|c|^k)."""
    assert a.n == b.n
    x = x.double()
    c = (x - x.mean()).abs()
    d, cm, n = 64 * 2.0**-52 * x.abs().max().item(), c.max().item(), x.numel()
    tol = {"mean": rel * x.abs().max().item() + d}
    for k, f in ((2, "m2"), (3, "m3"), (4, "m4")):
        tol[f] = rel * (c**k).sum().item() + n * ((cm + d) ** k - cm**k)
    for f in FIELDS:
        assert abs(getattr(a, f) - getattr(b, f)) <= tol[f] + 1e-300, (f, getattr(a, f), getattr(b, f))


values = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=2, max_size=120)


@given(values, st.data(), st.floats(-1e4, 1e4))
def test_merge_of_two_parts_equals_one_shot(xs, data, shift):
    x = torch.tensor(xs, dtype=torch.float64) + shift
    cut = data.draw(st.integers(0, len(xs)), label="cut")
    merged = Moments.of(x[:cut]).merge(Moments.of(x[cut:]))
    _close(merged, Moments.of(x), x)


@given(values, st.lists(st.integers(0, 120), max_size=8))
def test_merge_of_many_parts_equals_one_shot(xs, cuts):
    x = torch.tensor(xs, dtype=torch.float64)
    edges = [0, *sorted(min(c, len(xs)) for c in cuts), len(xs)]
    acc = Moments()
    for lo, hi in zip(edges, edges[1:]):
        acc = acc.merge(Moments.of(x[lo:hi]))
    _close(acc, Moments.of(x), x)


def test_merge_with_empty_is_identity():
    m = Moments.of(torch.arange(10.0))
    assert Moments().merge(m) == m
    assert m.merge(Moments()) == m


def test_moments_of_known_data():
    m = Moments.of(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert (m.n, m.mean, m.m2, m.m3, m.m4) == (4, 2.5, 5.0, 0.0, 2 * (1.5**4 + 0.5**4))
    assert m.variance_estimate().value == pytest.approx(5.0 / 3)
    assert m.mean_estimate().stderr == pytest.approx(math.sqrt(5.0 / 3 / 4))


def test_estimates_need_enough_samples():
    with pytest.raises(ValueError, match="samples"):
        Moments.of(torch.tensor([1.0, 2.0, 3.0])).variance_estimate()
    with pytest.raises(ValueError, match="samples"):
        Moments.of(torch.tensor([1.0])).mean_estimate()


def _recording_sampler():
    asked: list[int] = []

    def sampler(m: int, gen: torch.Generator) -> torch.Tensor:
        asked.append(m)
        return torch.randn(m, generator=gen)

    return sampler, asked


def test_stream_uses_chunks_and_counts_every_sample():
    sampler, asked = _recording_sampler()
    m = stream(sampler, 1000, torch.Generator().manual_seed(0), chunk=64)
    assert asked == [64] * 15 + [40]
    assert m.n == 1000


def test_stream_is_reproducible_with_a_seed_and_differs_across_seeds():
    sampler, _ = _recording_sampler()
    a = stream(sampler, 5000, torch.Generator().manual_seed(3), chunk=512)
    b = stream(sampler, 5000, torch.Generator().manual_seed(3), chunk=512)
    c = stream(sampler, 5000, torch.Generator().manual_seed(4), chunk=512)
    assert a == b
    assert a != c


def test_stream_equals_one_shot_moments_of_the_same_draws():
    sampler, _ = _recording_sampler()
    streamed = stream(sampler, 3000, torch.Generator().manual_seed(5), chunk=256)
    gen = torch.Generator().manual_seed(5)
    x = torch.cat([torch.randn(min(256, 3000 - i), generator=gen) for i in range(0, 3000, 256)])
    _close(streamed, Moments.of(x), x)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"samples": 0}, "samples"), ({"samples": -5}, "samples"), ({"chunk": 0}, "chunk")],
)
def test_stream_rejects_bad_input_naming_the_parameter(kwargs, name):
    args = {"samples": 10, "chunk": 4} | kwargs
    with pytest.raises(ValueError, match=name):
        stream(lambda m, g: torch.zeros(m), args["samples"], torch.Generator(), args["chunk"])


def test_stream_rejects_a_sampler_that_returns_the_wrong_count():
    with pytest.raises(ValueError, match="sampler"):
        stream(lambda m, g: torch.zeros(m + 1), 10, torch.Generator(), 4)


def test_z_for_matches_testing_notes():
    assert round(z_for(1e-6), 2) == 4.89
    assert round(z_for(1e-9), 2) == 6.11
    assert z_for(0.05) == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5])
def test_z_for_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        z_for(rate)


def test_compare_is_two_sided():
    z = z_for(1e-9)
    assert compare(Estimate(64.0 + 0.9 * z, 1.0, 1000), 64.0, "x").agrees
    assert compare(Estimate(64.0 - 0.9 * z, 1.0, 1000), 64.0, "x").agrees
    assert not compare(Estimate(64.0 + 1.1 * z, 1.0, 1000), 64.0, "x").agrees
    assert not compare(Estimate(64.0 - 1.1 * z, 1.0, 1000), 64.0, "x").agrees  # far below fails too
    assert not compare(Estimate(0.0, 1.0, 1000), 64.0, "x").agrees


def test_compare_reports_z_and_rejects_bad_stderr():
    v = compare(Estimate(66.0, 0.5, 10), 64.0, "claim", rate=1e-6)
    assert (v.z, v.z_crit, v.rate, v.claim) == (4.0, z_for(1e-6), 1e-6, "claim")
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="stderr"):
            compare(Estimate(1.0, bad, 10), 1.0, "x")


def test_samples_for_power_matches_testing_notes():
    n = samples_for_power(0.05, math.sqrt(2 * 67 / 64), 1e-6, 1e-6)
    assert 77_000 <= n <= 79_000  # "about N = 78,000"
    assert samples_for_power(0.05, math.sqrt(2 * 67 / 64), 1e-9, 1e-6) > n  # stricter rate, more samples
    assert samples_for_power(0.10, math.sqrt(2 * 67 / 64), 1e-6, 1e-6) == pytest.approx(n / 4, rel=1e-3)


def test_samples_for_power_is_enough_for_the_power_it_promises():
    # at that N, an estimate off by 5 % sits (z_a + z_b) standard errors away: rejected unless
    # the estimate errs by z_b standard errors towards the claim, probability `miss`
    cv, rel = math.sqrt(2 * 67 / 64), 0.05
    n = samples_for_power(rel, cv, 1e-6, 1e-6)
    stderr = cv * 64 / math.sqrt(n)
    assert 64 * rel / stderr >= z_for(1e-6) + z_for(2e-6)


@pytest.mark.parametrize(
    ("args", "name"),
    [((0.0, 1.0, 1e-6, 1e-6), "rel_error"), ((-0.1, 1.0, 1e-6, 1e-6), "rel_error"), ((0.05, 1.0, 0.0, 1e-6), "rate")],
)
def test_samples_for_power_rejects_bad_input_naming_the_parameter(args, name):
    with pytest.raises(ValueError, match=name):
        samples_for_power(*args)


def test_samples_for_power_rejects_a_bad_miss_probability():
    # (the message comes from z_for(2 * miss) and says "rate", not "miss")
    with pytest.raises(ValueError):
        samples_for_power(0.05, 1.0, 1e-6, 0.6)

"""Exercise 13.4: heads and capacity; the derivation, the rank measurement, the capacity fit, the check's own rules
(the contract test covers what every exercise shares: the default check, --json, --help, the figure, bad flags)."""

import math

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import FROM_LEMMA, PROVED
from models.utils.device import one_thread
from proofs import heads_capacity as ex
from proofs.kit.options import settings as options

CPU = torch.device("cpu")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_derivation_is_proved_except_what_rests_on_its_two_lemmas():
    dx = ex.derivation()
    assert dx.status == "proved from a stated lemma"
    assert {s.status for s in dx.steps} == {PROVED, FROM_LEMMA}
    assert sum(s.status == FROM_LEMMA for s in dx.steps) == 2
    assert [a.split(":")[0] for a in dx.assumptions if a.startswith("Lemma")] == [
        "Lemma (rank of a product)",
        "Lemma (capacity)",
    ]


def test_head_scores_are_the_modules_own():
    """softmax(head_scores) V, through c_proj, is the module's forward: the scores measured are the ones it uses."""
    attn = ex.attention_layer(64, 12, gen(), CPU)
    x = torch.randn(2, 12, ex.D_MODEL, generator=gen(1), dtype=torch.float64)
    with torch.no_grad():
        p = ex.head_scores(attn, x).softmax(-1)  # (2, 64, 12, 12)
        v = attn.c_attn(x)[..., 2 * ex.D_MODEL :].view(2, 12, 64, 8).transpose(1, 2)  # (2, 64, 12, 8)
        by_hand = attn.c_proj((p @ v).transpose(1, 2).reshape(2, 12, ex.D_MODEL))
        assert (by_hand - attn(x)).abs().max() < 1e-12


def test_building_the_layer_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    ex.attention_layer(8, 70, gen(), CPU)
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(st.sampled_from([8, 64]), st.integers(65, 100), st.integers(0, 2**31))
def test_rank_is_d_k_before_the_softmax_and_n_after(n_head, n, seed):
    attn = ex.attention_layer(n_head, n, gen(seed), CPU)
    x = torch.randn(1, n, ex.D_MODEL, generator=gen(seed + 1), dtype=torch.float64)
    with torch.no_grad(), one_thread():  # small batched SVDs: threads only contend
        out = ex.spectra(ex.head_scores(attn, x))
    assert set(out["pre"][0].flatten().tolist()) == {ex.D_MODEL // n_head}
    assert set(out["post"][0].flatten().tolist()) == {n}


def test_centring_keeps_the_pattern_and_finds_the_threshold():
    pats = ex.targets(24, 5, gen(), CPU)
    for name, want in (("generic", 23), ("rank 5", 5)):
        lc = ex.centred_log(pats[name])
        assert (lc.softmax(-1) - pats[name]).abs().max() < 1e-14  # softmax ignores the row shift
        assert lc.sum(-1).abs().max() < 1e-12  # L_c 1 = 0
        assert int(torch.linalg.matrix_rank(lc)) == want


def test_the_truncated_svd_head_is_exact_from_the_threshold_on():
    p = ex.targets(16, 4, gen(), CPU)["rank 4"]
    err = dict(zip([1, 2, 3, 4, 8], ex.svd_head(p, [1, 2, 3, 4, 8])))
    assert err[4] < 1e-12 and err[8] < 1e-12
    assert err[3] > ex.TOL_TV and err[1] > err[2] > err[3]


@pytest.mark.slow
def test_fit_reaches_a_realisable_pattern_and_not_an_unrealisable_one():
    """Adam on a rank-2 pattern: d_k = 2 reaches it, d_k = 1 cannot (the same fit, the same threshold)."""
    p = ex.targets(12, 2, gen(), CPU)["rank 2"]
    with one_thread():
        best = ex.fit_heads(p[None], [1, 2], 300, gen(1))[0]
    assert best[1] < ex.TOL_TV < best[0]


@pytest.mark.parametrize("n", [4, 32, 128])
def test_a_permutation_needs_only_rank_2(n):
    err = ex.permutation_tv(n, gen(), CPU)
    assert 0 < err < 4 * math.exp(-ex.PERM_GAP)  # each row misses about 2 exp(-gap)


def test_grid_has_both_thresholds_and_their_halves():
    assert ex.grid(32, 8) == [1, 2, 4, 8, 15, 16, 31, 32]
    assert ex.grid(4, 1) == [1, 2, 3, 4]


def test_too_few_steps_fail_the_check():
    """The claims can fail: 10 Adam steps leave the d_k >= d_k* heads far from their targets."""
    res = ex.check(device="cpu", samples=1, steps=10)
    assert not res.passed
    assert [c.claim for c in res.claims if not c.agrees and "reproduces it" in c.claim]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_pass(seed):
    res = ex.check(device="cpu", samples=1, seed=seed)
    assert res.passed, res.text()


@pytest.mark.slow
def test_figure_draws_the_result_without_recomputing(monkeypatch):
    res = ex.check(device="cpu", samples=1, fit_n=8, target_rank=2, steps=50, tokens=70)
    for name in ("fit_heads", "spectra", "svd_head", "attention_layer"):
        monkeypatch.setattr(ex, name, lambda *a, name=name: pytest.fail(f"the figure called {name}"))
    fig = ex.figure(res)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 * (64 + 8) + 4 + 1  # every head before and after, legend handles, tolerance


@pytest.mark.parametrize(
    "opts, want",
    [
        ({"target_rank": 17}, "target_rank: must be at most half of fit_n=32"),
        ({"samples": 64, "tokens": 512}, "samples: 64 sequences of tokens=512 would take"),
        ({"fit_n": 128, "steps": 20_000}, "steps: 20,000 Adam steps at fit_n=128 would take"),
    ],
)
def test_own_rules_refuse_naming_the_option(opts, want):
    with pytest.raises(ValueError, match=rf"^{want}"):
        options(ex, device="cpu", **opts)


def test_cli_names_the_flags_of_a_cross_option_rule(capsys):
    assert cli_exit(ex, ["--fit-n", "8", "--target-rank", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --target-rank: must be at most half of --fit-n=8")

"""Exercise 13.2: permutation equivariance; the symbolic pieces, the maps compared, the controls swapped in, own rules.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check
passing with its controls rejected, --json, --help, the figure, the declared bounds."""

import itertools
import random

import pytest
import sympy as sp
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.utils.device import one_thread
from proofs import permutation_equivariance as ex
from proofs.kit.options import settings as options

CPU = torch.device("cpu")


def test_derivation_is_proved_for_all_six_permutations():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status in (PROVED, "definition") for s in dx.steps)
    assert len(ex.PERMS) == 6 and len({tuple(ex.perm_matrix(s)) for s in ex.PERMS}) == 6
    names = [str(s.lhs) for s in dx.steps]
    assert {"D_S", "D_row", "D_col", "D_soft", "D_Attn", "d_c"} <= set(names)


def test_perm_matrix_moves_row_j_to_row_sigma_j():
    X = ex.symbols("x")
    for sigma in ex.PERMS:
        P = ex.perm_matrix(sigma)
        assert P.T * P == sp.eye(3)
        for j in range(3):
            assert (P * X)[sigma[j], :] == X[j, :]


def _random_rationals(seed: int) -> list[sp.Matrix]:
    """X, W_Q, W_K, W_V as 3 x 3 matrices of small random rationals: exact and fast, with scores of order 1
    (large ones make the softmax one-hot, where the causal mask can hide by rounding to 1e-98)."""
    rng = random.Random(seed)
    return [sp.Matrix(3, 3, lambda i, j: sp.Rational(rng.randint(-4, 4), rng.randint(3, 6))) for _ in range(4)]


def _largest(diff: sp.Matrix) -> float:
    return max(abs(float(v.evalf(30))) for v in diff)


@pytest.mark.parametrize("seed", [0, 1])
def test_symbolic_causal_attention_is_not_equivariant(seed):
    """Negative control of the derivation's function: with the causal mask, every P but the identity moves
    some output row, at random rational inputs and weights."""
    X, WQ, WK, WV = _random_rationals(seed)
    A = ex.attention(X, WQ, WK, WV, ex.CAUSAL)
    for sigma in ex.PERMS[1:]:  # PERMS[0] is the identity
        P = ex.perm_matrix(sigma)
        assert _largest(ex.attention(P * X, WQ, WK, WV, ex.CAUSAL) - P * A) > 1e-6, sigma


def test_exact_bidirectional_attention_is_equivariant_at_a_point():
    X, WQ, WK, WV = _random_rationals(2)
    A = ex.attention(X, WQ, WK, WV)
    for sigma in ex.PERMS:
        P = ex.perm_matrix(sigma)
        assert _largest(ex.attention(P * X, WQ, WK, WV) - P * A) < 1e-25, sigma


@pytest.mark.parametrize("tokens", [2, 3, 5])
def test_permutation_is_never_the_identity(tokens):
    gen = torch.Generator().manual_seed(0)
    seen = {tuple(ex.permutation(tokens, gen).tolist()) for _ in range(200)}
    assert tuple(range(tokens)) not in seen
    assert all(sorted(p) == list(range(tokens)) for p in seen)
    if tokens <= 3:  # every other permutation turns up
        assert len(seen) == len(list(itertools.permutations(range(tokens)))) - 1


def test_the_comparison_accepts_a_rowwise_map_and_rejects_a_positional_one():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, generator=gen, dtype=torch.float64)
    perm = ex.permutation(5, gen)
    assert ex.equivariance_error(torch.tanh, x, perm) == 0.0  # acts on each row alone
    ramp = torch.arange(5, dtype=torch.float64)[:, None]
    assert ex.equivariance_error(lambda y: y + ramp, x, perm) >= 1.0  # adds where a row is, not what it is


def test_models_are_the_project_modules_with_the_stated_switches():
    with one_thread():
        maps = ex.models(16, 4, 2, torch.Generator().manual_seed(0), CPU)
    assert [n for n, _ in ex.CLAIMS + ex.CONTROLS] == list(maps)
    assert maps["attention (sdpa)"].causal is False and maps["attention (sdpa)"].cfg.attn == "sdpa"
    assert maps["attention (by hand)"].causal is False and maps["attention (by hand)"].cfg.attn == "manual"
    assert maps["causal attention"].causal is True
    assert maps["attention with RoPE"].cfg.pos == "rope" and maps["attention with RoPE"].causal is False
    w = maps["attention (sdpa)"].c_attn.weight
    for name in ("attention (by hand)", "causal attention", "attention with RoPE"):  # the same float64 weights
        assert w.dtype == torch.float64 and torch.equal(maps[name].c_attn.weight, w), name


@settings(max_examples=10, deadline=None)
@given(
    d_model=st.sampled_from([8, 16, 24]), tokens=st.integers(2, 9), layers=st.integers(1, 3), seed=st.integers(0, 2**31)
)
def test_claims_hold_and_controls_break_on_random_sizes(d_model, tokens, layers, seed):
    with one_thread():
        r = ex.trial(d_model, tokens, layers, torch.Generator().manual_seed(seed), CPU)
    assert all(r[name] <= ex.EQUAL_TOL for name, _ in ex.CLAIMS), r
    assert all(r[name] > 1e-3 for name, _ in ex.CONTROLS), r


def test_a_control_swapped_in_as_a_claim_fails_the_check(monkeypatch):
    monkeypatch.setattr(ex, "CLAIMS", ex.CLAIMS + [("causal attention", "the causal attention")])
    res = ex.check(device="cpu", samples=2)
    assert not res.passed and not res.claims[-1].agrees and all(c.agrees for c in res.claims[:-1])


def test_a_claim_swapped_in_as_a_control_fails_the_check(monkeypatch):
    monkeypatch.setattr(ex, "CONTROLS", ex.CONTROLS + [("encoder stack", "the encoder stack")])
    res = ex.check(device="cpu", samples=2)
    assert not res.passed and res.controls[-1].agrees and not any(c.agrees for c in res.controls[:-1])


@pytest.mark.slow
def test_check_leaves_global_state_and_figure_reruns_nothing(monkeypatch):
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()
    res = ex.check(device="cpu", samples=1, tokens=4)
    assert torch.equal(torch.random.get_rng_state(), rng) and torch.get_num_threads() == threads
    fx, fpx, perm = res.series["show"]
    assert torch.allclose(fpx, fx[perm], atol=ex.EQUAL_TOL, rtol=0)  # the rows drawn are the permuted rows
    monkeypatch.setattr(ex, "trial", lambda *a: pytest.fail("the figure ran a trial"))
    assert len(ex.figure(res).axes) == 3


@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_pass(seed):
    assert ex.check(device="cpu", samples=2, seed=seed, d_model=8, tokens=3, layers=1).passed


@pytest.mark.parametrize(
    "opts, want",
    [
        ({"d_model": 12}, "d_model: must be a multiple of 8"),
        ({"d_model": 2048, "layers": 48}, "d_model: d_model 2,048, 6 tokens and 48 layers would hold"),
        ({"tokens": 4096, "d_model": 512, "layers": 4}, "tokens: d_model 512, 4,096 tokens and 4 layers would hold"),
        ({"d_model": 1024, "layers": 8, "samples": 100}, "samples: 100 trials at d_model 1,024"),
    ],
)
def test_own_rules_refuse_naming_the_option(opts, want):
    """The exercise's cross-option rules (the declared bounds are the contract test's)."""
    with pytest.raises(ValueError, match=rf"^{want}"):
        options(ex, device="cpu", **opts)


@pytest.mark.parametrize("argv, flag", [(["--d-model", "20"], "--d-model"), (["--tokens", "1"], "--tokens")])
def test_cli_refuses_in_one_line_before_the_derivation(argv, flag, capsys, monkeypatch):
    monkeypatch.setattr(ex, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err and "Traceback" not in err, err

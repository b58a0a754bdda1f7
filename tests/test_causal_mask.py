"""Exercise 13.5: causal masking; the symbolic pieces, the chain, one pass against n passes on untrained GPTs
(hypothesis), the FLOP formulas, a run too short to learn, other seeds, the module's own rules.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check passing with
its controls rejected, --json, --help, the figure, the declared bounds."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.utils.device import one_thread
from numeric.gpt_flops import counted_gpt
from proofs import causal_mask as ex
from proofs.kit.options import settings as options

CPU = torch.device("cpu")


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status in (PROVED, "definition") for s in dx.steps)


@pytest.mark.parametrize("n", [2, 4])
def test_masked_weights_vanish_above_the_diagonal_and_unmasked_do_not(n):
    s = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"s_{i}{j}", real=True))
    masked, free = ex.attention_weights(s), ex.attention_weights(s, causal=False)
    for i in range(n):
        assert sp.simplify(sum(masked[i, :]) - 1) == 0 and sp.simplify(sum(free[i, :]) - 1) == 0
        for j in range(i + 1, n):
            assert masked[i, j] == 0 and free[i, j] != 0


def test_symbolic_stack_output_at_t_holds_only_earlier_tokens():
    x = list(sp.symbols("x_1:4", real=True))
    y = ex.stack(x)
    for t in range(3):
        assert y[t].free_symbols & set(x) == set(x[: t + 1])
    assert ex.stack(x, causal=False)[0].free_symbols >= set(x)  # without the mask, output 1 reads all three


def test_chain_draws_only_legal_transitions_and_counts_illegal_ones():
    chain = ex.Chain(context=12, seed=3)
    seqs = chain.sequences(50, torch.Generator().manual_seed(0))
    assert seqs.shape == (50, 13) and bool((chain.illegal(seqs) == 0).all())
    assert bool((chain.legal.sum(1) == ex.SUCCESSORS).all())
    a = int(seqs[0, 0])
    bad = next(b for b in range(ex.VOCAB) if not chain.legal[a, b])
    assert float(chain.illegal(torch.tensor([[a, bad, int(chain.succ[bad, 0])]]))[0]) == 0.5
    x, y = chain.batch("train", 4, torch.Generator().manual_seed(1))
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="^split: "):
        chain.batch("test", 4, torch.Generator())


def _random_gpt(context: int, seed: int):
    """An untrained float64 GPT of the check's shape, its matrices scaled up tenfold (std 0.2) so that its
    attention is far from uniform and its logits are O(1)."""
    with torch.random.fork_rng():  # the GPT initialises from the global generator: leave it as it was
        torch.manual_seed(seed)
        m = counted_gpt(ex.LAYERS, ex.WIDTH, ex.HEADS, context, ex.VOCAB, "cpu").double().eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.mul_(10.0)
    return m


@settings(max_examples=10, deadline=None)
@given(context=st.integers(2, 12), batch=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_one_masked_pass_equals_n_passes_and_not_without_the_mask(context, batch, seed):
    m = _random_gpt(context, seed)
    x = torch.randint(ex.VOCAB, (batch, context), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), one_thread():  # tiny tensors: two OpenMP threads only contend on a busy CPU
        full = m(x)[0]
        assert float(full.abs().max()) > 0.5  # not a trivially small output
        assert ex._maxabs(full, ex.cache_logits(m, x)) <= ex.TOL
        assert ex._maxabs(full, ex.prefix_logits(m, x)) <= ex.TOL
        ex._with_mask(m, False)
        assert ex._maxabs(m(x)[0], ex.prefix_logits(m, x)) > 1e-3


@pytest.mark.parametrize("context", [2, 11])
def test_flop_counts_equal_the_formulas_and_loss_identity_holds(context):
    m = _random_gpt(context, 0)
    x = torch.randint(ex.VOCAB, (3, context), generator=torch.Generator().manual_seed(1))
    y = torch.randint(ex.VOCAB, (3, context), generator=torch.Generator().manual_seed(2))
    with one_thread():  # tiny tensors: two OpenMP threads only contend on a busy CPU (100 times slower)
        out, rows = ex.exactness_and_costs(m, x, y, CPU)
    assert [r["FLOPs (1 sequence)"] for r in rows] == [r["formula"] for r in rows]
    one, kv, prefix = (r["FLOPs (1 sequence)"] for r in rows)
    assert kv <= one and prefix > one  # the pass pays for the masked scores; prefixes repeat the work
    assert max(out[f"masked {k}"] for k in ("|pass - KV|", "|pass - prefix|", "|loss - mean prefix loss|")) <= ex.TOL
    assert out["unmasked |pass - KV|"] > 1e-3
    assert all(m.h[i].attn.causal for i in range(ex.LAYERS))  # the mask is switched back on


def test_estimate_of_equal_values_is_certain_not_an_error():
    e = ex.estimate(torch.ones(5, dtype=torch.float64))
    assert e.value == 1.0 and 0 < e.stderr < 1e-300


def test_a_run_too_short_to_learn_fails():
    """10 steps: neither model has learned, so the claims about training fail: the check can fail."""
    res = ex.check(device="cpu", steps=10, context=4, samples=16)
    assert not res.passed
    assert all(c.agrees for c in res.claims[:6])  # exactness and FLOPs do not depend on training
    assert not res.claims[7].agrees  # the unmasked model has not yet learned to read the next token


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_pass_and_the_numbers_tell_the_story(seed):
    res = ex.check(device="cpu", seed=seed)
    assert res.passed, res.text()
    beh = res.series["behaviour"]
    h = math.log(ex.SUCCESSORS)
    assert float(beh["unmasked train"].mean()) < 0.35 * h and float(beh["masked train"].mean()) > h
    assert float(beh["unmasked causal"].mean()) > float(beh["masked causal"].mean()) + 1.0
    assert float(beh["unmasked illegal"].mean()) > 0.3 and float(beh["masked illegal"].mean()) < 0.15


def test_figure_draws_the_result(monkeypatch):
    res = ex.check(device="cpu", steps=10, context=3, samples=8)
    monkeypatch.setattr(ex, "train", lambda *a, **k: pytest.fail("the figure trained a model"))
    assert len(ex.figure(res).axes) == 3


@pytest.mark.parametrize(
    "opts, want",
    [
        ({"context": 128, "samples": 4096}, "samples: 4,096 sequences of 128 tokens would hold"),
        ({"context": 128, "samples": 512}, "samples: 150 steps and 512 samples at context 128 would take"),
        ({"steps": 20_000}, "steps: 20,000 steps and 64 samples at context 8 would take"),
        ({"seed": 2**62 + 1}, "seed: must be an integer in"),
    ],
)
def test_own_rules_refuse_naming_the_option(opts, want):
    with pytest.raises(ValueError, match=rf"^{want}"):
        options(ex, device="cpu", **opts)

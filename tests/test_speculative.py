"""Speculative sampling (models.speculative): exact in greedy mode, caches rolled back rather than
reset, the statistics it reports, and bad input refused naming the parameter. The law of sampled
tokens is tested by the exercise's check (proofs.speculative_decoding), run by test_contract."""

import pytest
import torch

from models.gpt import GPT, GPTConfig
from models.sampling import next_token_probs
from models.speculative import FAULTS, SpecStats, speculative_generate


def gpt(n_layer: int, seed: int, vocab: int = 7, pos: str = "rope", scale: float = 6.0) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=2, n_embd=16, block_size=96, pos=pos, tie_weights=False)
    m = GPT(cfg).double()
    with torch.no_grad():
        m.lm_head.weight.mul_(scale)  # distributions far from uniform, and far apart for two seeds
    return m.eval()


@pytest.fixture(scope="module")
def pair():
    return gpt(2, 0), gpt(1, 1)


@pytest.mark.parametrize(
    "pos", ["rope", pytest.param("learned", marks=pytest.mark.slow), pytest.param("sinusoidal", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("gamma", [1, 3, 4, 8])
def test_greedy_equals_the_targets_greedy_text(pos, gamma):
    target, draft = gpt(2, 0, pos=pos), gpt(1, 1, pos=pos)
    rejected = 0
    for prompt in ([[3]], [[1, 2, 3, 4, 5]]):
        idx = torch.tensor(prompt)
        ref = target.generate(idx, 33, temperature=0)
        st = SpecStats()
        out = speculative_generate(
            target, draft, idx, 33, gamma=gamma, temperature=0, prob_dtype=torch.float64, stats=st
        )
        assert torch.equal(out, ref)
        assert st.emitted == 33 and sum(st.per_round) == 33 and st.rounds == len(st.per_round)
        assert st.accepted <= st.reached <= st.proposed
        rejected += st.reached - st.accepted
    assert rejected > 0  # the draft disagreed somewhere: the equality is not that of two equal models


def test_greedy_control_every_token_accepted_differs(pair):
    target, draft = pair
    idx = torch.tensor([[1, 2]])
    ref = target.generate(idx, 30, temperature=0)
    out = speculative_generate(target, draft, idx, 30, temperature=0, prob_dtype=torch.float64, fault="always_accept")
    assert not torch.equal(out, ref)  # negative control: the test above can fail


def _fresh_gap(model, cache, text) -> float:
    fresh = model.new_cache(1, cache.capacity)
    with torch.no_grad():
        model(text, cache=fresh)
    n = text.size(1)
    assert cache.length == n
    return max(float((a[:, :, :n] - b[:, :, :n]).abs().max()) for a, b in zip(cache.k + cache.v, fresh.k + fresh.v))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_caches_after_a_run_equal_a_fresh_pass_over_the_text(pair, seed, temperature):
    """After rejected rounds the caches are rolled back to the accepted text, not reset or left long."""
    target, draft = pair
    idx, new, gamma = torch.tensor([[0, 1, 2]]), 40, 4
    tc, dc = target.new_cache(1, 3 + new + gamma), draft.new_cache(1, 3 + new + gamma)
    st = SpecStats()
    gen = torch.Generator().manual_seed(seed)
    out = speculative_generate(
        target, draft, idx, new, gamma=gamma, temperature=temperature, generator=gen,
        prob_dtype=torch.float64, stats=st, caches=(tc, dc),
    )  # fmt: skip
    assert st.accepted < st.proposed  # some round was rejected, so a rollback happened
    assert _fresh_gap(target, tc, out[:, :-1]) < 1e-10  # the text but its last token
    assert dc.length <= out.size(1) - 1 and _fresh_gap(draft, dc, out[:, : dc.length]) < 1e-10


def test_reset_caches_are_caught_by_the_same_comparison(pair):
    target, draft = pair
    tc, dc = target.new_cache(1, 60), draft.new_cache(1, 60)
    gen = torch.Generator().manual_seed(0)
    out = speculative_generate(
        target, draft, torch.tensor([[0, 1]]), 40, generator=gen, prob_dtype=torch.float64,
        caches=(tc, dc), fault="reset_cache",
    )  # fmt: skip
    assert tc.length != out.size(1) - 1  # negative control: the rollback test above can fail


def test_identical_models_accept_everything(pair):
    target, _ = pair
    st = SpecStats()
    gen = torch.Generator().manual_seed(0)
    speculative_generate(
        target, target, torch.tensor([[0]]), 26, gamma=4, generator=gen, prob_dtype=torch.float64, stats=st
    )
    assert st.accepted == st.proposed == st.reached
    assert st.alpha_accepted == 1.0 and abs(st.alpha_min_mass - 1.0) < 1e-12
    assert st.per_round[:-1] == [5] * (len(st.per_round) - 1)  # gamma + 1 tokens a round


@pytest.mark.slow
def test_the_two_alpha_estimates_agree_on_long_runs(pair):
    """Accepted / positions reached and the mean of sum min(p, q) estimate the same alpha: over 3,000
    positions their difference has a standard error below 0.01; allowed 0.05 (5 standard errors)."""
    target, draft = pair
    st = SpecStats()
    gen = torch.Generator().manual_seed(3)
    for _ in range(30):
        speculative_generate(
            target, draft, torch.tensor([[0]]), 80, gamma=4, generator=gen, prob_dtype=torch.float64, stats=st
        )
    assert st.reached > 1500
    assert abs(st.alpha_accepted - st.alpha_min_mass) < 0.05
    assert st.naive_mass < st.min_mass  # sum p q < sum min(p, q) whenever p != q


def test_zero_new_tokens_and_a_one_token_prompt(pair):
    target, draft = pair
    assert torch.equal(speculative_generate(target, draft, torch.tensor([[4]]), 0), torch.tensor([[4]]))
    assert speculative_generate(target, draft, torch.tensor([[4]]), 1, temperature=0).shape == (1, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(gamma=0), "gamma"),
        (dict(gamma=2.5), "gamma"),
        (dict(gamma=True), "gamma"),
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(idx=torch.tensor([[1], [2]])), "idx"),
        (dict(idx=torch.tensor([1, 2])), "idx"),
        (dict(fault="typo"), "fault"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(pair, kwargs, name):
    target, draft = pair
    args = dict(idx=torch.tensor([[1]]), max_new_tokens=5) | kwargs
    with pytest.raises(ValueError, match=f"^{name}:"):
        speculative_generate(target, draft, **args)


def test_vocabularies_that_differ_are_refused(pair):
    target, _ = pair
    with pytest.raises(ValueError, match="^draft: vocabulary of 5 tokens"):
        speculative_generate(target, gpt(1, 1, vocab=5), torch.tensor([[1]]), 5)


def test_learned_positions_bound_the_length():
    target, draft = gpt(1, 0, pos="learned"), gpt(1, 1, pos="learned")
    with pytest.raises(ValueError, match="^max_new_tokens:.*block_size 96"):
        speculative_generate(target, draft, torch.tensor([[1] * 50]), 44, gamma=4)


def test_caches_must_be_empty_and_large_enough(pair):
    target, draft = pair
    tc, dc = target.new_cache(1, 8), draft.new_cache(1, 64)
    with pytest.raises(ValueError, match="^caches:"):
        speculative_generate(target, draft, torch.tensor([[1]]), 20, caches=(tc, dc))


def test_every_fault_is_named():
    assert set(FAULTS) == {"always_accept", "greedy_draft", "softmax_residual", "raw_q", "bf16_q", "reset_cache"}


def test_next_token_probs():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0]])
    assert next_token_probs(logits, 0).tolist() == [[0.0, 1.0, 0.0, 0.0]]  # greedy: first argmax
    p = next_token_probs(logits, 1.0, top_k=2, dtype=torch.float64)
    assert p.dtype == torch.float64 and p[0, 0] == 0 and p[0, 2] == 0 and abs(float(p.sum()) - 1) < 1e-15
    p2 = next_token_probs(logits, 2.0)
    assert torch.allclose(p2, torch.softmax(logits / 2, -1))

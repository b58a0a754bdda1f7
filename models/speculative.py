"""Speculative sampling (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding", Algorithm 1; Chen et al. 2023, "Accelerating Large Language Model Decoding with
Speculative Sampling", Algorithm 2) for the chapter's GPT, at batch 1.

Each round, the draft model proposes γ tokens d_1..d_γ, drawing d_i from its distribution q_i; the
target scores the last emitted token and all γ proposals in one forward pass, giving p_1..p_{γ+1}.
Proposal i is accepted with probability min(1, p_i(d_i)/q_i(d_i)); at the first rejection one token
is drawn from max(0, p_i − q_i) normalised by its sum, and the round ends; when all γ are accepted a
bonus token is drawn from p_{γ+1}. Every emitted token then has exactly the target's law
(proofs.speculative_decoding proves it and tests it). p and q are the processed distributions the
tokens are drawn from (:func:`models.sampling.next_token_probs`: temperature, top-k, softmax), both
in ``prob_dtype``; at temperature 0 they are one-hot, and the same rule gives the target's greedy text.

Both models keep a KV cache. The invariant between rounds: each cache holds the text up to, not
including, the last emitted token. After a round the target's cache is rolled back to the accepted
prefix (:meth:`models.gpt.KVCache.rollback`), never reset; the draft's is rolled back the same way,
and after a round where all γ were accepted it lacks d_γ (it proposed d_γ without reading it), so
the next round first feeds it every token it has not read: the known off-by-one.

Shapes: ``idx`` is (1, P) token ids; the result is (1, P + max_new_tokens). Units of the statistics:
counts of tokens and forward calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models.gpt import GPT
from models.sampling import check_sampling, next_token_probs

# Deliberate faults, for the negative controls of proofs.speculative_decoding only: each is a way
# published implementations went wrong, which the exactness check must reject.
FAULTS = {
    "always_accept": "accept every draft token",
    "greedy_draft": "the draft proposes its most likely token while q is its sampling distribution",
    "softmax_residual": "normalise the residual max(0, p - q) with a softmax instead of by its sum",
    "raw_q": "q from the draft's raw logits (temperature 1, no top-k) while its tokens are drawn with top-k",
    "bf16_q": "q computed in bfloat16 while the acceptance uses p in the probability dtype",
    "reset_cache": "after a rejection both KV caches are reset to empty instead of rolled back",
}


@dataclass
class SpecStats:
    """What a speculative run did. A *round* is one target call; *positions reached* counts the
    proposals whose accept/reject test ran (all γ when every one was accepted, else up to and
    including the first rejected one), so ``accepted / reached`` estimates the per-position
    acceptance probability α; ``min_mass`` sums Σ_x min(p(x), q(x)) over the same positions."""

    rounds: int = 0
    proposed: int = 0
    accepted: int = 0
    reached: int = 0
    emitted: int = 0
    draft_calls: int = 0
    min_mass: float = 0.0
    naive_mass: float = 0.0  # Σ_x p(x) q(x): how often both models would sample the same token
    per_round: list[int] = field(default_factory=list)  # tokens emitted in each round

    @property
    def alpha_accepted(self) -> float:
        """Accepted proposals over positions reached (the formula's α, not accepted over proposed)."""
        return self.accepted / self.reached if self.reached else float("nan")

    @property
    def alpha_min_mass(self) -> float:
        """The mean of Σ_x min(p(x), q(x)) over the positions reached: α = 1 − TV(p, q)."""
        return self.min_mass / self.reached if self.reached else float("nan")

    @property
    def tokens_per_call(self) -> float:
        """Tokens emitted per target call (round)."""
        return self.emitted / self.rounds if self.rounds else float("nan")


def check_pair(target: GPT, draft: GPT) -> None:
    """ValueError naming ``draft`` when the two models' vocabularies differ."""
    vt, vd = target.config.vocab_size, draft.config.vocab_size
    if vt != vd:
        raise ValueError(f"draft: vocabulary of {vd} tokens, the target's has {vt}; they must be the same")


def _residual(p: torch.Tensor, q: torch.Tensor, fault: str | None) -> torch.Tensor:
    """The distribution drawn from after a rejection: max(0, p − q) normalised by its sum. It cannot be
    all zero after a rejection (a rejection needs p(x) < q(x) somewhere, hence p > q elsewhere), except
    through rounding, where p itself is returned."""
    r = (p - q).clamp_min(0)
    if fault == "softmax_residual":
        return torch.softmax(r, dim=-1)
    total = r.sum()
    return r / total if total > 0 else p


@torch.no_grad()
def speculative_generate(
    target: GPT,
    draft: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    gamma: int = 4,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    prob_dtype: torch.dtype = torch.float32,
    stats: SpecStats | None = None,
    caches: tuple | None = None,
    fault: str | None = None,
) -> torch.Tensor:
    """Append ``max_new_tokens`` tokens to ``idx`` (1, P) by speculative sampling; returns (1, P + max_new_tokens).

    ``gamma`` (γ ≥ 1) tokens are proposed per round (fewer in the last round, which needs only what is
    left). ``temperature`` 0 is greedy decoding, and then the output equals ``target.generate``'s
    greedy output. ``stats`` (a :class:`SpecStats`) is filled in if given. ``caches`` may pass the
    ``(target_cache, draft_cache)`` to use (empty, with room for P + max_new_tokens + γ positions), so
    a caller can inspect them afterwards. ``fault`` injects one of :data:`FAULTS` (negative controls).

    Raises ValueError naming the parameter: ``idx`` not of shape (1, P) with P ≥ 1 (batch > 1 is not
    supported), ``gamma`` < 1, ``max_new_tokens`` < 0, ``temperature`` < 0, ``top_k`` ≤ 0, ``draft``
    with another vocabulary, ``fault`` unknown, or a text longer than a model's learned positions.
    """
    if idx.dim() != 2 or idx.size(0) != 1 or idx.size(1) < 1:
        raise ValueError(f"idx: must have shape (1, P) with P >= 1 (batch 1 only), got {tuple(idx.shape)}")
    if isinstance(gamma, bool) or not isinstance(gamma, int) or gamma < 1:
        raise ValueError(f"gamma: must be an integer >= 1, got {gamma!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: must be a non-negative integer, got {max_new_tokens!r}")
    check_sampling(temperature, top_k)
    check_pair(target, draft)
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"fault: unknown {fault!r}; one of {sorted(FAULTS)}")
    need = idx.size(1) + max_new_tokens + gamma
    for name, m in (("target", target), ("draft", draft)):
        if m.config.pos in ("learned", "sinusoidal") and need > m.config.block_size:
            raise ValueError(
                f"max_new_tokens: prompt + new tokens + gamma = {need} exceed the {name}'s block_size "
                f"{m.config.block_size}"
            )
    st = stats if stats is not None else SpecStats()
    tc, dc = caches if caches is not None else (target.new_cache(1, need), draft.new_cache(1, need))
    if tc.length or dc.length or min(tc.capacity, dc.capacity) < need:
        raise ValueError(f"caches: must be empty with room for {need} positions")

    tokens = idx[0].tolist()
    P = len(tokens)
    dev = idx.device

    def probs(logits):  # (..., V) logits -> the distribution a token is drawn from
        return next_token_probs(logits, temperature, top_k, prob_dtype)

    def draw(dist):
        return int(torch.multinomial(dist, 1, generator=generator))

    # prefill both caches with the prompt but its last token
    if P > 1:
        target(idx[:, :-1], cache=tc)
        draft(idx[:, :-1], cache=dc)
    while len(tokens) - P < max_new_tokens:
        g = min(gamma, max_new_tokens - (len(tokens) - P) - 1)  # proposals this round: no more than needed
        # -- draft: read what it has not read, then propose g tokens
        proposals, qs = [], []
        for _ in range(g):
            unread = (tokens + proposals)[dc.length :]  # usually one token; two after a round that accepted all
            logits = draft(torch.tensor([unread], device=dev), cache=dc)[0][0, -1]  # (V,)
            st.draft_calls += 1
            q = probs(logits)
            d = int(q.argmax()) if fault == "greedy_draft" else draw(q)
            if fault == "raw_q":
                q = next_token_probs(logits, 1.0, None, prob_dtype)
            elif fault == "bf16_q":
                q = next_token_probs(logits.to(torch.bfloat16), temperature, top_k, torch.bfloat16).to(prob_dtype)
            proposals.append(d)
            qs.append(q)
        # -- target: the last emitted token and the g proposals, in one forward pass
        x = torch.tensor([[tokens[-1], *proposals]], device=dev)  # (1, g + 1)
        logits = target(x, cache=tc)[0][0]  # (g + 1, V)
        ps = probs(logits)  # (g + 1, V)
        st.rounds += 1
        st.proposed += g
        emitted = []
        for i, (d, q) in enumerate(zip(proposals, qs)):
            p = ps[i]
            st.reached += 1
            st.min_mass += float(torch.minimum(p, q).sum())
            st.naive_mass += float((p * q).sum())
            u = torch.rand((), generator=generator, device=dev, dtype=prob_dtype)
            if fault == "always_accept" or u * q[d] < p[d]:  # probability min(1, p(d) / q(d))
                st.accepted += 1
                emitted.append(d)
                continue
            emitted.append(draw(_residual(p, q, fault)))
            break
        else:  # all g accepted: the bonus token from the target's distribution after them
            emitted.append(draw(ps[g]))
        accepted = len(emitted) - 1
        tc.rollback(tc.length - (g - accepted))  # drop the rejected proposals: keep the accepted prefix
        dc.rollback(dc.length - max(0, g - 1 - accepted))  # the draft read all but its last proposal
        if fault == "reset_cache" and accepted < g:
            tc.rollback(0)
            dc.rollback(0)
        tokens += emitted
        st.emitted += len(emitted)
        st.per_round.append(len(emitted))
    out = tokens[: P + max_new_tokens]
    st.emitted -= len(tokens) - len(out)
    return torch.tensor([out], device=dev, dtype=idx.dtype)

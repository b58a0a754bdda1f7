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
            # the text it has not read, tokens then proposals: one token, or two after a round that accepted all
            unread = tokens[dc.length :] + proposals[max(0, dc.length - len(tokens)) :]
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
        # -- accept or reject all g proposals at once: d_i with probability min(1, p_i(d_i) / q_i(d_i))
        emitted, accepted = [], g
        if g:
            q_all = torch.stack(qs)  # (g, V)
            rows, d = torch.arange(g, device=dev), torch.tensor(proposals, device=dev)
            p_d, q_d = torch.stack((ps[rows, d], q_all[rows, d])).tolist()  # one transfer for the g tests
            u = torch.rand(g, generator=generator, device=dev, dtype=prob_dtype).tolist()
            ok = [fault == "always_accept" or ui * qi < pi for ui, qi, pi in zip(u, q_d, p_d)]  # no division by q
            accepted = ok.index(False) if False in ok else g
            reached = min(accepted + 1, g)  # the tests that ran: up to the first rejection
            if stats is not None:
                both = torch.stack((torch.minimum(ps[:reached], q_all[:reached]), ps[:reached] * q_all[:reached]))
                mass = both.sum((1, 2)).tolist()
                st.min_mass += mass[0]
                st.naive_mass += mass[1]
            st.reached += reached
            st.accepted += accepted
            emitted = proposals[:accepted]
        if accepted < g:  # the first rejection: one token from the residual, and the round ends
            emitted.append(draw(_residual(ps[accepted], qs[accepted], fault)))
        else:  # all g accepted: the bonus token from the target's distribution after them
            emitted.append(draw(ps[g]))
        tc.rollback(tc.length - (g - accepted))  # drop the rejected proposals: keep the accepted prefix
        dc.rollback(dc.length - max(0, g - 1 - accepted))  # the draft read all but its last proposal
        if fault == "reset_cache" and accepted < g:
            tc.rollback(0)
            dc.rollback(0)
        tokens += emitted
        st.emitted += len(emitted)
        st.per_round.append(len(emitted))
    return torch.tensor([tokens], device=dev, dtype=idx.dtype)  # no round emits more than is left


# -- command line: python -m models.speculative {train,generate,bench} ------------------------------
FLAGS = {
    "max_new_tokens": "--chars",
    "top_k": "--top-k",
    "max_iters": "--max-iters",
    "out": "--dir",
    "dir": "--dir",
    "draft": "--dir",
    "idx": "--prompt",
    "prompt": "--prompt",
    "gamma": "--gamma",
    "gammas": "--gammas",
    "temperature": "--temperature",
    "preset": "--preset",
    "device": "--device",
    "data": "--data",
}


def build_parser():
    """The parser of ``python -m models.speculative``: ``train``, ``generate`` and ``bench``, each with
    ``--preset`` (cpu or gpu) and ``--dir`` (the pairs' root folder, default the user's cache)."""
    from models.utils.cli import OneLineParser, figure_file, finite_float, int_in, positive_int, seed_int, text

    p = OneLineParser(prog="python -m models.speculative", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the 4-layer target and the 1-layer draft on tiny Shakespeare")
    g = sub.add_parser("generate", help="print text generated by speculative sampling with the trained pair")
    b = sub.add_parser("bench", help="tokens/s, alpha, c and the speed-up against its formula, for gamma = 1..8")
    for q in (t, g, b):
        q.add_argument("--preset", choices=["cpu", "gpu"], default="cpu", help="model sizes; default: cpu")
        q.add_argument("--dir", type=text(), default=None, help="root of the pairs' folders; default: the user's cache")
        q.add_argument("--device", type=text(), default=None, help="cpu or cuda; default: cuda when available")
        q.add_argument("--data", type=text(), default=None, help="tiny Shakespeare's file; default: $TINY_SHAKESPEARE")
    t.add_argument("--max-iters", type=positive_int(10**6), default=None, help="training steps; default: the preset's")
    for q in (g, b):
        q.add_argument("--temperature", type=finite_float(0), default=1.0, help="0: greedy; default: 1.0")
        q.add_argument("--top-k", type=int_in(1), default=None, help="sample among the k likeliest; default: all")
        q.add_argument("--seed", type=seed_int(), default=0, help="seed of the draws; default: 0")
    g.add_argument("--prompt", default="\n", help="text to continue; default: a newline")
    g.add_argument("--chars", type=positive_int(10**5), default=40, help="characters to generate; default: 40")
    g.add_argument("--gamma", type=int_in(1, 16), default=4, help="draft tokens per round (1 to 16); default: 4")
    b.add_argument("--gammas", type=int_in(1, 16), default=8, help="measure gamma = 1..GAMMAS; default: 8")
    b.add_argument("--prompts", type=int_in(1, 1000), default=8, help="prompts from the val split; default: 8")
    b.add_argument("--repeats", type=int_in(1, 100), default=5, help="timed rounds, medians reported; default: 5")
    b.add_argument("--plot", type=figure_file(), default=None, help="write the figure there (.png, .pdf, .svg)")
    b.add_argument("--json", action="store_true", help="print the measurements as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; exit 0, 2 on bad input (one line naming the flag), 130 on Ctrl-C."""
    from models.utils.cli import guard

    args = build_parser().parse_args(argv)
    return guard(lambda: _main(args), FLAGS)


def _main(args) -> int:
    import json
    import sys
    from contextlib import nullcontext

    from models.data.chars import CharData, find_text
    from models.training import spec_pair
    from models.utils.device import describe, generator, one_thread, pick_device

    if args.data is not None:
        find_text(args.data)  # a missing corpus file is named first, whatever the command
    device = pick_device(args.device)
    folder = spec_pair.pair_dir(args.preset, args.dir)
    if args.cmd == "train":
        extra = {"device": str(device)} | ({"max_iters": args.max_iters} if args.max_iters else {})
        data = CharData.load(args.data)
        spec_pair.train_pair(args.preset, args.dir, data, say=lambda m: print(m, file=sys.stderr), **extra)
        print(f"trained pair in {folder}")
        return 0
    target, draft, data = spec_pair.load_pair(folder, device, args.data)
    bs = target.config.block_size
    if args.cmd == "generate":
        try:
            ids = data.encode(args.prompt)[None].to(device)
        except ValueError as e:
            raise ValueError(f"prompt: {str(e).removeprefix('s: ')} of the corpus") from None
        st = SpecStats()
        with one_thread() if device.type == "cpu" else nullcontext():
            out = speculative_generate(
                target, draft, ids, args.chars, args.gamma, args.temperature, args.top_k,
                generator=generator(device, args.seed), stats=st,
            )  # fmt: skip
        sys.stdout.write(data.decode(out[0].tolist()) + "\n")
        print(
            f"[{st.rounds} target calls for {st.emitted} tokens: {st.tokens_per_call:.2f} a call; "
            f"alpha {st.alpha_accepted:.3f} (accepted/reached), {st.alpha_min_mass:.3f} (mean sum min(p, q))]",
            file=sys.stderr,
        )
        return 0
    from models.training.spec_bench import bench, draw

    P = 8
    new = bs - P - args.gammas if target.config.pos in ("learned", "sinusoidal") else 4 * bs
    if new < 1:
        raise ValueError(f"gammas: the models' context of {bs} leaves no room for new tokens")
    gen = torch.Generator().manual_seed(args.seed)
    val = data.val
    starts = torch.randint(len(val) - P, (args.prompts,), generator=gen).tolist()
    prompts = [val[s : s + P][None].long().to(device) for s in starts]
    with one_thread() if device.type == "cpu" else nullcontext():
        r = bench(target, draft, prompts, new, range(1, args.gammas + 1), args.temperature, args.top_k,
                  args.repeats, device, args.seed)  # fmt: skip
    r |= {"device": describe(device), "preset": args.preset, "prompts": args.prompts, "new_tokens": new}
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        _print_bench(r)
    if args.plot:
        title = f"Exercise 13.25: speculative decoding, {args.preset} pair, {describe(device)}"
        print(f"figure written to {draw(r, args.plot, title)}", file=sys.stderr)
    return 0


def _print_bench(r: dict) -> None:
    ms = {k: r[k] * 1e3 for k in ("plain_step_s", "target_step_s", "draft_step_s")}
    print(
        f"{r['preset']} pair on {r['device']}: {r['prompts']} prompts x {r['new_tokens']} new tokens, batch 1\n"
        f"plain target decoding: {r['plain_tokens_per_s']:.1f} tokens/s ({ms['plain_step_s']:.3f} ms a token); "
        f"steps timed call by call: target {ms['target_step_s']:.3f} ms, draft {ms['draft_step_s']:.3f} ms, "
        f"c = {r['c']:.3f}"
    )
    head = ("gamma", "tok/s", "speed-up", "pred S", "measured/pred", "v(gamma)", "pred S with v", "measured/pred",
            "alpha acc/reach", "alpha sum min", "sum p*q", "acc/proposed", "tok/call", "pred tok/call",
            "round ms", "beyond steps ms")  # fmt: skip
    print(" ".join(f"{h:>13}" for h in head))
    keys = ("gamma", "tokens_per_s", "speedup", "speedup_pred", "ratio", "verify_cost", "speedup_pred_v", "ratio_v",
            "alpha_accepted", "alpha_min_mass", "naive_p_times_q", "accepted_over_proposed", "tokens_per_call",
            "tokens_per_call_pred", "round_ms", "other_ms")  # fmt: skip
    for row in r["rows"]:
        print(" ".join(f"{row[k]:>13.3f}" if isinstance(row[k], float) else f"{row[k]:>13}" for k in keys))
    g = r["goal"]
    if g["worst_gamma"] is not None:
        verdict = "met" if g["met"] else "NOT met"
        print(
            f"goal (measured speed-up within {g['tolerance']:.0%} of S(gamma) for gamma <= {g['max_gamma']}): "
            f"{verdict}; worst ratio {g['worst_ratio']:.3f} at gamma = {g['worst_gamma']}. With the measured "
            f"verify cost v(gamma) in place of 1: {'met' if g['met_with_v'] else 'not met'}."
        )
    for row in r["rows"]:
        if row["gamma"] == 4:
            print(
                f"the exercise's gamma = 4: {row['speedup']:.2f}x measured, {row['speedup_pred']:.2f}x predicted "
                f"(ratio {row['ratio']:.2f}); {row['tokens_per_call']:.2f} tokens per target call against "
                f"{row['tokens_per_call_pred']:.2f} predicted"
            )


if __name__ == "__main__":
    raise SystemExit(main())

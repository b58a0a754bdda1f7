"""The speed of speculative decoding against its formula (exercise 13.25), measured in one run.

For the trained pair (:mod:`models.training.spec_pair`) it measures, at batch 1 with KV caches:

- tokens/s of plain target decoding (``GPT.generate``) and of speculative decoding for each γ;
- α two ways: accepted proposals over positions reached, and the mean of Σ min(p, q) over them
  (accepted over *proposed* is not the formula's α: it falls as γ grows);
- the step costs, call by call (:func:`step_costs`): a *step* is one cached forward pass, the
  next-token distribution and one draw. c is the draft's step over the target's one-token step at
  the same context lengths, and v(γ) the target's verify step on γ + 1 tokens over its one-token
  step (the formula takes v = 1: a verify pass as cheap as a decode step, true when a step is bound
  by reading the weights, as on a GPU at batch 1, not when it is bound by arithmetic, as on a CPU);
- the time of a round, and what it costs beyond its model steps as timed in their own loops: the
  loop's own work (acceptance, the residual, rollbacks, building the inputs) and, on a CPU, the two
  models evicting each other's weights from the caches a plain decoding loop keeps warm;
- the predicted speed-up S(γ) = (1 − α^(γ+1)) / ((1 − α)(γc + 1)) and tokens per target call
  E[N] = (1 − α^(γ+1)) / (1 − α), beside the measured ones and their ratio, and the prediction with
  the measured v(γ) in place of 1.

Whole runs are timed without statistics (:class:`models.speculative.SpecStats` costs a little);
the statistics come from one more run with the same seed, which draws the same tokens. The
configurations run interleaved, ``repeats`` rounds after a warm-up round, and every time is the
median over the rounds (:func:`models.utils.timing.time_calls` clocks each), over the same prompts
(cut from the validation split) and the same seeds for every γ.
"""

from __future__ import annotations

import torch

from models.gpt import GPT
from models.sampling import next_token_probs
from models.speculative import SpecStats, speculative_generate
from models.utils.timing import time_calls

GOAL = 0.10  # the goal: measured speed-up within 10 % of S(γ) for γ <= GOAL_GAMMA
GOAL_GAMMA = 6


def predicted(alpha: float, gamma: int, c: float, v: float = 1.0) -> tuple[float, float]:
    """``(E[N], S)``: tokens per target call and the speed-up, for acceptance ``alpha``, ``gamma``
    proposals, draft cost ``c`` and verify cost ``v`` (both in target steps).

    >>> [round(x, 4) for x in predicted(0.8, 4, 0.1)]
    [3.3616, 2.4011]
    """
    tokens = gamma + 1.0 if alpha >= 1 else (1 - alpha ** (gamma + 1)) / (1 - alpha)
    return tokens, tokens / (gamma * c + v)


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def step_costs(
    target: GPT,
    draft: GPT,
    text: torch.Tensor,
    sizes,
    contexts,
    repeats: int = 10,
    temperature: float = 1.0,
    top_k: int | None = None,
    device="cpu",
) -> dict:
    """Seconds per step: ``{("draft", 1): s, ("target", n): s for n in sizes and 1}``.

    A step on n tokens at context length L feeds ``text`` (1, ≥ max(contexts) + max(sizes)) positions
    [L, L + n) to a model whose KV cache holds positions [0, L), computes the next-token distributions
    of all n (:func:`models.sampling.next_token_probs`) and draws one token, as a decode step or a
    verify call does. Each kind is timed as a sweep of steps over every L in ``contexts``, a loop like
    plain decoding's; the kinds take turns, ``repeats`` sweeps each after a warm-up sweep, so that
    drift hits them alike, and a kind's time is its median sweep over the number of steps."""
    sizes = sorted(set(sizes) | {1})
    models = {"target": target, "draft": draft}
    caches = {name: m.new_cache(1, text.size(1)) for name, m in models.items()}
    with torch.inference_mode():
        for name, m in models.items():
            m(text, cache=caches[name])  # every position of text, so any L can be set below
    kinds = [("draft", 1)] + [("target", n) for n in sizes]

    def sweep(kind):
        def run():
            name, n = kind
            model, cache = models[name], caches[name]
            gen = torch.Generator(device=device).manual_seed(0)
            for L in contexts:
                cache.length = L  # positions >= L hold text already; the step rewrites the same values
                logits = model(text[:, L : L + n], cache=cache)[0][0]  # (n, V)
                torch.multinomial(next_token_probs(logits, temperature, top_k)[-1], 1, generator=gen)

        return run

    samples = {k: [] for k in kinds}
    with torch.inference_mode():
        for r in range(repeats + 1):  # sweep 0 warms up and is not counted
            for k in kinds:
                t = time_calls(sweep(k), device=device, repeats=1, warmup=0)
                if r:
                    samples[k].append(t.median / len(contexts))
    return {k: _median(v) for k, v in samples.items()}


def bench(
    target: GPT,
    draft: GPT,
    prompts: list[torch.Tensor],
    new: int,
    gammas=range(1, 9),
    temperature: float = 1.0,
    top_k: int | None = None,
    repeats: int = 5,
    device="cpu",
    seed: int = 0,
) -> dict:
    """Measure plain and speculative decoding of ``new`` tokens after each prompt (1, P), and the step
    costs; returns ``{"plain_tokens_per_s", "c", "target_step_s", "draft_step_s", "rows": [...],
    "goal": {...}}`` with one row per γ. The runs are interleaved, ``repeats`` rounds of every
    configuration in turn, and each time is the median over the rounds, so that a machine's drift
    hits all of them alike. ``goal`` says whether the measured speed-up is within 10 % of S(γ) for
    every γ ≤ 6, and the worst ratio there."""
    gammas = list(gammas)
    total = new * len(prompts)
    P = prompts[0].size(1)

    def plain(_=None):
        g = torch.Generator(device=device).manual_seed(seed)
        for p in prompts:
            target.generate(p, new, temperature=temperature, top_k=top_k, generator=g)

    def spec(gamma, st=None):
        def run(_=None):
            g = torch.Generator(device=device).manual_seed(seed)
            for p in prompts:
                speculative_generate(target, draft, p, new, gamma, temperature, top_k, generator=g, stats=st)
            return st

        return run

    with torch.inference_mode():
        text = target.generate(prompts[0], new + max(gammas), temperature=temperature, top_k=top_k)  # a real text
    contexts = range(P, P + new)  # the context lengths plain decoding goes through
    cost = step_costs(target, draft, text, [g + 1 for g in gammas], contexts, 2 * repeats, temperature, top_k, device)
    with torch.inference_mode():
        stats = {g: spec(g, SpecStats())() for g in gammas}  # untimed: the same draws as the timed runs
    jobs = {"plain": plain} | {g: spec(g) for g in gammas}
    times: dict = {k: [] for k in jobs}
    with torch.inference_mode():
        for r in range(repeats + 1):  # round 0 warms up every job and is not counted
            for key, job in jobs.items():
                t = time_calls(job, device=device, repeats=1, warmup=0)
                if r:
                    times[key].append(t.median)
    t_plain = _median(times["plain"])
    t_step, t_draft = cost[("target", 1)], cost[("draft", 1)]
    c = t_draft / t_step
    rows = []
    for gamma in gammas:
        st: SpecStats = stats[gamma]
        t_spec = _median(times[gamma])
        v = cost[("target", gamma + 1)] / t_step
        alpha = st.alpha_min_mass
        tokens, speedup = predicted(alpha, gamma, c)
        _, speedup_v = predicted(alpha, gamma, c, v)
        measured = t_plain / t_spec
        round_s = t_spec / st.rounds
        model_s = (st.draft_calls * t_draft + st.rounds * v * t_step) / st.rounds  # a round's model steps
        rows.append(
            {
                "gamma": gamma,
                "tokens_per_s": total / t_spec,
                "alpha_accepted": st.alpha_accepted,
                "alpha_min_mass": alpha,
                "naive_p_times_q": st.naive_mass / st.reached if st.reached else float("nan"),
                "accepted_over_proposed": st.accepted / st.proposed if st.proposed else float("nan"),
                "tokens_per_call": st.tokens_per_call,
                "tokens_per_call_pred": tokens,
                "speedup": measured,
                "speedup_pred": speedup,
                "ratio": measured / speedup,
                "verify_cost": v,
                "speedup_pred_v": speedup_v,
                "ratio_v": measured / speedup_v,
                "round_ms": round_s * 1e3,
                "other_ms": (round_s - model_s) * 1e3,  # what the round costs beyond its model steps
            }
        )
    near = [r for r in rows if r["gamma"] <= GOAL_GAMMA]
    worst = max(near, key=lambda r: abs(r["ratio"] - 1)) if near else None
    return {
        "plain_tokens_per_s": total / t_plain,
        "c": c,
        "target_step_s": t_step,
        "draft_step_s": t_draft,
        "plain_step_s": t_plain / total,
        "contexts": [P, P + new - 1],
        "repeats": repeats,
        "rows": rows,
        "goal": {
            "tolerance": GOAL,
            "max_gamma": GOAL_GAMMA,
            "met": bool(near) and all(abs(r["ratio"] - 1) <= GOAL for r in near),
            "worst_gamma": worst["gamma"] if worst else None,
            "worst_ratio": worst["ratio"] if worst else None,
            "met_with_v": bool(near) and all(abs(r["ratio_v"] - 1) <= GOAL for r in near),
        },
    }


def draw(result: dict, path, title: str):
    """Measured and predicted speed-up and tokens per target call against γ, written whole to ``path``
    (:func:`models.utils.files.save_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    rows = result["rows"]
    g = [r["gamma"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    a.plot(g, [r["speedup"] for r in rows], "o-", label="measured")
    a.plot(g, [r["speedup_pred"] for r in rows], "s--", label=r"$S(\gamma)$, measured $\alpha$ and $c$")
    a.plot(g, [r["speedup_pred_v"] for r in rows], "^:", label=r"the same with the verify cost $v(\gamma)$")
    a.axhline(1.0, color="k", lw=0.8)
    a.set(xlabel=r"draft tokens per round $\gamma$", ylabel="speed-up over plain decoding", title=title)
    a.legend(loc="best", fontsize=8)
    b.plot(g, [r["tokens_per_call"] for r in rows], "o-", label="measured")
    b.plot(g, [r["tokens_per_call_pred"] for r in rows], "s--", label=r"$(1 - \alpha^{\gamma+1})/(1 - \alpha)$")
    b.set(xlabel=r"$\gamma$", ylabel="tokens per target call", title=f"tokens per round ($c = {result['c']:.3f}$)")
    b.legend()
    return save_figure(fig, path)

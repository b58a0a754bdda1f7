"""The speed of speculative decoding against its formula (exercise 13.25), measured in one run.

For the trained pair (:mod:`models.training.spec_pair`) it measures, at batch 1 with KV caches:

- tokens/s of plain target decoding (``GPT.generate``) and of speculative decoding for each γ;
- α two ways: accepted proposals over positions reached, and the mean of Σ min(p, q) over them
  (accepted over *proposed* is not the formula's α: it falls as γ grows);
- c: the draft's time per token over the target's in plain decoding of the same prompts (a decode
  step each: one cached forward pass and the draw, at the same context lengths), and v(γ): the
  target's verify call on γ + 1 tokens over its one-token call (the formula takes v = 1);
- the time of a round, and what it costs beyond its model calls (γ draft steps and one verify call
  as timed alone): the loop's own work, sampling, acceptance and rollbacks;
- the predicted speed-up S(γ) = (1 − α^(γ+1)) / ((1 − α)(γc + 1)) and tokens per target call
  E[N] = (1 − α^(γ+1)) / (1 − α), beside the measured ones and their ratio, and the prediction with
  the measured v(γ) in place of 1.

The configurations run interleaved, ``repeats`` rounds after a warm-up round, and every time is the
median over the rounds (:func:`models.utils.timing.time_calls` clocks each), over the same prompts
(cut from the validation split) and the same seeds for every γ.
"""

from __future__ import annotations

import torch

from models.gpt import GPT
from models.speculative import SpecStats, speculative_generate
from models.utils.timing import time_calls


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
    costs; returns ``{"plain_tokens_per_s", "c", "target_step_s", "draft_step_s", "rows": [...]}`` with
    one row per γ. The runs are interleaved, ``repeats`` rounds of every configuration in turn, and
    each time is the median over the rounds, so that a machine's drift hits all of them alike.

    c is the draft's time per token over the target's in plain decoding (a step: forward pass on one
    token with the KV cache, and the draw); v(γ) the target's forward pass on γ + 1 tokens with the
    draw's softmax, over its one-token step."""
    gammas = list(gammas)
    total = new * len(prompts)
    P = prompts[0].size(1)

    def plain(model):
        def run(_=None):
            g = torch.Generator(device=device).manual_seed(seed)
            for p in prompts:
                model.generate(p, new, temperature=temperature, top_k=top_k, generator=g)

        return run

    def spec(gamma):
        def run(_=None):
            g, st = torch.Generator(device=device).manual_seed(seed), SpecStats()
            for p in prompts:
                speculative_generate(target, draft, p, new, gamma, temperature, top_k, generator=g, stats=st)
            return st

        return run

    def verify(n):
        def setup():
            cache = target.new_cache(1, P + n)
            target(prompts[0], cache=cache)
            return cache

        def run(cache):
            cache.rollback(P)
            target(prompts[0][:, -1:].expand(1, n), cache=cache)[0].softmax(-1)

        return run, setup

    jobs = {"plain": plain(target), "draft": plain(draft)} | {("spec", g): spec(g) for g in gammas}
    jobs |= {("verify", g): verify(g + 1) for g in [0, *gammas]}
    times: dict = {k: [] for k in jobs}
    stats: dict = {}
    with torch.inference_mode():
        for r in range(repeats + 1):  # round 0 warms up every job and is not counted
            for key, job in jobs.items():
                fn, setup = job if isinstance(job, tuple) else (job, None)
                t = time_calls(fn, device=device, repeats=1, warmup=0, number=10 if setup else 1, setup=setup)
                if r:
                    times[key].append(t.median)
                if key[0] == "spec":
                    stats[key[1]] = t.result
    t_plain, t_draft, t_step = _median(times["plain"]), _median(times["draft"]), _median(times[("verify", 0)])
    c = t_draft / t_plain  # per token, plain decoding of each model
    rows = []
    for gamma in gammas:
        st: SpecStats = stats[gamma]
        t_spec = _median(times[("spec", gamma)])
        v = _median(times[("verify", gamma)]) / t_step
        alpha = st.alpha_min_mass
        tokens, speedup = predicted(alpha, gamma, c)
        _, speedup_v = predicted(alpha, gamma, c, v)
        measured = t_plain / t_spec
        round_s = t_spec / st.rounds
        model_s = gamma * t_draft / total + v * t_step  # gamma draft steps and one verify call, as timed alone
        rows.append(
            {
                "gamma": gamma,
                "tokens_per_s": total / t_spec,
                "alpha_accepted": st.alpha_accepted,
                "alpha_min_mass": alpha,
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
                "other_ms": (round_s - model_s) * 1e3,  # what the round costs beyond its model calls
            }
        )
    return {
        "plain_tokens_per_s": total / t_plain,
        "c": c,
        "target_step_s": t_plain / total,
        "draft_step_s": t_draft / total,
        "repeats": repeats,
        "rows": rows,
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

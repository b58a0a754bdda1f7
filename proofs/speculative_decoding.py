r"""Exercise 13.25: speculative decoding is exact, and its speed-up follows from the acceptance rate.

Speculative sampling (Leviathan et al. 2023, Algorithm 1; Chen et al. 2023, Algorithm 2): a draft
model proposes $\gamma$ tokens, each $x$ drawn from its distribution $q$; the target scores them all in
one pass; $x$ is accepted with probability $\min(1, p(x)/q(x))$, and at the first rejection one token
is drawn from $\max(0, p - q)$ normalised by its sum. The emitted token then has law

$$\min(p, q) + \Big(1 - \sum_y \min(p(y), q(y))\Big) \frac{\max(0, p - q)}{\sum_y \max(0, p(y) - q(y))} = p,$$

because $\min(a, b) + \max(0, a - b) = a$ for all real $a, b$, and the residual's mass is
$1 - \alpha$ with $\alpha = \sum_y \min(p(y), q(y)) = 1 - \mathrm{TV}(p, q)$, the probability that a
proposal is accepted. The derivation proves these identities with sympy (the law for a symbolic
three-token vocabulary; the acceptance rule case by case). If each position is accepted
independently with probability $\alpha$, a round (one target call) emits $N$ tokens with
$P(N > j) = \alpha^j$ for $j \le \gamma$, counting the correction or bonus token (some sources count
only the accepted draft tokens, one fewer per round), so

$$E[N] = \frac{1 - \alpha^{\gamma + 1}}{1 - \alpha}, \qquad
S(\gamma) = \frac{1 - \alpha^{\gamma + 1}}{(1 - \alpha)(\gamma c + 1)}$$

with $c$ the cost of a draft step over a target step; some $\gamma$ gives $S > 1$ exactly when
$\alpha > c$ (the 'only if' rests on the stated lemma that $\alpha^j \le \alpha$ for $0 \le \alpha \le 1$).

The check runs :func:`models.speculative.speculative_generate` on two tiny untrained GPTs in float64
(the trained pair is for ``python -m models.speculative bench``):

- greedy: the speculative text equals the target's greedy text, token for token, for every
  $\gamma$ from 1 to 8 and several prompts;
- sampling: the joint law of the first ``--positions`` generated tokens (so it spans rounds, and a
  position after the first, where the method can go wrong) is tested against the target's exact
  law, computed by enumeration, with Pearson's chi-square test at false-alarm probability
  :data:`FALSE_ALARM`; the sample size gives power $1 - $ :data:`MISS` against a law off by
  Cohen's $w \ge$ :data:`W_MIN`;
- negative controls, each a bug found in public implementations (:data:`models.speculative.FAULTS`):
  every draft token accepted, a greedy draft under a sampling target, a softmax-normalised residual,
  $q$ from the unprocessed logits while tokens are drawn with top-k, $q$ in bfloat16, and caches reset
  instead of rolled back. Each must be rejected by the same test. For the bfloat16 control the
  draft's logits carry a common offset of 40 (exact softmax ignores it, exercise 13.19) so that
  bfloat16's spacing of 1/4 there is felt, as it is in trained models with large logits.

Beside $\alpha$ the check prints $\sum_x p(x) q(x)$, how often the two models would sample the
same token: the acceptance rate a wrong method would report.
"""

from __future__ import annotations

import sympy as sp

from derive.engine import Derivation
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.25"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Speculative sampling emits tokens with exactly the target's law, and a round yields "
    r"$(1 - \alpha^{\gamma+1})/(1 - \alpha)$ tokens, $\alpha = \sum \min(p, q)$."
)
FALSE_ALARM = 1e-3  # probability that the exactness test rejects a correct implementation
MISS = 1e-3  # probability that it misses a law off by W_MIN
W_MIN = 0.25  # Cohen's effect size the sample size is chosen to detect
DEFAULT_SAMPLES = 1300  # >= samples_for_effect(26, W_MIN, FALSE_ALARM, MISS) = 1,268 (tests check it)
MAX_SAMPLES = 200_000
SAMPLES_WHY = "about 3 ms a sample on a CPU, times 7 runs"
PROMPT = (0, 1)
OFFSET = 40.0  # the draft's common logit offset (bfloat16 spacing 1/4 in [32, 64))
OPTIONS = [
    Option("--gamma", int, 4, "draft tokens proposed per round (the exercise's 4)", lo=1, hi=16, why="time"),
    Option("--vocab", int, 3, "vocabulary of the tiny models", lo=2, hi=6, why="the test has vocab^positions cells"),
    Option("--positions", int, 3, "generated tokens whose joint law is tested", lo=2, hi=4, why="cells"),
    Option("--temperature", float, 1.0, "sampling temperature", lo=0.0, hi=10.0, lo_open=True, why="sampling"),
    Option("--top-k", int, 2, "top-k of the sampling distribution", lo=1, hi=6, why="at most the vocabulary"),
]


def validate(o) -> None:
    """Top-k within the vocabulary; at most 256 cells in the joint law."""
    if o.top_k > o.vocab:
        raise ValueError(f"top_k: must be at most --vocab ({o.vocab}), got {o.top_k}")
    if o.vocab**o.positions > 256:
        raise ValueError(f"positions: vocab^positions must be at most 256 cells, got {o.vocab**o.positions}")


# -- derivation -------------------------------------------------------------------------------
def derivation() -> Derivation:
    """The acceptance rule, the emitted law, the tokens per round and the speed-up condition."""
    a, b = sp.symbols("a b", real=True)
    p, q, s = sp.symbols("p q s", positive=True)
    der = Derivation(
        "Exercise 13.25: speculative sampling is exact, and what it gains",
        assumptions=[
            r"$p$, $q$: the target's and the draft's next-token distributions, after temperature and top-k "
            r"(the ones tokens are drawn from); $q(x) > 0$ wherever the draft proposes $x$",
            r"a proposal $x \sim q$ is accepted with probability $\min(1, p(x)/q(x))$; after the first rejection "
            r"one token is drawn from $\max(0, p - q)$ normalised by its sum",
            r"for $E[N]$: each proposal is accepted independently with probability $\alpha$, $0 < \alpha < 1$ "
            r"(written $\alpha = 1/(1 + u)$, $u > 0$); $N$ counts every token a round emits, the correction or "
            "bonus token included",
            r"for $S$: a draft step costs $c > 0$ target steps, and a target call on $\gamma + 1$ tokens costs one",
        ],
    )
    der.eq(sp.Min(a, b) + sp.Max(0, a - b), a, r"$\min(a, b) + \max(0, a - b) = a$ for real $a, b$", "piecewise")
    der.eq(
        sp.Min(a, b),
        (a + b - sp.Abs(a - b)) / 2,
        r"and $\min(a, b) = (a + b - |a - b|)/2$, so $\sum \min(p, q) = 1 - \frac{1}{2}\sum |p - q|$",
        "piecewise",
    )
    # acceptance: q min(1, p/q) = min(p, q), case by case
    cases = (
        (0, "p = 0"),
        (q / (1 + s), "p < q: p = q/(1 + s), s > 0"),
        (q, "p = q"),
        (q * (1 + s), "p > q: p = q(1 + s), s > 0"),
    )
    for pp, case in cases:
        der.eq(
            q * sp.Min(1, p / q),
            sp.Min(p, q),
            rf"proposing and accepting $x$ has probability $q \min(1, p/q) = \min(p, q)$; case ${case}$",
            "simplify",
            computed=(q * sp.Min(1, pp / q)) - sp.Min(pp, q) + sp.Min(p, q),  # zero difference in this case
        )
    # the emitted law over a symbolic 3-token vocabulary
    p1, p2 = sp.symbols("p_1 p_2", positive=True)
    P = [p1, p2, 1 - p1 - p2]
    m = sp.symbols("m_1:4", nonnegative=True)  # m_x = min(p_x, q_x)
    alpha = sum(m)
    residual = [pi - mi for pi, mi in zip(P, m)]  # max(0, p - q) = p - min(p, q): step 1
    der.eq(
        sp.Symbol("R"),
        1 - alpha,
        r"the residual's mass: $R = \sum_x \max(0, p_x - q_x) = \sum_x (p_x - m_x) = 1 - \alpha$ by step 1, "
        r"with $m_x = \min(p_x, q_x)$, $\alpha = \sum_x m_x$ and $\sum_x p_x = 1$ (three tokens)",
        "expand",
        computed=sum(residual),
    )
    law = sp.Matrix([mi + (1 - alpha) * ri / sum(residual) for mi, ri in zip(m, residual)])
    A, Rs = sp.symbols("alpha R")
    shown = sp.Matrix([mi + (1 - A) * (pi - mi) / Rs for mi, pi in zip(m, P)])
    der.eq(
        shown,
        sp.Matrix(P),
        r"the emitted token's law, accepted or drawn from the residual: $m_x + (1 - \alpha)(p_x - m_x)/R = p_x$ "
        r"when $\alpha < 1$; when $\alpha = 1$, $p = q$, nothing is rejected and the law is $m = p$",
        "cancel",
        computed=law,
    )
    # tokens per round
    g = sp.Symbol("gamma", integer=True, positive=True)
    k, j = sp.symbols("k j", integer=True, nonnegative=True)
    u, al, c = sp.symbols("u alpha c", positive=True)
    at = {al: 1 / (1 + u)}
    EN = sp.Symbol("E[N]")
    expected = sp.summation((k + 1) * al**k * (1 - al), (k, 0, g - 1)) + (g + 1) * al**g
    closed = (1 - al ** (g + 1)) / (1 - al)
    der.eq(
        EN,
        closed,
        r"$P(N = k + 1) = \alpha^k (1 - \alpha)$ for $k < \gamma$ and $P(N = \gamma + 1) = \alpha^\gamma$, "
        r"summed for a symbolic $\gamma$",
        "simplify",
        computed=(expected - closed).subs(at) + closed,
    )
    der.eq(
        EN,
        sp.Sum(al**j, (j, 0, g)),
        r"the same as the tail sum $\sum_{j=0}^{\gamma} P(N > j) = \sum_{j=0}^{\gamma} \alpha^j$",
        "simplify",
        computed=(closed - sp.summation(al**j, (j, 0, g))).subs(at) + sp.Sum(al**j, (j, 0, g)),
    )
    der.limit(closed, al, 1, g + 1, r"as $\alpha \to 1$ every proposal is accepted: $\gamma + 1$ tokens a round")
    S = sp.Function("S")
    der.define(S(g), closed / (g * c + 1), r"the speed-up: tokens per round over the round's cost $\gamma c + 1$")
    der.eq(
        S(1) - 1,
        (al - c) / (1 + c),
        r"$S(1) - 1 = (\alpha - c)/(1 + c)$: with $\gamma = 1$, $S > 1$ when $\alpha > c$",
        "cancel",
        computed=(closed / (g * c + 1)).subs(g, 1) - 1,
    )
    lemma = der.lemma("Lemma (powers)", r"for $0 \le \alpha \le 1$ and integers $j \ge 1$, $\alpha^j \le \alpha$")
    rest = sp.Sum(al - al**j, (j, 1, g))
    der.eq(
        1 + g * c - EN,
        g * (c - al) + rest,
        r"the gap in $E[N] \le 1 + \gamma c$, which holds exactly when $S(\gamma) \le 1$",
        "simplify",
        computed=((1 + g * c - closed) - g * (c - al) - sp.summation(al - al**j, (j, 1, g))).subs(at)
        + g * (c - al)
        + rest,
    )
    delta, R = sp.symbols("delta R_gamma", nonnegative=True)  # delta = c - alpha >= 0; R_gamma >= 0 by the lemma
    der.holds(
        g * delta + R,
        ">=",
        0,
        r"if $\alpha \le c$ ($\delta = c - \alpha \ge 0$) the gap $\gamma \delta + R_\gamma$ is $\ge 0$, with "
        r"$R_\gamma = \sum_{j=1}^{\gamma} (\alpha - \alpha^j) \ge 0$ by the lemma: then $S(\gamma) \le 1$ for every "
        r"$\gamma$, so some $\gamma$ gives $S > 1$ exactly when $\alpha > c$",
        lemma=lemma,
    )
    return der


# -- the tiny models and the exact law ---------------------------------------------------------
def tiny_pair(vocab: int, offset: float = 0.0):
    """A target and a draft GPT of one layer each (seeds 0 and 1), float64, untrained but with output
    weights scaled so that their distributions are far from uniform and from each other. ``offset`` adds a constant to
    every draft logit (feature 0 of its final LayerNorm is held at 1 and weighted by ``offset``)."""
    import torch

    from models.gpt import GPT, GPTConfig

    def make(n_layer: int, seed: int) -> GPT:
        torch.manual_seed(seed)
        cfg = GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=2, n_embd=16, block_size=64, pos="rope")
        cfg.tie_weights = False
        m = GPT(cfg).double().eval()
        with torch.no_grad():
            m.lm_head.weight.mul_(8.0)
        return m

    target, draft = make(1, 0), make(1, 1)
    if offset:
        with torch.no_grad():
            draft.ln_f.weight[0], draft.ln_f.bias[0] = 0.0, 1.0
            draft.lm_head.weight[:, 0] = offset
    return target, draft


def exact_law(target, vocab: int, positions: int, temperature: float, top_k: int) -> dict:
    """The target's law of the next ``positions`` tokens after :data:`PROMPT`, by enumeration: a dict
    from each token tuple to its probability (float64 products of next-token probabilities)."""
    import torch

    from models.sampling import next_token_probs

    law: dict = {}

    @torch.no_grad()
    def walk(prefix: tuple, prob: float) -> None:
        if len(prefix) == positions:
            law[prefix] = prob
            return
        x = torch.tensor([[*PROMPT, *prefix]])
        nxt = next_token_probs(target(x)[0][0, -1], temperature, top_k, torch.float64)
        for v in range(vocab):
            walk((*prefix, v), prob * float(nxt[v]))

    walk((), 1.0)
    return law


# -- the check --------------------------------------------------------------------------------
def _of(fault) -> str:
    return "" if fault is None else f", {fault}"


def cache_gap(target, draft, o, fault, gen) -> float:
    """The largest difference between the keys and values the two caches hold after 30 sampled tokens
    and those of a fresh pass over the same text (infinite if a cache holds the wrong number of
    positions). The target's cache must hold the text but its last token; the draft's a prefix of it."""
    import torch

    from models.speculative import speculative_generate

    need = len(PROMPT) + 30 + o.gamma
    tc, dc = target.new_cache(1, need), draft.new_cache(1, need)
    out = speculative_generate(
        target,
        draft,
        torch.tensor([list(PROMPT)]),
        30,
        gamma=o.gamma,
        temperature=o.temperature,
        top_k=o.top_k,
        generator=gen,
        prob_dtype=torch.float64,
        caches=(tc, dc),
        fault=fault,
    )
    worst = 0.0
    for model, cache, length in ((target, tc, out.size(1) - 1), (draft, dc, dc.length)):
        if cache.length != length or length > out.size(1) - 1:
            return float("inf")
        fresh = model.new_cache(1, need)
        with torch.no_grad():
            model(out[:, :length], cache=fresh)
        for a, b in zip(cache.k + cache.v, fresh.k + fresh.v):
            worst = max(worst, float((a[:, :, :length] - b[:, :, :length]).abs().max()))
    return worst


@with_options
def check(o) -> CheckResult:
    """Greedy equality with the target, and the chi-square test of the sampled law, with controls."""
    import numpy as np
    import torch

    from models.speculative import FAULTS, SpecStats, speculative_generate
    from models.utils.device import one_thread
    from numeric.goodness import chi_square

    res = CheckResult(f"Exercise {NUMBER}: speculative sampling is exact", "cpu (float64)", o.samples, o.seed)
    target, draft = tiny_pair(o.vocab)
    _, offset_draft = tiny_pair(o.vocab, OFFSET)
    with one_thread():  # batch-1 decoding of tiny models: threads only contend
        # greedy: equal to the target's own greedy decoding
        prompts = [torch.tensor([list(PROMPT)]), torch.tensor([[1]]), torch.tensor([[2 % o.vocab, 0, 1, 1]])]
        mismatches, always = 0, 0
        for prompt in prompts:
            ref = target.generate(prompt, 40, temperature=0)
            for gamma in range(1, 9):
                out = speculative_generate(
                    target, draft, prompt, 40, gamma=gamma, temperature=0, prob_dtype=torch.float64
                )
                mismatches += int((out != ref).sum())
            out = speculative_generate(
                target, draft, prompt, 40, gamma=o.gamma, temperature=0, prob_dtype=torch.float64, fault="always_accept"
            )
            always += int((out != ref).sum())
        res.claims.append(
            Bound.of(
                "greedy: tokens that differ from the target's greedy text (3 prompts, gamma 1..8)", mismatches, 0, 0
            )
        )
        res.controls.append(Bound.of("greedy, every draft token accepted: tokens that differ", always, 0, 0))

        law = exact_law(target, o.vocab, o.positions, o.temperature, o.top_k)
        cells = list(law)
        probs = np.array([law[cl] for cl in cells])
        index = {cl: i for i, cl in enumerate(cells)}
        gen = torch.Generator().manual_seed(o.seed)
        prompt = torch.tensor([list(PROMPT)])
        for fault in (None, "reset_cache"):  # the caches after a sampled run hold exactly a fresh pass
            gap = cache_gap(target, draft, o, fault, torch.Generator().manual_seed(o.seed))
            finding = Bound.of(
                f"KV caches after 30 sampled tokens vs a fresh pass{_of(fault)}: max |diff|", gap, 0, 1e-10
            )
            (res.claims if fault is None else res.controls).append(finding)
        for fault in [None, *(f for f in FAULTS if f != "reset_cache")]:
            counts, st = np.zeros(len(cells)), SpecStats()
            model = offset_draft if fault == "bf16_q" else draft
            for _ in range(o.samples):
                out = speculative_generate(
                    target,
                    model,
                    prompt,
                    o.positions,
                    gamma=o.gamma,
                    temperature=o.temperature,
                    top_k=o.top_k,
                    generator=gen,
                    prob_dtype=torch.float64,
                    stats=st,
                    fault=fault,
                )
                counts[index[tuple(out[0, len(PROMPT) :].tolist())]] += 1
            name = "correct" if fault is None else fault
            verdict = chi_square(counts, probs, f"law of tokens 1..{o.positions}, {name}", FALSE_ALARM)
            (res.claims if fault is None else res.controls).append(verdict)
            res.table.append(
                {
                    "variant": name,
                    "chi2": verdict.statistic,
                    "df": verdict.df,
                    "p_value": verdict.p_value,
                    "w": verdict.effect,
                    "alpha_accepted": st.alpha_accepted,
                    "alpha_min_mass": st.alpha_min_mass,
                    "sum_pq": st.naive_mass / st.reached if st.reached else float("nan"),
                    "tokens_per_round": st.tokens_per_call,
                }
            )
            if fault is None:
                res.series["observed"], res.series["exact"] = counts / counts.sum(), probs
                res.series["cells"] = ["".join(map(str, cl)) for cl in cells]
    row = res.table[0]
    res.notes += [
        f"models: target and draft GPTs of 1 layer each (seeds 0 and 1), width 16, vocabulary {o.vocab}, untrained "
        f"(output weights x8), float64 on the CPU; prompt {list(PROMPT)}, gamma {o.gamma}, "
        f"temperature {o.temperature:g}, top-k {o.top_k}",
        f"chi-square: {o.samples:,} sequences per variant; cells expected to hold < 5 pooled; false alarm "
        f"{FALSE_ALARM:g}; power {1 - MISS:g} at Cohen's w >= {W_MIN} (df <= {o.vocab**o.positions - 1})",
        f"acceptance rate alpha: {row['alpha_accepted']:.3f} as accepted / positions reached, "
        f"{row['alpha_min_mass']:.3f} as the mean of sum min(p, q); the naive 'both sample the same token' "
        f"rate sum p q is {row['sum_pq']:.3f}, what a wrong method would report",
        "the bfloat16 control uses a draft whose logits carry a common offset of 40: exact softmax ignores it, "
        "bfloat16 rounds the logits there to multiples of 1/4",
    ]
    res.settings, res.series["gamma"] = o, o.gamma
    return res


def figure(res: CheckResult):
    r"""The sampled law of the first generated tokens against the target's exact law (left; sequences of
    probability 0 under both left out), and each variant's evidence against exactness, $-\log_{10} p$ of
    its chi-square test, beside the rejection line (right): the correct method below it, every bug above."""
    import math

    import numpy as np

    fig, (a, b) = plotting.subplots(2, width=12, height=4.5)
    keep = [i for i, (e, s) in enumerate(zip(res.series["exact"], res.series["observed"])) if e > 0 or s > 0]
    x = np.arange(len(keep))
    a.bar(x - 0.2, res.series["exact"][keep], 0.4, label="target's exact law")
    a.bar(x + 0.2, res.series["observed"][keep], 0.4, label="speculative, sampled")
    a.set(
        xticks=x,
        xlabel="generated tokens",
        ylabel="probability",
        title=plotting.title(res, f"Exercise {NUMBER}: law of the first tokens"),
    )
    a.set_xticklabels([res.series["cells"][i] for i in keep], rotation=90)
    a.legend()
    cap = 320.0  # -log10 of the smallest positive double: an infinite statistic is drawn there
    names = [r["variant"] for r in res.table]
    evidence = [min(cap, -math.log10(r["p_value"])) if r["p_value"] > 0 else cap for r in res.table]
    b.barh(names, evidence, color=["C2"] + ["C3"] * (len(names) - 1))
    b.axvline(-math.log10(FALSE_ALARM), color="k", ls="--", label=f"reject: $p < {FALSE_ALARM:g}$")
    b.set(xscale="symlog", xlabel=r"$-\log_{10} p$ (chi-square)", title="the exact method against known bugs")
    b.legend(loc="lower right")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

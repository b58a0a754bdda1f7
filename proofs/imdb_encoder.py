r"""Exercise 13.24: a tiny encoder-only Transformer, pretrained by masked-language modelling and
fine-tuned on IMDB sentiment, against the same model from scratch and bag-of-words baselines.

The model (``models.encoder``) is the GPT's blocks made bidirectional, with a padding mask, an MLM
head tied to the token embedding and a classifier over the mean of the non-padding positions.
Three facts the exercise rests on are derived and checked here; the accuracy question itself is the
full run's (``python -m models.imdb``, minutes), whose saved result is read and drawn.

BERT's masking (Devlin et al. 2019, section 3.1): each ordinary token is chosen with probability
$3/20$; a chosen token becomes [MASK] with probability $4/5$, a uniformly drawn ordinary token with
probability $1/10$, or stays. So $3/25$ of the ordinary tokens read [MASK], and with $N$ ordinary
tokens a chosen one differs from the original with probability $(9N - 1)/(10N)$ (a random draw may
give the token back), not $4/5$. Mean pooling $\sum_i m_i h_i / \sum_i m_i$ with the padding's
$m_i = 0$ does not depend on the padding's vectors: padding a review cannot change its class.
A classifier that learned nothing has cross-entropy $\log 2$.

The check draws BERT's masking on ``samples`` ordinary tokens (``models.training.mlm.mask_tokens``)
and tests the four rates by binomial z-tests at false-alarm rate $10^{-9}$ each; it rejects "15 % of
tokens read [MASK]" and "4/5 of the chosen tokens change". A float64 encoder gives a review the same
class and MLM logits with and without 14 padding positions (to $10^{-12}$); a real token in the
padding, or pooling over the padding, changes them. A tiny encoder trained for ``--steps`` Adam steps
on a toy task (label: whether token 10 occurs) classifies 2,000 fresh sequences above 90 %
(one-sided z-test), and "it is at chance" is rejected.
"""

from __future__ import annotations

import math
from pathlib import Path

import sympy as sp

from derive.engine import Derivation
from derive.losses import uniform_loss_steps
from models.utils.files import read_json
from numeric.check import Bound, CheckResult
from numeric.stats import Estimate, compare, one_sided
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.24"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"BERT's masking reads [MASK] at $3/25$ of the tokens, padding leaves an encoder's output unchanged, "
    "and a tiny encoder learns to classify."
)
SAVED = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "imdb_cpu" / "results.json"
RATE = 1e-9  # false-alarm rate of each z-test
DEFAULT_SAMPLES = 400_000  # ordinary tokens masked (400 rows of 1,000)
MAX_SAMPLES = 20_000_000
UNUSED_FLAGS = {"--device": "small CPU computations: masking draws and a toy encoder"}
MIN_SAMPLES = 10_000
MIN_SAMPLES_WHY = "about 1,500 chosen tokens, so every masking rate has a count to test"
SAMPLES_WHY = "memory: about 50 bytes per token (ids, two uniforms, random ids, inputs, targets): 20 M is 1 GB"
VOCAB = 1000  # the masking draw's vocabulary; 5 special ids, so 995 ordinary tokens
TOL = 1e-12  # float64 agreement of logits of O(1)
TOY_EVAL = 2000  # fresh toy sequences the trained encoder classifies
TOY_BAR = 0.9
OPTIONS = [
    Option(
        "--steps",
        int,
        150,
        "Adam steps of the tiny encoder on the toy task",
        lo=1,
        hi=20_000,
        why="time: about 10 ms a step on 2 CPU cores",
    ),
]


def derivation() -> Derivation:
    """The masking rates, the padding invariance of mean pooling, and the loss of a classifier that learned nothing."""
    n = sp.Symbol("N", positive=True, integer=True)
    chosen, to_mask, to_random = sp.Rational(3, 20), sp.Rational(4, 5), sp.Rational(1, 10)
    der = Derivation(
        "Exercise 13.24: BERT's masking, mean pooling over padding, and the chance loss",
        assumptions=[
            r"each of $N \ge 2$ ordinary tokens is chosen with probability $3/20$; a chosen token becomes [MASK] "
            r"with probability $4/5$, a uniform draw from the $N$ ordinary tokens with probability $1/10$, "
            r"else stays",
            r"mean pooling: $\mathrm{pool}(h, m) = \sum_i m_i h_i / \sum_i m_i$ with $m_i = 1$ on a review's "
            r"tokens and $m_i = 0$ on padding",
        ],
    )
    p = sp.Function("P")
    der.eq(
        p(sp.Symbol("reads_MASK")), sp.Rational(3, 25), r"$\frac{3}{20} \cdot \frac{4}{5}$", computed=chosen * to_mask
    )
    der.eq(
        p(sp.Symbol("random_draw")),
        sp.Rational(3, 200),
        r"$\frac{3}{20} \cdot \frac{1}{10}$",
        computed=chosen * to_random,
    )
    der.eq(
        p(sp.Symbol("kept_but_predicted")),
        sp.Rational(3, 200),
        r"$\frac{3}{20} \cdot (1 - \frac{4}{5} - \frac{1}{10})$",
        computed=chosen * (1 - to_mask - to_random),
    )
    der.eq(
        p(sp.Symbol("changed | chosen")),
        (9 * n - 1) / (10 * n),
        r"[MASK], or a random draw other than the original token: $\frac{4}{5} + \frac{1}{10}(1 - \frac{1}{N})$",
        computed=to_mask + to_random * (1 - 1 / n),
    )
    der.holds((9 * n - 1) / (10 * n), ">=", to_mask, "at least $4/5$ of the chosen tokens change: more when $N > 1$")
    h = sp.symbols("h_1:6", real=True)
    m = [1, 1, 1, 0, 0]  # three tokens, then two padding positions
    der.eq(
        sp.Symbol("pool(h_1..h_5, m)"),
        (h[0] + h[1] + h[2]) / 3,
        r"two padding positions ($m_4 = m_5 = 0$) drop out whatever $h_4, h_5$: the review's own mean",
        computed=sum(mi * hi for mi, hi in zip(m, h)) / sum(m),
    )
    uniform_loss_steps(der, 2)
    return der


# -- numerics ------------------------------------------------------------------------------------


def _rate(k: int, n: int, claimed: float) -> Estimate:
    """k of n as an estimate whose standard error is the binomial one under the claimed rate."""
    return Estimate(k / n, math.sqrt(claimed * (1 - claimed) / n), n)


def masking_findings(samples: int, gen) -> tuple[list, list, dict]:
    """Mask ``samples`` ordinary tokens (rows of 1,000) with BERT's rule; z-tests of the four rates
    (claims) and of two plausible wrong rates (controls); the measured rates for the figure."""
    import torch

    from models.data.wordpiece import MASK, SPECIAL
    from models.training.mlm import RATE as CHOSEN
    from models.training.mlm import TO_MASK, TO_RANDOM, mask_tokens

    rows = max(1, samples // 1000)
    ids = torch.randint(len(SPECIAL), VOCAB, (rows, samples // rows), generator=gen)
    inputs, targets = mask_tokens(ids, VOCAB, gen)
    chosen = targets >= 0
    n, k = ids.numel(), int(chosen.sum())
    masked = int((inputs[chosen] == MASK).sum())
    kept = int((inputs[chosen] == ids[chosen]).sum())
    ordinary = VOCAB - len(SPECIAL)
    changed_p = TO_MASK + TO_RANDOM * (1 - 1 / ordinary)
    claims = [
        compare(_rate(k, n, CHOSEN), CHOSEN, "tokens chosen for prediction = 3/20", RATE),
        compare(_rate(masked, n, CHOSEN * TO_MASK), CHOSEN * TO_MASK, "tokens that read [MASK] = 3/25", RATE),
        compare(
            _rate(k - kept, k, changed_p), changed_p, f"chosen tokens changed = (9N - 1)/(10N), N = {ordinary}", RATE
        ),
        compare(
            _rate(k - masked - kept, k, changed_p - TO_MASK),
            changed_p - TO_MASK,
            "chosen tokens replaced by a different random token = (N - 1)/(10N)",
            RATE,
        ),
    ]
    controls = [
        compare(_rate(masked, n, CHOSEN), CHOSEN, "15% of the tokens read [MASK] (wrong: 15% are chosen)", RATE),
        compare(_rate(k - kept, k, TO_MASK), TO_MASK, "4/5 of the chosen tokens change (wrong: random ones too)", RATE),
    ]
    measured = {"chosen": k / n, "[MASK]": masked / n, "random": (k - masked - kept) / n, "kept": kept / n}
    expected = {
        "chosen": CHOSEN,
        "[MASK]": CHOSEN * TO_MASK,
        "random": CHOSEN * (changed_p - TO_MASK),
        "kept": CHOSEN * (1 - changed_p),
    }
    return claims, controls, {"measured": measured, "expected": expected, "tokens": n}


def tiny_encoder(seed: int, dtype=None):
    """A 1-layer, width-32 encoder over 50 ids (the first 5 special), positions up to 24, no dropout."""
    import torch

    from models.encoder import Encoder
    from models.gpt import GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=32, block_size=24, dropout=0.0, pos="learned")
    model = Encoder(cfg)
    return model.to(dtype) if dtype is not None else model


def padding_findings(seed: int, gen) -> tuple[list, list]:
    """A float64 encoder on 3 reviews of 10 tokens, then the same with 14 [PAD] positions appended."""
    import torch

    from models.data.wordpiece import CLS, PAD, SPECIAL

    model = tiny_encoder(seed, torch.float64).eval()
    x = torch.randint(len(SPECIAL), 50, (3, 10), generator=gen)
    x[:, 0] = CLS
    padded = torch.cat([x, torch.full((3, 14), PAD, dtype=torch.long)], 1)
    real = padded.clone()
    real[:, 12] = 7  # a real token where padding was
    with torch.no_grad():
        cls = model(x)
        gap = lambda a, b: float((a - b).abs().max())  # noqa: E731
        feats = model.features(padded)
        over_all = model.head(feats.mean(1))  # pooling over every position, the padding's too
        claims = [
            Bound.of("class logits with 14 padding positions = without (max |diff|)", gap(model(padded), cls), 0, TOL),
            Bound.of(
                "MLM logits of the review's tokens with padding = without",
                gap(model.mlm_logits(padded)[:, :10], model.mlm_logits(x)),
                0,
                TOL,
            ),
        ]
        controls = [
            Bound.of("a real token in place of padding leaves the class logits", gap(model(real), cls), 0, TOL),
            Bound.of("mean pooling over the padding too leaves the class logits", gap(over_all, cls), 0, TOL),
        ]
    return claims, controls


def toy_task(steps: int, seed: int):
    """Train the tiny encoder ``steps`` Adam steps (batch 64, lr 3e-3) on "does token 10 occur in these
    11 tokens"; returns (accuracy on TOY_EVAL fresh sequences, training losses)."""
    import torch

    from models.data.wordpiece import CLS
    from models.encoder import class_loss
    from models.utils.device import one_thread

    gen = torch.Generator().manual_seed(seed)

    def batch(n):
        x = torch.randint(11, 50, (n, 12), generator=gen)
        y = torch.randint(0, 2, (n,), generator=gen)
        where = torch.randint(1, 12, (n,), generator=gen)
        x[y == 1, where[y == 1]] = 10
        x[:, 0] = CLS
        return x, y

    losses = []
    with one_thread(), torch.random.fork_rng():  # the global RNG (init, dropout) is the caller's again after
        model = tiny_encoder(seed)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(steps):
            loss = class_loss(model, batch(64))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        x, y = batch(TOY_EVAL)
        with torch.no_grad():
            acc = float((model.eval()(x).argmax(-1) == y).float().mean())
    return acc, losses


def read_saved(path: Path = SAVED) -> dict | None:
    """The saved ``cpu`` run of ``python -m models.imdb`` (its results.json), or None when absent."""
    return read_json(path)


def saved_notes(saved: dict) -> list[str]:
    """The saved run in a few lines: test accuracies with their intervals, and the paired tests."""
    sp_ = saved["split"]
    lines = [
        f"saved full run ({saved['preset']} preset, {saved['device']}, {saved['seconds'] / 60:.1f} min; "
        f"{sp_['train']:,} training reviews, labels of {sp_['labelled']:,}, {sp_['test']:,} test reviews): "
        + "; ".join(
            f"{name} {s['accuracy']:.1%} [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}]"
            + (f" (seeds {s['mean']:.1%} ± {s['sd']:.1%})" if s.get("sd") is not None else "")
            for name, s in saved["test_accuracy"].items()
        )
    ]
    scratch = [c for c in saved["mcnemar"] if c["pretrained_vs"] == "from scratch"]
    lines.append(
        "McNemar, pretrained against from scratch, per seed: "
        + "; ".join(
            f"seed {c['seed']}: {c['only_first_right']} vs {c['only_second_right']} reviews, p = {c['p_value']:.2g}"
            for c in scratch
        )
    )
    if "goal" in saved:
        lines.append(f"does pretraining help? {saved['goal']['statement']}")
    lines.append(f"caveat: {saved['caveat']}")
    return lines


@with_options
def check(o) -> CheckResult:
    """Masking rates by z-tests, padding invariance in float64, a tiny encoder learning a toy task;
    the saved full run's accuracies as notes."""
    import torch

    gen = torch.Generator().manual_seed(o.seed)
    res = CheckResult(CLAIM, "cpu", o.samples, o.seed)
    claims, controls, rates = masking_findings(o.samples, gen)
    res.claims += claims
    res.controls += controls
    claims, controls = padding_findings(o.seed, gen)
    res.claims += claims
    res.controls += controls
    acc, losses = toy_task(o.steps, o.seed)
    n = TOY_EVAL
    res.claims.append(
        one_sided(
            Estimate(acc, math.sqrt(TOY_BAR * (1 - TOY_BAR) / n), n),
            ">",
            TOY_BAR,
            f"toy task after {o.steps} steps: accuracy on {n:,} fresh sequences > {TOY_BAR:.0%}",
            RATE,
        )
    )
    res.controls.append(compare(Estimate(acc, math.sqrt(0.25 / n), n), 0.5, "the toy classifier is at chance", RATE))
    res.table = [{"rate": k, "measured": v, "expected": rates["expected"][k]} for k, v in rates["measured"].items()]
    res.notes += [
        f"masking: {rates['tokens']:,} ordinary tokens of a {VOCAB}-id vocabulary (5 special), "
        "models.training.mlm.mask_tokens; binomial z-tests with the standard error under the stated rate, "
        f"false-alarm rate {RATE:g} each",
        "padding: models.encoder.Encoder, 1 layer, width 32, float64, eval mode; tolerance "
        f"{TOL:g} on logits of order 1",
        f"toy task: the same encoder in float32, {o.steps} Adam steps of batch 64; accuracy {acc:.4f}; z-tests at "
        f"false-alarm rate {RATE:g} (standard errors under the tested rate)",
        "the accuracy on IMDB is the full run's: python -m models.imdb --preset cpu (about 15 minutes on 2 cores)",
    ]
    saved = read_saved()
    if saved is None:
        res.notes.append(f"no saved full run at {SAVED}")
    else:
        res.notes += saved_notes(saved)
        res.series["saved"] = saved
    res.series |= {"rates": rates, "losses": losses, "accuracy": acc}
    return res


def figure(res: CheckResult):
    """BERT's masking rates measured against their values, the toy task's training loss, and the saved
    run's test accuracies with 95 % intervals."""
    saved = res.series.get("saved")
    fig, axes = plotting.subplots(3 if saved else 2, width=15 if saved else 10, height=4.2)
    rates = res.series["rates"]
    names = list(rates["measured"])
    a = axes[0]
    a.bar([i - 0.2 for i in range(len(names))], [rates["expected"][k] for k in names], 0.4, label="BERT's rule")
    a.bar([i + 0.2 for i in range(len(names))], [rates["measured"][k] for k in names], 0.4, label="measured")
    a.set_xticks(range(len(names)), names)
    a.set(ylabel="fraction of ordinary tokens", title=f"masking, {rates['tokens']:,} tokens")
    a.legend(fontsize=8)
    b = axes[1]
    b.plot(res.series["losses"], lw=0.8)
    b.axhline(math.log(2), color="k", ls=":", lw=0.8, label=r"$\log 2$ (chance)")
    b.set(xlabel="Adam step", ylabel="cross-entropy (nats)", title=f"toy task: accuracy {res.series['accuracy']:.3f}")
    b.legend(fontsize=8)
    if saved:
        c = axes[2]
        acc = saved["test_accuracy"]
        labels = list(acc)
        vals = [acc[k]["accuracy"] for k in labels]
        err = [
            [v - acc[k]["ci95"][0] for k, v in zip(labels, vals)],
            [acc[k]["ci95"][1] - v for k, v in zip(labels, vals)],
        ]
        c.bar(range(len(labels)), vals, yerr=err, capsize=4)
        c.set_xticks(range(len(labels)), [k.replace(" + ", "\n+ ").replace(" ", "\n", 1) for k in labels], fontsize=8)
        c.set_ylim(0.5, 1.0)
        c.set(ylabel="test accuracy (95% interval, seed 0)", title=f"saved IMDB run ({saved['preset']} preset)")
    fig.suptitle("Exercise 13.24: a tiny encoder, masked-language modelling and IMDB")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

r"""Exercise 13.6: what positional encoding does, and where "a Transformer cannot work without it" stops holding.

In plain words. Attention compares each token with the others by content alone and adds up what it
finds; nothing in that sum says which token came first. Positional encoding gives every token a mark of
where it stands (a vector added to its embedding, sinusoidal or learned, or a rotation of its queries and
keys, RoPE), so that "dog bites man" and "man bites dog" enter the network as different inputs. Without
it a bidirectional encoder (BERT) is permutation equivariant: shuffle the words and its outputs shuffle
the same way (exercise 13.2), so an order-free summary such as the mean-pooled vector a classifier reads
is the same for both sentences. The encoder sees a bag of words.

Where that stops holding (Haviv et al. 2022; Kazemnejad et al. 2023). A causal decoder (GPT) is not
symmetric: its mask lets position $i$ see only the first $i$ tokens. One causal layer at the last
position still attends over an unordered set (its keys and values carry no position), so its output
does not change when the earlier tokens are shuffled. A second layer reads the first layer's outputs,
and each of those summarises its own prefix, which does depend on the order (the first position sees
only itself). So from two layers on a decoder can infer order from the mask alone, and a GPT with no
positional encoding (NoPE) learns language.

The derivation proves that mean pooling ignores any permutation ($u P = u$ for the all-ones row $u$), so
with exercise 13.2's equivariance (a stated lemma) the pooled output does too; that with positions added
the reordered sentence's input is not the reordered input (they differ by $(I - P) E$); and, for a
one-head causal toy, that the last position of one layer is symmetric in the earlier tokens while a second
layer's output changes when they are swapped, plus the loss $\log V$ of a model that learned nothing. The
check measures in float64, with random weights: ``models.encoder.Encoder`` with its position table zeroed
permutes with its inputs and pools "dog bites man" and "man bites dog" alike ($\max|\Delta| \le 10^{-12}$;
controls: the same encoder with its table); ``models.gpt.GPT`` with ``pos="none"``: one layer's last
output is unchanged by shuffling the earlier tokens (controls: with two layers, or with learned positions,
it changes). Then it trains the GPT with learned positions and with none on tiny Shakespeare for a few
hundred steps on the same batches (``proofs.kit.trained``; each must beat the frequency-only loss) and
reports the difference with its standard error; the saved full run (``docs/experiments/nope``, written by
``python -m models.training.experiments nope``) is read and drawn when it exists.
"""

from __future__ import annotations

import copy
import itertools
import math

import sympy as sp

from derive.engine import Derivation
from derive.losses import uniform_loss_steps
from numeric.check import Bound, CheckResult
from proofs.kit import plotting, trained
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options
from proofs.kit.trained import DEFAULT_SAMPLES, MAX_SAMPLES, SAMPLES_WHY, validate  # noqa: F401

NUMBER = "13.6"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    "Without positional encoding an encoder pools dog bites man and man bites dog alike; "
    "a causal decoder sees order from its second layer on, and learns context without positions."
)
OPTIONS = trained.OPTIONS + [
    Option(
        "--trials",
        int,
        16,
        "random sequences, each with a random permutation, for the float64 demonstrations",
        lo=1,
        hi=10_000,
        why="time: 8 float64 models of width 32 read each trial, ~6 ms a trial on a busy CPU core (10,000: a minute)",
    )
]
WORDS = ("[PAD]", "dog", "bites", "man")  # ids 0..3; [PAD] = 0 as in models.encoder, never used here
SENTENCE, REVERSED = ("dog", "bites", "man"), ("man", "bites", "dog")
VOCAB, TOKENS = 16, 12  # random trials: 12 distinct tokens of ids 1..15
SIZE = dict(n_head=4, n_embd=32, block_size=16, vocab_size=VOCAB, dropout=0.0)
LAYERS = (1, 2, 3)  # causal decoders measured (the claim uses 1 and 2; 3 is drawn)
TOL = 1e-12  # float64: outputs of O(1) that differ only in the order of a sum (eps 2.2e-16)


# -- derivation ----------------------------------------------------------------------------------


def _causal_layer(xs: list) -> list:
    """The toy causal layer: one head, $d = 1$, $q = k = v = x$, a residual and nothing else."""
    out = []
    for i, xi in enumerate(xs):
        w = [sp.exp(xi * xj) for xj in xs[: i + 1]]  # position i sees positions 0..i
        out.append(xi + sum(wj * xj for wj, xj in zip(w, xs[: i + 1])) / sum(w))
    return out


def derivation() -> Derivation:
    """Pooling ignores permutations; added positions break the symmetry; a causal toy sees order from layer 2."""
    H, X, E = (sp.Matrix(3, 2, lambda i, j, c=c: sp.Symbol(f"{c}_{i + 1}{j + 1}", real=True)) for c in "HXE")
    perms = [sp.eye(3)[list(p), :] for p in itertools.permutations(range(3))]  # row i of P is e_p(i)
    der = Derivation(
        "Exercise 13.6: what positional encoding does, and what a causal mask gives without it",
        assumptions=[
            r"$P$ runs over the six $3 \times 3$ permutation matrices; $H$, $X$, $E$ are $3 \times 2$ (3 tokens, "
            r"2 features): an encoder's outputs, token embeddings and a position table",
            r"mean pooling: $\mathrm{pool}(H) = \frac{1}{3} u H$, the mean of the rows ($u = (1, 1, 1)$)",
            r"causal toy: one head, $d = 1$, $q = k = v = x$, with a residual: "
            r"$h_i = x_i + \sum_{j \le i} e^{x_i x_j} x_j / \sum_{j \le i} e^{x_i x_j}$",
        ],
    )
    ones = sp.ones(1, 3)
    der.eq(
        sp.Symbol("u P, all six P"),
        sp.ones(6, 3),
        r"each column of a permutation matrix holds one 1: $u P = u$",
        "exact",
        computed=sp.Matrix.vstack(*[ones * P for P in perms]),
    )
    der.eq(
        sp.Symbol("pool(P H), all six P"),
        sp.Matrix.vstack(*[ones * H / 3] * 6),
        r"so mean pooling forgets the order of the rows: $\mathrm{pool}(P H) = \mathrm{pool}(H)$",
        "expand",
        computed=sp.Matrix.vstack(*[ones * P * H / 3 for P in perms]),
    )
    lemma = der.lemma(
        "Lemma 13.2",
        r"blocks without positional encoding and without a mask are permutation equivariant, "
        r"$f(P X) = P f(X)$ (exercise 13.2)",
    )
    der.eq(
        sp.Symbol("pool(f(P X)), all six P"),
        sp.Matrix.vstack(*[ones * H / 3] * 6),
        r"with $H = f(X)$ and $f(P X) = P H$: dog bites man and man bites dog pool alike",
        "expand",
        computed=sp.Matrix.vstack(*[ones * (P * H) / 3 for P in perms]),
        lemma=lemma,
    )
    swap = perms[-1]  # reverses the rows: dog bites man -> man bites dog
    der.eq(
        sp.Symbol("(P X + E) - P (X + E)"),
        (sp.eye(3) - swap) * E,
        r"with positions added the words move but the positions stay: the input is not $P$ times the old one",
        "expand",
        computed=(swap * X + E) - swap * (X + E),
    )
    x1, x2, x3 = sp.symbols("x_1 x_2 x_3", real=True)
    last = _causal_layer([x1, x2, x3])[2]
    der.eq(
        sp.Symbol("h_3(x_1, x_2, x_3) - h_3(x_2, x_1, x_3)"),
        0,
        "one causal layer: the last position attends over a set, so swapping the earlier tokens changes nothing",
        "simplify",
        computed=last - _causal_layer([x2, x1, x3])[2],
    )
    der.eq(
        sp.Symbol("h_1(x_1, x_2, x_3) - h_1(x_2, x_1, x_3)"),
        2 * (x1 - x2),
        r"but the first position sees only itself, $h_1 = 2 x_1$: the swap changes it whenever $x_1 \ne x_2$",
        "simplify",
        computed=_causal_layer([x1, x2, x3])[0] - _causal_layer([x2, x1, x3])[0],
    )
    a, b = (_causal_layer(_causal_layer([sp.Integer(v) for v in xs]))[2] for xs in ((1, -1, 0), (-1, 1, 0)))
    gap = 4 / (3 * (1 + sp.E**2))
    der.eq(
        sp.Symbol("g_3(1, -1, 0) - g_3(-1, 1, 0)"),
        gap,
        r"so a second layer, which reads $h_1, h_2, h_3$, sees the order: its last output $g_3$ at $x = (1, -1, 0)$ "
        r"against $(-1, 1, 0)$ (there $h_3 = 0$, so it averages $h_1, h_2, h_3$)",
        "cancel",
        computed=a - b,
    )
    der.holds(gap, ">", 0, "is positive: the two orders give different outputs")
    uniform_loss_steps(der, 65)
    return der


# -- numerics ------------------------------------------------------------------------------------


def _randomise(model, gen) -> None:
    """Every weight matrix drawn N(0, 1/columns), so attention is far from uniform (GPT-2's N(0, 0.02^2)
    makes it nearly uniform and every difference small); biases 0 and norm gains 1 as initialised."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) / math.sqrt(p.shape[1]))


def _sequences(trials: int, gen, dev):
    """``trials`` rows of ``TOKENS`` distinct ids in 1..VOCAB-1 (trials, TOKENS) and a permutation of each row's
    first ``TOKENS - 1`` positions that is not the identity (trials, TOKENS - 1)."""
    import torch

    ids = torch.stack([torch.randperm(VOCAB - 1, generator=gen, device=dev)[:TOKENS] + 1 for _ in range(trials)])
    perm = torch.stack([torch.randperm(TOKENS - 1, generator=gen, device=dev) for _ in range(trials)])
    same = (perm == torch.arange(TOKENS - 1, device=dev)).all(1)
    perm[same] = perm[same].roll(1, dims=1)  # an identity shuffle would show nothing
    return ids, perm


def _gap(a, b):
    """Per trial, max |a - b| over every other axis: (trials,)."""
    return (a - b).abs().flatten(1).amax(1)


def encoder_findings(trials: int, gen, dev) -> tuple[list, list, dict]:
    """The one encoder (``models.encoder``) in float64 with random weights, with its position table and with it
    zeroed: f(P x) against P f(x) over ``trials`` random sequences, and the pooled vectors of the two sentences."""
    import torch

    from models.encoder import Encoder
    from models.gpt import GPTConfig

    enc = Encoder(GPTConfig(**SIZE, n_layer=2)).to(device=dev, dtype=torch.float64).eval()
    _randomise(enc, gen)
    nope = copy.deepcopy(enc)
    with torch.no_grad():
        nope.wpe.weight.zero_()  # no positional encoding: the same encoder, nothing added to the tokens
    ids, perm = _sequences(trials, gen, dev)
    perm = torch.cat([perm, torch.full_like(perm[:, :1], TOKENS - 1)], 1)  # (trials, TOKENS): all positions
    moved = ids.gather(1, perm)
    sentences = torch.tensor([[WORDS.index(w) for w in s] for s in (SENTENCE, REVERSED)], device=dev)  # (2, 3)
    gaps, pooled = {}, {}
    with torch.no_grad():
        for name, model in (("none", nope), ("learned", enc)):
            f, fp = model.features(ids), model.features(moved)  # (trials, T, C)
            gaps[name] = _gap(fp, f.gather(1, perm[..., None].expand_as(f)))
            pooled[name] = model.features(sentences).mean(1)  # (2, C): mean pooling, no padding
    n, diff = f"max over {trials} trials", {k: float((v[0] - v[1]).abs().max()) for k, v in pooled.items()}
    claims = [
        Bound.of(f"no positions: Encoder f(P x) = P f(x) ({n})", float(gaps["none"].max()), 0.0, TOL),
        Bound.of("no positions: pool(dog bites man) = pool(man bites dog), max |diff|", diff["none"], 0.0, TOL),
    ]
    controls = [
        Bound.of(
            f"learned positions: Encoder f(P x) = P f(x) (smallest over {trials} trials)",
            float(gaps["learned"].min()),
            0.0,
            TOL,
        ),
        Bound.of("learned positions: pool(dog bites man) = pool(man bites dog), max |diff|", diff["learned"], 0.0, TOL),
    ]
    series = {"pooled": {k: v.cpu() for k, v in pooled.items()}, "encoder_gaps": {k: v.cpu() for k, v in gaps.items()}}
    return claims, controls, series


def decoder_findings(trials: int, gen, dev) -> tuple[list, list, dict]:
    """``models.gpt.GPT`` in float64 with random weights, no positions or learned ones, 1 to 3 layers: the change
    of the last position's logits when the earlier tokens of ``trials`` random sequences are shuffled."""
    import torch

    from models.gpt import GPT, GPTConfig

    ids, perm = _sequences(trials, gen, dev)
    shuffled = torch.cat([ids[:, :-1].gather(1, perm), ids[:, -1:]], 1)  # the last token stays where it is
    change = {}
    with torch.no_grad():
        for pos, layers in itertools.product(("none", "learned"), LAYERS):
            gpt = GPT(GPTConfig(**SIZE, n_layer=layers, pos=pos)).to(device=dev, dtype=torch.float64).eval()
            _randomise(gpt, gen)
            change[pos, layers] = _gap(gpt(shuffled)[0][:, -1], gpt(ids)[0][:, -1])  # (trials,)
    n = f"{trials} trials"
    claims = [
        Bound.of(
            f"no positions, 1 causal layer: last output unchanged by shuffling the earlier tokens (max over {n})",
            float(change["none", 1].max()),
            0.0,
            TOL,
        )
    ]
    controls = [
        Bound.of(
            f"no positions, 2 causal layers: last output unchanged (smallest over {n})",
            float(change["none", 2].min()),
            0.0,
            TOL,
        ),
        Bound.of(
            f"learned positions, 1 causal layer: last output unchanged (smallest over {n})",
            float(change["learned", 1].min()),
            0.0,
            TOL,
        ),
    ]
    return claims, controls, {"decoder_change": {k: v.cpu() for k, v in change.items()}}


@with_options
def check(o) -> CheckResult:
    """The float64 demonstrations (the encoder, then causal decoders of 1 to 3 layers), then the small training
    run of the GPT with learned positions and with none."""
    from models.utils.device import generator, one_thread, pick_device

    res = trained.check_variants(o, "nope", f"Exercise {NUMBER}: learned positions vs none (NoPE)")
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    for findings in (encoder_findings, decoder_findings):
        with one_thread():  # models of width 32: OpenMP threads only contend
            claims, controls, series = findings(o.trials, gen, dev)
        res.claims += claims
        res.controls += controls
        res.series |= series
    change = res.series["decoder_change"]
    res.notes += [
        f"demonstrations: float64 on {dev.type}, random weights N(0, 1/fan_in), width {SIZE['n_embd']}, "
        f"{SIZE['n_head']} heads, {TOKENS} distinct tokens of {VOCAB - 1} per trial, {o.trials} trials; the encoder "
        f"is models.encoder.Encoder (2 layers) with its learned position table, and the same encoder with the table "
        f"zeroed; tolerance {TOL:g} (float64 sums in another order), controls must exceed it",
        "change of the last logits when the earlier tokens are shuffled, median over trials: "
        + ", ".join(
            f"{pos} {layers} layer{'s' * (layers > 1)} {float(v.median()):.3g}" for (pos, layers), v in change.items()
        ),
    ]
    return res


def figure(res: CheckResult):
    """Left: the encoder's pooled vectors of dog bites man against man bites dog; middle: the change of a causal
    decoder's last output when the earlier tokens are shuffled, by depth; right: the training runs."""
    from models.training.experiments import draw_curves

    saved = res.series.get("saved")
    fig, axes = plotting.subplots(4 if saved else 3, width=21 if saved else 16, height=4.4)
    a, b, c = axes[:3]
    for (name, v), mark in zip(res.series["pooled"].items(), ("o", "x")):
        a.scatter(v[0].numpy(), v[1].numpy(), s=16, marker=mark, label=f"positions: {name}")
    lim = float(max(v.abs().max() for v in res.series["pooled"].values()))
    a.plot([-lim, lim], [-lim, lim], "k--", lw=0.7, label="equal")
    a.set(xlabel="pool(dog bites man), per feature", ylabel="pool(man bites dog), per feature")
    a.set_title("bidirectional encoder, float64", fontsize=10)
    a.legend(fontsize=7)
    floor = 1e-18  # an exact zero drawn at the bottom of the log axis
    for (pos, layers), v in res.series["decoder_change"].items():
        x = layers + (0.12 if pos == "learned" else -0.12)
        a_ = b.scatter([x] * len(v), v.clamp_min(floor).numpy(), s=12, color=f"C{int(pos == 'learned')}", alpha=0.7)
        if layers == LAYERS[0]:
            a_.set_label(f"positions: {pos}")
    b.axhline(TOL, color="k", lw=0.7, ls=":", label=f"tolerance {TOL:g}")
    b.set(yscale="log", xticks=LAYERS, xlabel="causal layers", ylabel="max |change| of the last logits")
    b.set_title(f"GPT: earlier tokens shuffled ({len(v)} trials)", fontsize=10)
    b.legend(fontsize=7)
    draw_curves(c, res.series["runs"], f"small run ({res.samples} eval batches, {res.device})")
    c.axhline(res.series["log_V"], color="k", lw=0.6, ls=":", label="$\\log V$ (uniform guess)")
    c.axhline(res.series["unigram"], color="k", lw=0.6, ls="--", label="character frequencies only")
    c.legend(fontsize=7)
    c.title.set_fontsize(10)
    if saved:
        draw_curves(axes[3], saved["curves"], f"saved: {saved['preset']} preset, {len(saved['seeds'])} seeds")
        axes[3].title.set_fontsize(10)
        axes[3].legend(fontsize=7)
    fig.suptitle(f"Exercise {NUMBER}: positional encoding, and a causal decoder without it")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

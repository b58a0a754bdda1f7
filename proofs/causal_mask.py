r"""Exercise 13.5: causal masking lets a decoder train on every position of a sequence in one forward pass.

The mask sets the attention score of query $t$ on key $s > t$ to $-\infty$, so its softmax weight is
exactly 0: position $t$ reads only $x_1, \dots, x_t$, in every layer, so the whole stack's output at
$t$ is a function of the prefix alone. One pass over $n$ tokens therefore computes the same $n$
outputs as $n$ separate passes over the prefixes (or $n$ incremental passes with a KV cache, as
generation runs them), and the training loss of that one pass, the mean of $n$ next-token
cross-entropies, is the mean of the $n$ losses that autoregressive inference would incur. Inference
must go one token at a time only because it does not know $x_{t+1}$ before sampling it; in training
every token is known (teacher forcing), so all $n$ predictions are made, and their gradients taken,
at once. Without the mask the output at $t$ can read $x_{t+1}$, the very token it is asked to predict.

The derivation proves, for $n = 3$ tokens and a two-layer stack of symbolic attention, residual and
position-wise layers, that the masked softmax weights above the diagonal are exactly 0, that the
output at $t$ does not depend on later tokens (its derivatives are 0), that it equals the last
output of a pass over the prefix, and hence that the mean loss of one pass equals the mean of the
prefix losses (any $n$ and depth follow by the same argument, layer by layer, stated in words above; the
check measures the real GPT). It sums the FLOPs of the three ways to get the $n$ outputs: one pass,
$n(2N + 2dV) + 4Ln^2d$ (the counter charges the whole $n \times n$ score matrix); $n$ KV-cache
steps, $n(2N + 2dV) + 2Ldn(n+1)$, about the same; $n$ prefix passes without a cache, about
$(n+1)/2$ times more. What one pass saves over the KV cache is not FLOPs but sequential steps: $n$
positions in one batch of matrix products instead of $n$ dependent passes one after the other (on one
CPU thread, where nothing runs in parallel, the two take comparable wall time: the table shows it).

The check trains the project's GPT (``models.gpt``, small) twice on a synthetic Markov chain (each
of $V$ tokens has $k$ equally likely successors, so no causal predictor can average below
$H = \log k$ nats), with the mask and without it (``attn.causal = False`` in every block: same
initial weights, same batches). In float64 the masked model's one pass equals its $n$ KV-cache steps
and its $n$ prefix passes to $10^{-12}$, and its loss equals the mean of the $n$ prefix losses; FLOPs
(``FlopCounterMode``) match the three formulas exactly, and wall times are reported. The negative
control: the unmasked model drives its training loss far below $H$ by reading the next token, and
then, asked to predict from prefixes as generation must, does much worse than the masked model, and
its samples take transitions the chain never takes. The same comparisons reject one pass equal to
$n$ passes without the mask, KV-cache decoding costing $n$ passes, and the unmasked model's
training loss carrying over to generation.
"""

from __future__ import annotations

import math

import sympy as sp

from derive.engine import Derivation
from derive.losses import uniform_cross_entropy, uniform_loss_steps
from numeric.check import Bound, CheckResult
from numeric.stats import Estimate, compare, one_sided
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.5"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    "With a causal mask one forward pass gives the outputs and the loss of $n$ autoregressive steps; "
    "without it the model reads the next token."
)
DEFAULT_SAMPLES = 64  # evaluation sequences (fresh from the chain): losses, generations, exactness
MAX_SAMPLES = 4096
MIN_SAMPLES = 8
MIN_SAMPLES_WHY = "standard errors over sequences need at least 8 of them"
SAMPLES_WHY = "evaluation sequences: n prefix passes and n generation steps of a float64 batch of them"
VOCAB, SUCCESSORS = 16, 4  # the Markov chain: V tokens, each followed by one of k successors
LAYERS, WIDTH, HEADS = 2, 32, 4  # the small GPT (bias-free, attention written out: every matmul is counted)
BATCH, LR = 16, 3e-2  # training batch (sequences) and peak learning rate
RATE = 1e-9  # false-alarm rate of each z-test
TOL = 1e-12  # float64 agreement of logits and losses of O(10)
REL = 0.25  # a cost control must not even agree within 25 %
# Measured on 2 busy CPU cores (load ~8, one thread): a training step takes ~9 ms + 0.8 ms per token of context
# (n = 8: 11 ms; n = 128: 110 ms); evaluation runs 8 sets of n prefix passes over the samples in float64 (timing,
# the unmasked comparison, each model's losses and generations) at ~1.4e9 FLOP/s; 8 bytes per float64 score, kept
# in ~3 copies per head. cost() turns these into an estimate, refused beyond MAX_SECONDS or MAX_BYTES.
MAX_SECONDS, MAX_BYTES = 600, 4 * 10**9
OPTIONS = [
    Option(
        "--steps",
        int,
        150,
        f"training steps of each model (masked and unmasked), batch {BATCH}",
        lo=10,
        hi=20_000,
        why="time: about 11 ms a step at n = 8, two models, on 2 busy CPU cores",
    ),
    Option(
        "--context",
        int,
        8,
        "sequence length n of training, the exactness and the FLOP counts",
        lo=2,
        hi=128,
        why="time: 8 sets of n prefix passes, ~n^2 S (12 L d^2 + 2 L n d) FLOPs; 128 at 64 samples: ~5 min",
    ),
]


def cost(o) -> tuple[float, float, float]:
    """(training seconds, evaluation seconds, peak bytes) of the check for settings ``o`` on 2 busy CPU cores,
    from the rates measured above."""
    n, s, L, d = o.context, o.samples, LAYERS, WIDTH
    train = 2 * o.steps * (0.009 + 0.0008 * n)
    per_row = 24 * L * d * d + 2 * d * VOCAB + 4 * L * d * n  # FLOPs of one token row through the GPT, at most
    evaluate = 1.0 + 8 * s * n * (n + 1) / 2 * per_row / 1.4e9
    nbytes = 8 * 3 * HEADS * s * n * n + 8 * 30 * s * n * d
    return train, evaluate, nbytes


def validate(o) -> None:
    """The training settings are valid (the seed's range) and the check's estimated time and memory
    (:func:`cost`) stay within MAX_SECONDS and MAX_BYTES."""
    train_config(o)
    train, evaluate, nbytes = cost(o)
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"samples: {o.samples:,} sequences of {o.context} tokens would hold ~{nbytes / 1e9:.1f} GB of float64 "
            f"scores and activations; at most {MAX_BYTES / 1e9:.0f} GB"
        )
    if train + evaluate > MAX_SECONDS:
        name = "steps" if train > evaluate else "samples"
        raise ValueError(
            f"{name}: {o.steps:,} steps and {o.samples:,} samples at context {o.context} would take "
            f"~{train + evaluate:,.0f} s on 2 busy CPU cores (training ~{train:,.0f} s, evaluation "
            f"~{evaluate:,.0f} s); at most {MAX_SECONDS} s"
        )


# -- the derivation ----------------------------------------------------------------------------

T3 = 3  # tokens of the symbolic example


def attention_weights(scores: sp.Matrix, causal: bool = True) -> sp.Matrix:
    """Row-wise softmax of ``scores`` (n x n); with ``causal`` the mask first sets the scores above the diagonal
    (query i, key j > i) to $-\\infty$, whose exponential sympy evaluates to exactly 0."""
    n = scores.shape[0]
    e = sp.Matrix(n, n, lambda i, j: sp.exp(scores[i, j] if j <= i or not causal else -sp.oo))
    return sp.Matrix(n, n, lambda i, j: e[i, j] / sum(e[i, :]))


def attention_layer(x: list, w: tuple, causal: bool = True, mlp: bool = True) -> list:
    """One symbolic layer on scalar tokens ``x``: attention with weights ``w = (q, k, v)`` (masked or not),
    a residual, then (with ``mlp``) a position-wise function ``f`` with its residual."""
    q, k, v = w
    n = len(x)
    s = sp.Matrix(n, n, lambda i, j: q * x[i] * k * x[j])
    a = attention_weights(s, causal)
    h = [x[i] + sum(a[i, j] * v * x[j] for j in range(n)) for i in range(n)]
    f = sp.Function("f")
    return [hi + f(hi) for hi in h] if mlp else h


def stack(x: list, causal: bool = True) -> list:
    """Two symbolic layers (different weights) on the scalar tokens ``x``."""
    w1 = sp.symbols("q_1 k_1 v_1", real=True)
    w2 = sp.symbols("q_2 k_2 v_2", real=True)
    return attention_layer(attention_layer(x, w1, causal), w2, causal)


def derivation() -> Derivation:
    """The mask's zeros, causality of a two-layer stack, prefix = full pass, the loss identity, FLOPs, the floor."""
    dx = Derivation(
        "Exercise 13.5: causal masking and training in one pass",
        assumptions=[
            r"$n = 3$ scalar tokens $x_1, x_2, x_3$; two layers, each attention (weights $q_l, k_l, v_l$, scores "
            r"$q_l x_i k_l x_j$) plus a residual, then a position-wise $f$ plus a residual",
            r"the causal mask adds $-\infty$ to the score of query $t$ on key $s > t$; $e^{-\infty} = 0$",
            r"output logits $z_t = (u_1 y_t, u_2 y_t)$ over $V = 2$ tokens; cross-entropy "
            r"$\ell_t = -\log \mathrm{softmax}(z_t)_{c_t}$ with target $c_t$",
            r"FLOPs: a multiply-add is 2; $N$ block weights, width $d$, $L$ layers, vocabulary $V$ (Exercise 13.29)",
        ],
    )
    _mask_steps(dx)
    _loss_steps(dx)
    _flop_steps(dx)
    _floor_steps(dx)
    return dx


def _mask_steps(dx: Derivation) -> None:
    """Masked weights are 0 above the diagonal; the stack's output at t ignores later tokens and equals the
    last output of a pass over the prefix."""
    s = sp.Matrix(T3, T3, lambda i, j: sp.Symbol(f"s_{i + 1}{j + 1}", real=True))
    a = attention_weights(s)
    dx.eq(
        sp.Matrix([[sp.Symbol("A_12"), sp.Symbol("A_13"), sp.Symbol("A_23")]]),
        sp.zeros(1, 3),
        r"masked softmax: the weights of later keys are $e^{-\infty} / \sum = 0$ exactly",
        "exact",
        computed=sp.Matrix([[a[0, 1], a[0, 2], a[1, 2]]]),
    )
    dx.eq(
        sp.Matrix([[sp.Symbol(f"sum_s A_{t + 1}s") for t in range(T3)]]),
        sp.ones(1, 3),
        "each row still sums to 1 over the keys it may see",
        "cancel",
        computed=sp.Matrix([[sum(a[i, :]) for i in range(T3)]]),
    )
    x = list(sp.symbols("x_1:4", real=True))
    y = stack(x)
    dx.eq(
        sp.Matrix([[sp.Symbol("dy_1/dx_2"), sp.Symbol("dy_1/dx_3"), sp.Symbol("dy_2/dx_3")]]),
        sp.zeros(1, 3),
        "two masked layers: the output at $t$ has derivative 0 in every later token",
        "exact",
        computed=sp.Matrix([[sp.diff(y[0], x[1]), sp.diff(y[0], x[2]), sp.diff(y[1], x[2])]]),
    )
    prefix = sp.Matrix([stack(x[: t + 1])[t] for t in range(T3)]).T
    dx.eq(
        sp.Matrix([[sp.Symbol(f"y_{t + 1}(x_1..x_{t + 1}) - y_{t + 1}(x_1..x_3)") for t in range(T3)]]),
        sp.zeros(1, 3),
        r"the last output of a pass over $x_1, \dots, x_t$ is the one pass's output at $t$: $n$ prefix passes "
        "(or KV-cache steps) give the one pass's outputs",
        "exact",
        computed=prefix - sp.Matrix([y]),
    )
    free = attention_layer(x, sp.symbols("q_1 k_1 v_1", real=True), causal=False, mlp=False)
    slope = sp.diff(free[0], x[1]).subs(_NO_MASK_POINT)
    dx.eq(
        sp.Symbol("dy_1/dx_2 (no mask)"),
        sp.Rational(1, 3),
        "without the mask one attention layer's output at 1 depends on $x_2$: at every token and weight 1 its "
        "derivative is $1/3$ ...",
        "simplify",
        computed=slope,
    )
    dx.holds(slope, ">", 0, "... which is not 0: the unmasked model can read later tokens")


_NO_MASK_POINT = {sp.Symbol(n, real=True): 1 for n in ("x_1", "x_2", "x_3", "q_1", "k_1", "v_1")}


def _loss_steps(dx: Derivation) -> None:
    """The one pass's mean loss equals the mean of the prefix passes' losses."""
    x = list(sp.symbols("x_1:4", real=True))
    u = sp.symbols("u_1 u_2", real=True)
    targets = (0, 1, 1)  # c_1, c_2, c_3

    def ce(y, c):  # cross-entropy of logits (u_1 y, u_2 y) against class c
        z = [u[0] * y, u[1] * y]
        return -(z[c] - sp.log(sp.exp(z[0]) + sp.exp(z[1])))

    full = stack(x)
    one_pass = sum(ce(full[t], targets[t]) for t in range(T3)) / T3
    prefixes = [ce(stack(x[: t + 1])[t], targets[t]) for t in range(T3)]
    dx.eq(
        sp.Symbol("L_one pass - mean_t l_t(prefix)"),
        0,
        r"the training loss of one pass, $\frac{1}{n}\sum_t \ell_t$, is the mean of the $n$ next-token losses of "
        "the prefix passes (targets $c = (1, 2, 2)$)",
        "exact",
        computed=one_pass - sum(prefixes) / T3,
    )


def _flop_steps(dx: Derivation) -> None:
    """FLOPs of one pass, of n KV-cache steps and of n prefix passes, and their ratios for short contexts."""
    n, t, L, d, N, V = sp.symbols("n t L d N V", positive=True, integer=True)
    per_token = 2 * N + 2 * d * V
    one = n * per_token + 4 * L * n**2 * d
    dx.define(
        sp.Symbol("F_pass(n)"),
        one,
        r"one pass (Exercise 13.29): $2N + 2dV$ per token, $4Ld$ per query and key over all $n \times n$ scores",
    )
    kv = n * per_token + 2 * L * d * n * (n + 1)
    dx.eq(
        sp.Sum(sp.Symbol("F_step(t)"), (t, 1, n)),
        kv,
        r"$n$ KV-cache steps: step $t$ costs $2N + 2dV + 4Ldt$ (one query, $t$ keys)",
        "expand",
        computed=sp.summation(per_token + 4 * L * d * t, (t, 1, n)),
    )
    dx.eq(
        sp.Symbol("F_pass(n) - F_KV(n)"),
        2 * L * d * n * (n - 1),
        "the one pass is charged for the masked half of its scores as well",
        "expand",
        computed=one - kv,
    )
    prefix = per_token * n * (n + 1) / 2 + sp.Rational(2, 3) * L * d * n * (n + 1) * (2 * n + 1)
    dx.eq(
        sp.Sum(sp.Symbol("F_pass(t)"), (t, 1, n)),
        prefix,
        "$n$ prefix passes without a cache",
        "expand",
        computed=sp.summation(one.subs(n, t), (t, 1, n)),
    )
    dx.limit(kv / one, N, sp.oo, 1, r"as $N$ dominates (short contexts) the KV cache costs one pass, not $n$")
    dx.limit(prefix / one, N, sp.oo, (n + 1) / 2, "and the prefix passes cost $(n+1)/2$ passes")


def _floor_steps(dx: Derivation) -> None:
    """The chain's next token is uniform over k successors: no causal predictor averages below log k."""
    k, j = sp.symbols("k j", positive=True, integer=True)
    dx.eq(
        sp.Symbol("H"),
        sp.log(k),
        r"the next token is uniform over its $k$ successors: conditional entropy $\log k$, the least expected "
        "cross-entropy of any predictor that sees only the past (Gibbs)",
        "simplify",
        computed=-sp.summation(1 / k * sp.log(1 / k), (j, 1, k)),
    )
    dx.eq(
        sp.Symbol(f"H(k={SUCCESSORS})"),
        uniform_cross_entropy(SUCCESSORS),
        f"at $k = {SUCCESSORS}$: {math.log(SUCCESSORS):.4f} nats",
        "exact",
        computed=sp.log(k).subs(k, SUCCESSORS),
    )
    uniform_loss_steps(dx, VOCAB)


# -- the numerics --------------------------------------------------------------------------------


class Chain:
    """The synthetic language: ``VOCAB`` tokens, each followed by one of ``SUCCESSORS`` distinct successors
    drawn once from ``seed``, all equally likely; the first token is uniform. A batch source for
    :class:`models.training.loop.Trainer`: blocks (x, y) of ``context`` tokens, y = x shifted by one."""

    eval_splits = ("val",)

    def __init__(self, context: int, seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.context = context
        self.succ = torch.stack([torch.randperm(VOCAB, generator=g)[:SUCCESSORS] for _ in range(VOCAB)])  # (V, k)
        self.legal = torch.zeros(VOCAB, VOCAB, dtype=torch.bool)  # legal[a, b]: b may follow a
        self.legal[torch.arange(VOCAB)[:, None], self.succ] = True

    def to(self, device):
        """The source itself: batches are drawn on the CPU and moved to ``device``."""
        self.device = device
        return self

    def sequences(self, count: int, gen):
        """``count`` sequences of context + 1 tokens, int64 (count, n + 1), on the CPU."""
        import torch

        x = torch.empty(count, self.context + 1, dtype=torch.long)
        x[:, 0] = torch.randint(VOCAB, (count,), generator=gen)
        pick = torch.randint(SUCCESSORS, (count, self.context), generator=gen)
        for t in range(self.context):
            x[:, t + 1] = self.succ[x[:, t], pick[:, t]]
        return x

    def batch(self, split: str, batch_size: int, gen):
        """``batch_size`` fresh blocks (x, y), (B, n) each; every split is the same chain."""
        if split not in ("train", "val"):
            raise ValueError(f"split: unknown {split!r}")
        s = self.sequences(batch_size, gen).to(getattr(self, "device", "cpu"))
        return s[:, :-1], s[:, 1:]

    def illegal(self, seq):
        """Per sequence, the fraction of its transitions the chain never takes; float64 (B,)."""
        seq = seq.cpu()
        return (~self.legal[seq[:, :-1], seq[:, 1:]]).double().mean(1)


def _with_mask(model, causal: bool):
    """Switch every block's mask on (``causal``) or off; returns the model."""
    for b in model.h:
        b.attn.causal = causal
    return model


def _loss(model, batch):
    x, y = batch
    return model(x, y)[1]


def train_config(o):
    """The training settings of both models (AdamW, warmup and cosine decay, float32, nothing written); ValueError
    naming the setting (the seed's range, say)."""
    from models.training.loop import TrainConfig

    return TrainConfig(
        batch_size=BATCH,
        max_iters=o.steps,
        lr=LR,
        min_lr=LR / 10,
        warmup_iters=max(1, o.steps // 10),
        lr_decay_iters=o.steps,
        eval_interval=o.steps,
        eval_iters=1,
        eval_train=False,
        log_interval=max(1, o.steps // 40),
        seed=o.seed,
        device=o.device,
        dtype="float32",
        progress=False,
    )


def train(chain: Chain, o, causal: bool):
    """The small GPT trained ``o.steps`` steps on the chain, with the mask or without it (same seed: same initial
    weights and batches). Returns (model in float64 eval mode, logged (step, loss) pairs)."""
    from models.training.loop import Trainer
    from numeric.gpt_flops import counted_gpt

    def build():
        return _with_mask(counted_gpt(LAYERS, WIDTH, HEADS, o.context, VOCAB, "cpu"), causal)

    trainer = Trainer(build, chain, _loss, train_config(o))
    summary = trainer.fit()
    return trainer.model.double().eval(), summary["train_losses"]


def per_sequence_losses(logits, y):
    """Cross-entropy of ``logits`` (B, n, V) against ``y`` (B, n): per sequence, the mean over positions; (B,)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)


def prefix_logits(model, x):
    """Row t: the last logits of a pass over x[:, :t+1], without a cache; (B, n, V)."""
    import torch

    return torch.stack([model(x[:, : t + 1])[0][:, -1] for t in range(x.size(1))], 1)


def cache_logits(model, x):
    """Row t: the logits of KV-cache step t (one token, the cache holding positions < t); (B, n, V)."""
    import torch

    cache = model.new_cache(x.size(0), x.size(1))
    return torch.cat([model(x[:, t : t + 1], cache=cache)[0] for t in range(x.size(1))], 1)


def estimate(values) -> Estimate:
    """Mean of per-sequence ``values`` (a float64 tensor, at least 2) with its standard error over sequences. When
    every value is the same the mean is certain: the error is then the smallest positive float, not 0 (which the
    z-tests refuse)."""
    n = values.numel()
    return Estimate(float(values.mean()), max(float(values.std()) / math.sqrt(n), 5e-324), n)


def _maxabs(a, b) -> float:
    return float((a - b).abs().max())


def exactness_and_costs(model, x, y, dev) -> tuple[dict, list[dict]]:
    """The masked model's one pass against its n KV-cache steps and n prefix passes (logits, loss), timed on the
    whole batch; the same comparisons with the mask switched off; and each way's FLOPs (FlopCounterMode, one
    sequence) beside its formula."""
    import torch
    import torch.nn.functional as F

    from models.utils.timing import time_calls
    from numeric.gpt_flops import inference_flops, linear_weights

    n, L, d, V = x.size(1), LAYERS, WIDTH, VOCAB
    ways = {"one pass": lambda s: model(s)[0], "n KV-cache steps": lambda s: cache_logits(model, s)}
    ways["n prefix passes"] = lambda s: prefix_logits(model, s)
    per_token = 2 * linear_weights(model.h) + 2 * d * V
    formula = {
        "one pass": n * per_token + 4 * L * n * n * d,
        "n KV-cache steps": n * per_token + 2 * L * d * n * (n + 1),
        "n prefix passes": per_token * n * (n + 1) // 2 + 2 * L * d * n * (n + 1) * (2 * n + 1) // 3,
    }
    out, rows, logits = {}, [], {}
    with torch.no_grad():
        for name, fn in ways.items():
            t = time_calls(lambda fn=fn: fn(x), device=dev, repeats=3, warmup=0)
            logits[name] = t.result
            flops = inference_flops(lambda fn=fn: fn(x[:1]))
            row = {"computation": name, "passes": 1 if name == "one pass" else n, "FLOPs (1 sequence)": flops}
            rows.append(row | {"formula": formula[name], f"wall ms ({x.size(0)} seq.)": 1e3 * t.median})
        for r in rows:
            r["/ one pass"] = r["FLOPs (1 sequence)"] / rows[0]["FLOPs (1 sequence)"]
        full, pre = logits["one pass"], logits["n prefix passes"]
        out["masked |pass - KV|"] = _maxabs(full, logits["n KV-cache steps"])
        out["masked |pass - prefix|"] = _maxabs(full, pre)
        steps = [float(F.cross_entropy(pre[:, t], y[:, t])) for t in range(n)]
        out["masked |loss - mean prefix loss|"] = abs(float(model(x, y)[1]) - sum(steps) / n)
        _with_mask(model, False)
        full, pre = model(x)[0], prefix_logits(model, x)
        out["unmasked |pass - KV|"] = _maxabs(full, cache_logits(model, x))
        steps = [float(F.cross_entropy(pre[:, t], y[:, t])) for t in range(n)]
        out["unmasked |loss - mean prefix loss|"] = abs(float(model(x, y)[1]) - sum(steps) / n)
        _with_mask(model, True)
    return out, rows


def behaviour(models: dict, chain: Chain, x, y, seed: int) -> dict:
    """Per sequence (float64 (B,) tensors): each model's loss as trained (its own one pass), its loss from
    prefixes (as generation sees the sequence), and the illegal-transition rate of its samples."""
    import torch

    out = {}
    with torch.no_grad():
        for name, m in models.items():
            out[f"{name} train"] = per_sequence_losses(m(x)[0], y)
            out[f"{name} causal"] = per_sequence_losses(prefix_logits(m, x), y)
            gen = torch.Generator(device=x.device).manual_seed(seed + 1)
            sample = m.generate(x[:, :1], x.size(1) - 1, temperature=1.0, use_cache=False, generator=gen)
            out[f"{name} illegal"] = chain.illegal(sample)
    return out


@with_options
def check(o) -> CheckResult:
    """Train the small GPT with and without the mask on the chain; exactness, FLOPs and the negative control."""
    import torch

    from models.utils.device import describe, one_thread, pick_device

    dev = pick_device(o.device)
    chain = Chain(o.context, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    with one_thread():  # a width-32 GPT: OpenMP threads only contend on a busy CPU
        masked, log_masked = train(chain, o, causal=True)
        free, log_free = train(chain, o, causal=False)
        seqs = chain.sequences(o.samples, torch.Generator().manual_seed(o.seed + 2)).to(dev)
        x, y = seqs[:, :-1], seqs[:, 1:]
        ex, res.table = exactness_and_costs(masked, x, y, dev)
        beh = behaviour({"masked": masked, "unmasked": free}, chain, x, y, o.seed)
    n = o.context
    res.claims += [
        Bound.of(f"one masked pass = {n} KV-cache steps, max |logit diff|", ex["masked |pass - KV|"], 0, TOL),
        Bound.of(f"one masked pass = {n} prefix passes, max |logit diff|", ex["masked |pass - prefix|"], 0, TOL),
        Bound.of(
            f"loss of one masked pass = mean of the {n} prefix losses", ex["masked |loss - mean prefix loss|"], 0, TOL
        ),
    ]
    res.claims += [
        Bound.of(f"FLOPs of {r['computation']} = formula", r["FLOPs (1 sequence)"], r["formula"], 0) for r in res.table
    ]
    res.controls += [
        Bound.of(f"without the mask: one pass = {n} KV-cache steps", ex["unmasked |pass - KV|"], 0, TOL),
        Bound.of(
            f"without the mask: loss of one pass = mean of the {n} prefix losses",
            ex["unmasked |loss - mean prefix loss|"],
            0,
            TOL,
        ),
    ]
    one, kv, prefix = (r["FLOPs (1 sequence)"] for r in res.table)
    res.controls += [
        Bound.of(f"{n} KV-cache steps cost {n} passes (within {REL:.0%})", kv, n * one, REL * n * one),
        Bound.of(f"{n} prefix passes cost one pass (within {REL:.0%})", prefix, one, REL * one),
    ]
    _behaviour_findings(res, beh)
    res.series |= {"losses": {"masked": log_masked, "unmasked": log_free}, "behaviour": beh, "exact": ex}
    res.notes += [
        f"GPT: {LAYERS} layers, width {WIDTH}, {HEADS} heads, no biases, attention written out, learned positions; "
        f"trained {o.steps} AdamW steps (batch {BATCH}, peak lr {LR:g}, float32) at seed {o.seed} with the mask and "
        "without it (attn.causal = False in every block): the same initial weights and batches",
        f"chain: {VOCAB} tokens, each followed by one of {SUCCESSORS} (drawn from the seed), uniformly: floor "
        f"H = log {SUCCESSORS} = {math.log(SUCCESSORS):.4f} nats for a causal predictor, log V = {math.log(VOCAB):.4f}",
        f"evaluation: {o.samples} fresh sequences of {n} tokens, float64; losses are per-sequence means, z-tests over "
        f"sequences at false-alarm rate {RATE:g} each; generations: temperature 1 from each sequence's first token",
        "FLOPs: FlopCounterMode on one sequence (2 per multiply-add); wall times: median of 3 on the whole batch, "
        "reported, not judged (one pass runs its n positions together, the n steps one after another)",
    ]
    return res


def _behaviour_findings(res: CheckResult, beh: dict) -> None:
    """The z-tests of the training part: claims and controls."""
    h, log_v = math.log(SUCCESSORS), math.log(VOCAB)
    m_causal, u_train = estimate(beh["masked causal"]), estimate(beh["unmasked train"])
    worse = estimate(beh["unmasked causal"] - beh["masked causal"])
    gap = estimate(beh["unmasked causal"] - beh["unmasked train"])
    illegal = estimate(beh["unmasked illegal"] - beh["masked illegal"])
    res.claims += [
        one_sided(m_causal, "<", log_v, "masked model: loss (one pass = prefixes) < log V: it learned", RATE),
        one_sided(u_train, "<", h, "unmasked model: training loss < H: it reads the next token", RATE),
        one_sided(worse, ">", 0, "from prefixes, unmasked loss - masked loss > 0", RATE),
        one_sided(illegal, ">", 0, "illegal transitions in samples, unmasked - masked > 0", RATE),
    ]
    res.controls += [
        one_sided(estimate(beh["masked train"]), "<", h, "with the mask, the training loss also falls below H", RATE),
        compare(gap, 0, "unmasked model: its loss from prefixes - its training loss", RATE),
        compare(illegal, 0, "unmasked model samples as well as the masked one: illegal-rate difference", RATE),
    ]


def figure(res: CheckResult):
    """Left: training loss with and without the mask, against the floor $H = \\log k$; middle: each model's loss as
    trained and from prefixes, and its samples' illegal transitions; right: FLOPs and wall time of the three ways."""
    fig, (a, b, c) = plotting.subplots(3, width=16, height=4.6)
    h, log_v = math.log(SUCCESSORS), math.log(VOCAB)
    for name, pairs in res.series["losses"].items():
        a.plot(*zip(*pairs), label=f"{name} (as trained)")
    a.axhline(h, color="k", ls="--", lw=0.8, label=f"$H = \\log {SUCCESSORS}$ (causal floor)")
    a.axhline(log_v, color="k", ls=":", lw=0.8, label=f"$\\log V$, $V = {VOCAB}$")
    a.set(xlabel="training step", ylabel="cross-entropy (nats)", title="training loss", ylim=(0, None))
    a.legend(fontsize=8)
    beh = res.series["behaviour"]
    names = ("masked", "unmasked")
    for i, (kind, label) in enumerate((("train", "as trained (one pass)"), ("causal", "from prefixes (generation)"))):
        vals = [float(beh[f"{m} {kind}"].mean()) for m in names]
        errs = [float(beh[f"{m} {kind}"].std()) / math.sqrt(beh[f"{m} {kind}"].numel()) for m in names]
        b.bar([j + (i - 0.5) * 0.35 for j in range(2)], vals, 0.35, yerr=errs, label=label)
    b.axhline(h, color="k", ls="--", lw=0.8, label="$H$")
    ticks = [f"{m}\nillegal samples {float(beh[f'{m} illegal'].mean()):.1%}" for m in names]
    b.set_xticks(range(2), ticks)
    b.set(ylabel="cross-entropy (nats)", title=f"loss per token, {res.samples} fresh sequences (float64)")
    b.legend(fontsize=8)
    rows, n = res.table, res.table[1]["passes"]
    wall = next(k for k in rows[0] if k.startswith("wall"))
    x = range(len(rows))
    for off, key, label, colour in ((-0.2, "/ one pass", "FLOPs", "C0"), (0.2, wall, "wall time", "C2")):
        vals = [r[key] / rows[0][key] for r in rows]
        bars = c.bar([i + off for i in x], vals, 0.4, label=f"{label} / one pass", color=colour)
        c.bar_label(bars, fmt="%.2f", fontsize=7)
    c.set_xticks(list(x), [r["computation"].replace("n ", f"{n} ") for r in rows])
    c.set(ylabel="relative to one masked pass", title=f"cost of the $n = {n}$ outputs ({wall.split('(')[1][:-1]})")
    c.legend(fontsize=8)
    fig.suptitle(f"Exercise 13.5: causal masking ({res.device}, seed {res.seed})")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

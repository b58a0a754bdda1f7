"""Exercise 13.31: pre-norm and post-norm Transformers are different functions of the same weights.

A residual sublayer $f$ (attention or MLP) can be wrapped in two ways:

$$\\text{pre-norm: } y = x + f(\\mathrm{LN}(x)), \\qquad \\text{post-norm: } y = \\mathrm{LN}(x + f(x)).$$

One small example settles it. Take $d = 3$, LayerNorm without gain, bias or $\\epsilon$
($\\mathrm{LN}(z) = (z - \\bar z)/\\sigma(z)$), the linear sublayer $f(x) = Wx = (x_3, 0, 0)$ (it copies
feature 3 into feature 1) and $x = (1, 2, 6)$. Then $\\mathrm{LN}(x) = s\\,(-2, -1, 3)$ with
$s = \\sqrt{3/14}$, so pre-norm gives $x + W\\mathrm{LN}(x) = (1 + 3s, 2, 6)$, while $x + Wx = (7, 2, 6)$
and post-norm gives $s\\,(2, -3, 1)$: different outputs from the same weights, exactly. The
difference is structural, not a coincidence of the numbers: the post-norm output is a LayerNorm
output, so its features have mean 0 and mean square 1 for *every* input and sublayer (proved for a
symbolic $z \\in \\mathbb{R}^3$), whereas the pre-norm output keeps the residual stream $x$
unnormalised (its mean here is $3 + s$). With the sublayer switched off ($f = 0$) pre-norm is the
identity and post-norm is $\\mathrm{LN}(x) \\ne x$.

The check builds ``models.gpt.Block`` twice, with ``prenorm=True`` and ``False``, loads the same
seeded random weights into both (one state dict) and feeds both the same random inputs in float64.
Each module agrees with an independent closed-form float64 computation of its formula (the
comparison $\\max|\\Delta| \\le 10^{-10}$), so the comparison can see equality where there is
equality; the same comparison, even with the looser $10^{-3}$, rejects "pre-norm equals
post-norm", rejects "post-norm with zeroed sublayers is the identity", and rejects "the pre-norm
output is normalised", which it accepts for post-norm.
"""

from __future__ import annotations

import math
import sys

import sympy as sp
import torch

from derive.engine import Derivation
from models.gpt import Block, GPTConfig
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.cli import Option

NUMBER = "13.31"
CLAIM = "Pre-norm x + f(LN(x)) and post-norm LN(x + f(x)) give different outputs for the same weights."
DEFAULT_SAMPLES = 4  # random trials: fresh weights and inputs for each
# Per trial the check builds 7 float64 Blocks (12 d^2 weights each) and state dicts, and attention scores of
# 2 x 4 heads x T^2 float64 in several copies. Measured on 2 CPU cores (one trial): d 2,048, T 8: 13 s, 3.4 GB;
# d 32, T 2,048: 8.5 s, 0.84 GB; d 1,024, T 1,024: 21 s, 1.2 GB; defaults: ~0.35 s (9 ms when idle). So about
# 820 d^2 + 200 T^2 + 130 T d bytes and 0.35 + 3.1e-6 d^2 + 2e-6 T^2 + 1.4e-8 T d^2 seconds per trial.
MAX_D, MAX_T, MAX_BYTES, MAX_SECONDS = 2048, 4096, 1 << 32, 420
MAX_SAMPLES = 1000
SAMPLES_WHY = "the check's time grows linearly: 9 ms (idle) to 0.35 s (busy) per trial at the defaults on 2 CPU cores"
OPTIONS = [
    Option(
        "--d-model",
        int,
        32,
        "block width d (a multiple of 4, the number of heads)",
        lo=4,
        hi=MAX_D,
        why="7 float64 Blocks of 12 d^2 weights and their state dicts, ~820 bytes per d^2: 2,048 needs 3.4 GB",
    ),
    Option(
        "--tokens",
        int,
        8,
        "sequence length T of the random inputs",
        lo=1,
        hi=MAX_T,
        why="2 x 4 heads x T^2 float64 attention scores in copies, ~200 bytes per T^2: 4,096 needs 3.4 GB",
    ),
]
N_HEAD = 4
BATCH = 2
EQUAL_TOL = 1e-10  # float64: |module - closed form|; values are O(10) and eps is 2.2e-16
DIFF_TOL = 1e-3  # 'equal up to 1e-3': a much looser comparison that pre vs post must still fail

# the exact example
X_EX = sp.Matrix([[1, 2, 6]])
W_EX = sp.Matrix([[0, 0, 1], [0, 0, 0], [0, 0, 0]])  # f(x) = W x = (x_3, 0, 0): copy feature 3 into 1


def ln_exact(z: sp.Matrix) -> sp.Matrix:
    """LayerNorm of a row vector with no gain, no bias and eps = 0: (z - mean) / sqrt(mean square)."""
    c = z - sp.ones(*z.shape) * (sum(z) / len(z))
    return c / sp.sqrt(sum(e**2 for e in c) / len(z))


def mean(z: sp.Matrix):
    return sum(z) / len(z)


def mean_sq(z: sp.Matrix):
    return sum(e**2 for e in z) / len(z)


def example(x: sp.Matrix = X_EX, W: sp.Matrix = W_EX) -> dict:
    """The exact outputs of one linear sublayer f(x) = W x, pre- and post-norm (row vectors)."""
    f = lambda v: (W * v.T).T  # noqa: E731
    return {"x": x, "LN(x)": ln_exact(x), "pre": x + f(ln_exact(x)), "x+f(x)": x + f(x), "post": ln_exact(x + f(x))}


def derivation() -> Derivation:
    ex = example()
    s = sp.sqrt(sp.Rational(3, 14))
    Y = lambda name: sp.MatrixSymbol(name, 1, 3)  # noqa: E731
    dx = Derivation(
        "Exercise 13.31: pre-norm and post-norm are not equivalent",
        assumptions=[
            "LN(z) = (z - mean z) / sqrt(mean (z - mean z)^2): no gain, no bias, eps = 0; z not constant",
            "example: d = 3, x = (1, 2, 6), f(x) = W x = (x_3, 0, 0) (W has a single 1, in row 1, column 3)",
            "pre-norm y = x + f(LN(x)); post-norm y = LN(x + f(x)); the same W in both",
        ],
    )
    dx.eq(
        Y("LN(x)"),
        s * sp.Matrix([[-2, -1, 3]]),
        "mean 3, deviations (-2, -1, 3), mean square 14/3",
        computed=ex["LN(x)"],
    )
    dx.eq(Y("y_pre"), sp.Matrix([[1 + 3 * s, 2, 6]]), "pre-norm: x + W LN(x) = x + (LN(x)_3, 0, 0)", computed=ex["pre"])
    dx.eq(
        Y("x + Wx"),
        sp.Matrix([[7, 2, 6]]),
        "post-norm's residual sum x + (x_3, 0, 0)",
        strategy="exact",
        computed=ex["x+f(x)"],
    )
    dx.eq(
        Y("y_post"),
        s * sp.Matrix([[2, -3, 1]]),
        "post-norm: LN(7, 2, 6); mean 5, deviations (2, -3, 1), mean square 14/3",
        computed=ex["post"],
    )
    diff = ex["pre"] - ex["post"]
    dx.eq(Y("y_pre - y_post"), sp.Matrix([[1 + s, 2 + 3 * s, 6 - s]]), "the difference", computed=diff)
    i = sp.Symbol("i", positive=True, integer=True)
    yp, yq = sp.IndexedBase("y_pre"), sp.IndexedBase("y_post")
    dx.eq(
        sp.Sum((yp[i] - yq[i]) ** 2, (i, 1, 3)),
        sp.Rational(607, 14) + 2 * s,
        "its squared length",
        computed=sp.expand(sum(e**2 for e in diff)),
    )
    dx.holds(sp.Rational(607, 14) + 2 * s, ">", 0, "is positive: the same weights give different outputs")
    z = sp.Matrix([sp.symbols("z1:4", real=True)])
    dx.eq(
        sp.Function("mean")(sp.Symbol("LN(z)")),
        0,
        "any z: a LayerNorm output has mean 0 ...",
        strategy="cancel",
        computed=mean(ln_exact(z)),
    )
    dx.eq(
        sp.Function("mean")(sp.Symbol("LN(z)") ** 2),
        1,
        "... and mean square 1, so every post-norm output is normalised",
        strategy="cancel",
        computed=mean_sq(ln_exact(z)),
    )
    dx.eq(
        sp.Function("mean")(sp.Symbol("y_pre")),
        3 + s,
        "the pre-norm output is not: mean(x) + mean(W LN(x)) = 3 + s",
        computed=mean(ex["pre"]),
    )
    dx.eq(
        sp.Function("Var")(sp.Symbol("y_pre")),
        sp.Rational(107, 21) - 4 * s,
        "its variance",
        computed=mean_sq(ex["pre"]) - mean(ex["pre"]) ** 2,
    )
    dx.holds(sp.Rational(107, 21) - 4 * s, ">", 1, "is not 1: the pre-norm output is not normalised")
    zero = example(W=sp.zeros(3, 3))
    dx.eq(Y("y_pre|f=0"), X_EX, "with f = 0, pre-norm is the identity", strategy="exact", computed=zero["pre"])
    dx.eq(Y("y_post|f=0"), ex["LN(x)"], "while post-norm is LN(x) ...", computed=zero["post"])
    gap = sp.expand(sum(e**2 for e in zero["post"] - X_EX))
    dx.eq(
        sp.Sum((yq[i] - sp.IndexedBase("x")[i]) ** 2, (i, 1, 3)),
        44 - 2 * sp.sqrt(42),
        "... whose squared distance from x",
        computed=gap,
    )
    dx.holds(44 - 2 * sp.sqrt(42), ">", 0, "is positive: post-norm cannot pass x through unchanged")
    return dx


# -- numerics ------------------------------------------------------------------------------------


def _config(d_model: int, tokens: int, prenorm: bool) -> GPTConfig:
    return GPTConfig(
        block_size=tokens, vocab_size=1, n_layer=1, n_head=N_HEAD, n_embd=d_model, bias=True, prenorm=prenorm
    )


def random_state(block: Block, gen: torch.Generator) -> dict:
    """Seeded random weights for ``block``'s state dict: Linear weights N(0, 1/fan_in), Linear biases
    N(0, 0.1^2), norm gains 1 + N(0, 0.1^2) and norm biases N(0, 0.1^2)."""
    out = {}
    for k, v in block.state_dict().items():
        r = torch.randn(v.shape, generator=gen, device=v.device, dtype=v.dtype)
        if k.startswith("ln_"):
            out[k] = 1.0 + 0.1 * r if k.endswith("weight") else 0.1 * r
        else:
            out[k] = r / math.sqrt(v.shape[1]) if k.endswith("weight") else 0.1 * r
    return out


def pair(d_model: int, tokens: int, state: dict, dev) -> tuple[Block, Block]:
    """A pre-norm and a post-norm Block holding the same weights, float64, eval mode."""
    blocks = []
    for prenorm in (True, False):
        b = Block(_config(d_model, tokens, prenorm)).to(device=dev, dtype=torch.float64).eval()
        b.load_state_dict(state)
        blocks.append(b)
    return blocks[0], blocks[1]


# closed forms written out from the formulas, independent of the module code
def ref_ln(x, s, name, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * s[f"{name}.weight"] + s[f"{name}.bias"]


def ref_attn(x, s, n_head):
    B, T, D = x.shape
    hd = D // n_head
    qkv = x @ s["attn.c_attn.weight"].T + s["attn.c_attn.bias"]  # (B, T, 3D)
    q, k, v = (qkv[..., i * D : (i + 1) * D].reshape(B, T, n_head, hd).transpose(1, 2) for i in range(3))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # (B, h, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    scores = scores.masked_fill(future, -math.inf)
    p = torch.exp(scores - scores.amax(-1, keepdim=True))
    p = p / p.sum(-1, keepdim=True)
    o = (p @ v).transpose(1, 2).reshape(B, T, D)
    return o @ s["attn.c_proj.weight"].T + s["attn.c_proj.bias"]


def ref_mlp(x, s):
    a = x @ s["mlp.c_fc.weight"].T + s["mlp.c_fc.bias"]
    g = 0.5 * a * (1.0 + torch.erf(a / math.sqrt(2.0)))  # exact GELU
    return g @ s["mlp.c_proj.weight"].T + s["mlp.c_proj.bias"]


def ref_block(x, s, prenorm: bool, n_head: int, eps: float):
    if prenorm:
        x = x + ref_attn(ref_ln(x, s, "ln_1", eps), s, n_head)
        return x + ref_mlp(ref_ln(x, s, "ln_2", eps), s)
    x = ref_ln(x + ref_attn(x, s, n_head), s, "ln_1", eps)
    return ref_ln(x + ref_mlp(x, s), s, "ln_2", eps)


def _maxabs(a, b) -> float:
    return float((a - b).abs().max())


def _normalisation_errors(y) -> tuple[float, float]:
    """max over tokens of |mean over features| and of |mean square of deviations - 1|."""
    mu = y.mean(-1)
    var = ((y - mu[..., None]) ** 2).mean(-1)
    return float(mu.abs().max()), float((var - 1).abs().max())


def trial_cost(d_model: int, tokens: int) -> tuple[float, float]:
    """(bytes, seconds) of one trial on 2 CPU cores, from the measurements above."""
    d, t = d_model, tokens
    return 820 * d * d + 200 * t * t + 130 * t * d, 0.35 + 3.1e-6 * d * d + 2e-6 * t * t + 1.4e-8 * t * d * d


def _validate(d_model, tokens, samples):
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model <= 0 or d_model % N_HEAD:
        raise ValueError(f"d_model: must be a positive multiple of {N_HEAD}, got {d_model!r}")
    if d_model > MAX_D:
        raise ValueError(f"d_model: must be at most {MAX_D:,} ({OPTIONS[0].why}), got {d_model:,}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_T:
        raise ValueError(f"tokens: must be an integer in [1, {MAX_T:,}], got {tokens!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: must be a positive integer, got {samples!r}")
    nbytes, seconds = trial_cost(d_model, tokens)
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"tokens: d_model {d_model:,} with {tokens:,} tokens would hold ~{nbytes / 1e9:.1f} GB (820 d^2 + 200 T^2 "
            f"+ 130 T d bytes: Blocks, scores, activations); at most {MAX_BYTES / 1e9:.1f} GB"
        )
    if samples * seconds > MAX_SECONDS:
        raise ValueError(
            f"samples: {samples:,} trials at d_model {d_model:,}, {tokens:,} tokens would take "
            f"~{samples * seconds:,.0f} s on 2 CPU cores ({seconds:.2g} s each); at most {MAX_SECONDS} s"
        )


def validate(d_model=32, tokens=8, samples=DEFAULT_SAMPLES) -> None:
    """Refuse bad options before any work (the CLI calls this before the derivation)."""
    _validate(d_model, tokens, samples)


def trial(d_model: int, tokens: int, gen, dev) -> dict:
    """One random trial: fresh weights and inputs; returns the measured maxima (floats)."""
    proto = Block(_config(d_model, tokens, True)).to(device=dev, dtype=torch.float64)
    state = random_state(proto, gen)
    pre, post = pair(d_model, tokens, state, dev)
    eps = pre.ln_1.eps
    x = torch.randn(BATCH, tokens, d_model, generator=gen, device=dev, dtype=torch.float64)
    with torch.no_grad():
        y_pre, y_post = pre(x), post(x)
        r_pre, r_post = ref_block(x, state, True, N_HEAD, eps), ref_block(x, state, False, N_HEAD, eps)
        # sublayers switched off: zero output projections
        zstate = dict(state)
        for k in ("attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"):
            zstate[k] = torch.zeros_like(state[k])
        z_pre, z_post = pair(d_model, tokens, zstate, dev)
        yz_pre, yz_post = z_pre(x), z_post(x)
        rz_post = ref_ln(ref_ln(x, state, "ln_1", eps), state, "ln_2", eps)
        # the derivation's LayerNorm (gain 1, bias 0, eps 0) at the output, to test normalisation
        nstate = dict(state)
        for k in ("ln_1", "ln_2"):
            nstate[f"{k}.weight"] = torch.ones_like(state[f"{k}.weight"])
            nstate[f"{k}.bias"] = torch.zeros_like(state[f"{k}.bias"])
        n_pre, n_post = pair(d_model, tokens, nstate, dev)
        for b in (n_pre, n_post):
            b.ln_1.eps = b.ln_2.eps = 0.0
        yn_pre, yn_post = n_pre(x), n_post(x)
    m_pre, v_pre = _normalisation_errors(yn_pre)
    m_post, v_post = _normalisation_errors(yn_post)
    return {
        "|pre-ref|": _maxabs(y_pre, r_pre),
        "|post-ref|": _maxabs(y_post, r_post),
        "|pre-post|": _maxabs(y_pre, y_post),
        "|pre-ref_post|": _maxabs(y_pre, r_post),
        "f=0 |pre-x|": _maxabs(yz_pre, x),
        "f=0 |post-LN(LN x)|": _maxabs(yz_post, rz_post),
        "f=0 |post-x|": _maxabs(yz_post, x),
        "post mean": m_post,
        "post var-1": v_post,
        "pre mean": m_pre,
        "pre var-1": v_pre,
        "_outputs": (y_pre.flatten().cpu(), y_post.flatten().cpu()),
    }


def check(
    device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, d_model: int = 32, tokens: int = 8
) -> CheckResult:
    _validate(d_model, tokens, samples)
    dev = pick_device(device)
    gen = generator(dev, seed)
    res = CheckResult(CLAIM, describe(dev), samples, seed)
    rows = []
    for i in range(samples):
        r = trial(d_model, tokens, gen, dev)
        r.pop("_outputs")
        rows.append(r)
        res.table.append({"trial": i} | r)
    worst = lambda k: max(r[k] for r in rows)  # noqa: E731
    least = lambda k: min(r[k] for r in rows)  # noqa: E731
    n = f"over {samples} trials"
    res.claims += [
        Bound.of(
            f"pre-norm Block = x + A(LN1 x), then + M(LN2 .) in closed form (max {n})",
            worst("|pre-ref|"),
            0.0,
            EQUAL_TOL,
        ),
        Bound.of(
            f"post-norm Block = LN1(x + A x), then LN2(. + M .) in closed form (max {n})",
            worst("|post-ref|"),
            0.0,
            EQUAL_TOL,
        ),
        Bound.of(f"zeroed sublayers: pre-norm Block is the identity (max {n})", worst("f=0 |pre-x|"), 0.0, EQUAL_TOL),
        Bound.of(
            f"zeroed sublayers: post-norm Block = LN2(LN1(x)) (max {n})", worst("f=0 |post-LN(LN x)|"), 0.0, EQUAL_TOL
        ),
        Bound.of(
            f"post-norm output has feature mean 0 (plain LN, eps 0; max over tokens, {n})",
            worst("post mean"),
            0.0,
            EQUAL_TOL,
        ),
        Bound.of(
            f"post-norm output has feature variance 1 (plain LN, eps 0; max over tokens, {n})",
            worst("post var-1"),
            0.0,
            EQUAL_TOL,
        ),
    ]
    res.controls += [
        Bound.of(
            f"pre-norm = post-norm, up to {DIFF_TOL:g} (smallest max|diff| {n})", least("|pre-post|"), 0.0, DIFF_TOL
        ),
        Bound.of(
            f"pre-norm Block = the post-norm closed form, up to {DIFF_TOL:g} (smallest {n})",
            least("|pre-ref_post|"),
            0.0,
            DIFF_TOL,
        ),
        Bound.of(
            f"zeroed sublayers: post-norm Block is the identity, up to {DIFF_TOL:g} (smallest {n})",
            least("f=0 |post-x|"),
            0.0,
            DIFF_TOL,
        ),
        Bound.of(
            f"pre-norm output has feature mean 0, up to {DIFF_TOL:g} (smallest {n})", least("pre mean"), 0.0, DIFF_TOL
        ),
        Bound.of(
            f"pre-norm output has feature variance 1, up to {DIFF_TOL:g} (smallest {n})",
            least("pre var-1"),
            0.0,
            DIFF_TOL,
        ),
    ]
    res.notes += [
        f"models.gpt.Block, d={d_model}, h={N_HEAD}, T={tokens}, batch {BATCH}, float64, biases, eval mode; "
        "both blocks load one state dict of seeded random weights",
        f"claims: max|module - closed form| <= {EQUAL_TOL:g}; controls use the looser {DIFF_TOL:g} and must "
        "still be rejected, so pre and post differ by more than 10^7 times the equality tolerance",
        "normalisation rows use gain 1, bias 0 and eps 0 in both norms (the derivation's LayerNorm)",
    ]
    return res


def figure(path, device=None, seed: int = 0, d_model: int = 32, tokens: int = 8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    _validate(d_model, tokens, DEFAULT_SAMPLES)
    dev = pick_device(device)
    ex = example()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    idx = range(3)
    for name, off in [("x", -0.27), ("pre", 0.0), ("post", 0.27)]:
        a.bar(
            [i + off for i in idx],
            [float(v) for v in ex[name]],
            width=0.25,
            label={"x": "x = (1, 2, 6)", "pre": "pre-norm x + W LN(x)", "post": "post-norm LN(x + Wx)"}[name],
        )
    a.set_xticks(list(idx), ["feature 1", "feature 2", "feature 3"])
    a.axhline(0, color="k", lw=0.6)
    a.set_title("exact example: d = 3, f(x) = (x_3, 0, 0)")
    a.legend(fontsize=8)
    y_pre, y_post = trial(d_model, tokens, generator(dev, seed), dev)["_outputs"]
    b.scatter(y_pre.numpy(), y_post.numpy(), s=6, alpha=0.6)
    lim = float(max(y_pre.abs().max(), y_post.abs().max()))
    b.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="equal outputs")
    b.set_xlabel("pre-norm Block output")
    b.set_ylabel("post-norm Block output (same weights)")
    b.set_title(f"models.gpt.Block, d={d_model}, seed {seed}")
    b.legend(fontsize=8)
    fig.suptitle("Exercise 13.31: pre-norm and post-norm are different functions")
    return save_figure(fig, path)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

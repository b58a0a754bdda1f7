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

import sympy as sp
import torch

from derive.engine import Derivation
from models.gpt import Block, GPTConfig
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.31"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Pre-norm $x + f(\mathrm{LN}(x))$ and post-norm $\mathrm{LN}(x + f(x))$ give "
    r"different outputs for the same weights."
)
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
S_EX = sp.sqrt(sp.Rational(3, 14))  # 1 / sigma(x) for the example x


def ln_exact(z: sp.Matrix) -> sp.Matrix:
    """LayerNorm of a row vector with no gain, no bias and eps = 0: (z - mean) / sqrt(mean square)."""
    c = z - sp.ones(*z.shape) * (sum(z) / len(z))
    return c / sp.sqrt(sum(e**2 for e in c) / len(z))


def mean(z: sp.Matrix):
    """The mean of the entries of ``z`` (exact)."""
    return sum(z) / len(z)


def mean_sq(z: sp.Matrix):
    """The mean of the squared entries of ``z`` (exact)."""
    return sum(e**2 for e in z) / len(z)


def example(x: sp.Matrix = X_EX, W: sp.Matrix = W_EX) -> dict:
    """The exact outputs of one linear sublayer f(x) = W x, pre- and post-norm (row vectors)."""
    f = lambda v: (W * v.T).T  # noqa: E731
    return {"x": x, "LN(x)": ln_exact(x), "pre": x + f(ln_exact(x)), "x+f(x)": x + f(x), "post": ln_exact(x + f(x))}


def _row(name: str) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(name, 1, 3)


def derivation() -> Derivation:
    """The exact example's two outputs differ; post-norm outputs are always normalised, pre-norm's are not;
    with the sublayer off, pre-norm is the identity and post-norm is not."""
    dx = Derivation(
        "Exercise 13.31: pre-norm and post-norm are not equivalent",
        assumptions=[
            r"$\mathrm{LN}(z) = (z - \mathrm{mean}\,z) / \sqrt{\mathrm{mean}\,(z - \mathrm{mean}\,z)^2}$: no gain, "
            r"no bias, $\epsilon = 0$; $z$ not constant",
            "example: $d = 3$, $x = (1, 2, 6)$, $f(x) = W x = (x_3, 0, 0)$ ($W$ has a single 1, in row 1, column 3)",
            r"pre-norm $y = x + f(\mathrm{LN}(x))$; post-norm $y = \mathrm{LN}(x + f(x))$; the same $W$ in both",
        ],
    )
    ex = example()
    _example_steps(dx, ex)
    _normalisation_steps(dx, ex)
    _identity_steps(dx, ex)
    return dx


def _example_steps(dx: Derivation, ex: dict) -> None:
    """The example's pre- and post-norm outputs, and the squared length of their difference, which is positive."""
    s, M = S_EX, sp.Matrix
    dx.eq(
        _row("LN(x)"),
        s * M([[-2, -1, 3]]),
        "mean 3, deviations $(-2, -1, 3)$, mean square $14/3$",
        computed=ex["LN(x)"],
    )
    dx.eq(
        _row("y_pre"),
        M([[1 + 3 * s, 2, 6]]),
        r"pre-norm: $x + W\,\mathrm{LN}(x) = x + (\mathrm{LN}(x)_3, 0, 0)$",
        computed=ex["pre"],
    )
    dx.eq(_row("x + Wx"), M([[7, 2, 6]]), "post-norm's residual sum $x + (x_3, 0, 0)$", "exact", computed=ex["x+f(x)"])
    dx.eq(
        _row("y_post"),
        s * M([[2, -3, 1]]),
        r"post-norm: $\mathrm{LN}(7, 2, 6)$; mean 5, deviations $(2, -3, 1)$, mean square $14/3$",
        computed=ex["post"],
    )
    diff = ex["pre"] - ex["post"]
    dx.eq(_row("y_pre - y_post"), M([[1 + s, 2 + 3 * s, 6 - s]]), "the difference", computed=diff)
    i = sp.Symbol("i", positive=True, integer=True)
    yp, yq = sp.IndexedBase("y_pre"), sp.IndexedBase("y_post")
    length = sp.Rational(607, 14) + 2 * s
    dx.eq(
        sp.Sum((yp[i] - yq[i]) ** 2, (i, 1, 3)),
        length,
        "its squared length",
        computed=sp.expand(sum(e**2 for e in diff)),
    )
    dx.holds(length, ">", 0, "is positive: the same weights give different outputs")


def _normalisation_steps(dx: Derivation, ex: dict) -> None:
    """Every LayerNorm output (so every post-norm output) has mean 0 and mean square 1; the pre-norm output not."""
    s, Mean, n = S_EX, sp.Function("mean"), ln_exact(sp.Matrix([sp.symbols("z1:4", real=True)]))
    dx.eq(Mean(sp.Symbol("LN(z)")), 0, "any $z$: a LayerNorm output has mean 0 ...", "cancel", computed=mean(n))
    dx.eq(
        Mean(sp.Symbol("LN(z)") ** 2),
        1,
        "... and mean square 1, so every post-norm output is normalised",
        "cancel",
        computed=mean_sq(n),
    )
    dx.eq(
        Mean(sp.Symbol("y_pre")),
        3 + s,
        r"the pre-norm output is not: $\mathrm{mean}(x) + \mathrm{mean}(W\,\mathrm{LN}(x)) = 3 + s$",
        computed=mean(ex["pre"]),
    )
    var = sp.Rational(107, 21) - 4 * s
    dx.eq(
        sp.Function("Var")(sp.Symbol("y_pre")), var, "its variance", computed=mean_sq(ex["pre"]) - mean(ex["pre"]) ** 2
    )
    dx.holds(var, ">", 1, "is not 1: the pre-norm output is not normalised")


def _identity_steps(dx: Derivation, ex: dict) -> None:
    """With the sublayer off (f = 0) pre-norm is the identity, post-norm is LN(x), a positive distance from x."""
    zero = example(W=sp.zeros(3, 3))
    dx.eq(_row("y_pre|f=0"), X_EX, "with $f = 0$, pre-norm is the identity", "exact", computed=zero["pre"])
    dx.eq(_row("y_post|f=0"), ex["LN(x)"], r"while post-norm is $\mathrm{LN}(x)$ ...", computed=zero["post"])
    i, gap = sp.Symbol("i", positive=True, integer=True), 44 - 2 * sp.sqrt(42)
    dx.eq(
        sp.Sum((sp.IndexedBase("y_post")[i] - sp.IndexedBase("x")[i]) ** 2, (i, 1, 3)),
        gap,
        "... whose squared distance from $x$",
        computed=sp.expand(sum(e**2 for e in zero["post"] - X_EX)),
    )
    dx.holds(gap, ">", 0, "is positive: post-norm cannot pass $x$ through unchanged")


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
    """LayerNorm ``name`` of the state dict ``s`` over the last axis of ``x`` (B, T, D), with gain and bias."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * s[f"{name}.weight"] + s[f"{name}.bias"]


def ref_attn(x, s, n_head):
    """Causal multi-head self-attention of ``x`` (B, T, D) with the weights of ``s``, written out; (B, T, D)."""
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
    """The MLP sublayer of ``s`` (Linear, exact GELU, Linear) applied to ``x`` (B, T, D); (B, T, D)."""
    a = x @ s["mlp.c_fc.weight"].T + s["mlp.c_fc.bias"]
    g = 0.5 * a * (1.0 + torch.erf(a / math.sqrt(2.0)))  # exact GELU
    return g @ s["mlp.c_proj.weight"].T + s["mlp.c_proj.bias"]


def ref_block(x, s, prenorm: bool, n_head: int, eps: float):
    """One Block in closed form: pre-norm x + A(LN1 x), then + M(LN2 .); post-norm LN1(x + A x), then LN2(. + M .)."""
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


def validate(o) -> None:
    """d_model a multiple of the head count; one trial's memory and all trials' time within the budget."""
    if o.d_model % N_HEAD:
        raise ValueError(f"d_model: must be a positive multiple of {N_HEAD}, got {o.d_model!r}")
    nbytes, seconds = trial_cost(o.d_model, o.tokens)
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"tokens: d_model {o.d_model:,} with {o.tokens:,} tokens would hold ~{nbytes / 1e9:.1f} GB (820 d^2 + "
            f"200 T^2 + 130 T d bytes: Blocks, scores, activations); at most {MAX_BYTES / 1e9:.1f} GB"
        )
    if o.samples * seconds > MAX_SECONDS:
        raise ValueError(
            f"samples: {o.samples:,} trials at d_model {o.d_model:,}, {o.tokens:,} tokens would take "
            f"~{o.samples * seconds:,.0f} s on 2 CPU cores ({seconds:.2g} s each); at most {MAX_SECONDS} s"
        )


def trial(d_model: int, tokens: int, gen, dev) -> dict:
    """One random trial: fresh weights and inputs; returns the measured maxima (floats) and, under
    ``_outputs``, the flattened pre- and post-norm outputs (CPU tensors)."""
    proto = Block(_config(d_model, tokens, True)).to(device=dev, dtype=torch.float64)
    state = random_state(proto, gen)
    pre, post = pair(d_model, tokens, state, dev)
    eps = pre.ln_1.eps
    x = torch.randn(BATCH, tokens, d_model, generator=gen, device=dev, dtype=torch.float64)
    with torch.no_grad():
        y_pre, y_post = pre(x), post(x)
        r_pre, r_post = ref_block(x, state, True, N_HEAD, eps), ref_block(x, state, False, N_HEAD, eps)
        # sublayers switched off: zero output projections
        zstate = state | {k: torch.zeros_like(v) for k, v in state.items() if k.split(".")[1] == "c_proj"}
        z_pre, z_post = pair(d_model, tokens, zstate, dev)
        yz_pre, yz_post = z_pre(x), z_post(x)
        rz_post = ref_ln(ref_ln(x, state, "ln_1", eps), state, "ln_2", eps)
        # the derivation's LayerNorm (gain 1, bias 0, eps 0) at the output, to test normalisation
        plain = {k: torch.ones_like(v) if k.endswith("weight") else torch.zeros_like(v) for k, v in state.items()}
        nstate = state | {k: v for k, v in plain.items() if k.startswith("ln_")}
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


# (claim, measured key): each claim is max over trials <= EQUAL_TOL; each control min over trials <= DIFF_TOL
CLAIMS = [
    ("pre-norm Block = x + A(LN1 x), then + M(LN2 .) in closed form (max {n})", "|pre-ref|"),
    ("post-norm Block = LN1(x + A x), then LN2(. + M .) in closed form (max {n})", "|post-ref|"),
    ("zeroed sublayers: pre-norm Block is the identity (max {n})", "f=0 |pre-x|"),
    ("zeroed sublayers: post-norm Block = LN2(LN1(x)) (max {n})", "f=0 |post-LN(LN x)|"),
    ("post-norm output has feature mean 0 (plain LN, eps 0; max over tokens, {n})", "post mean"),
    ("post-norm output has feature variance 1 (plain LN, eps 0; max over tokens, {n})", "post var-1"),
]
CONTROLS = [
    ("pre-norm = post-norm, up to {tol:g} (smallest max|diff| {n})", "|pre-post|"),
    ("pre-norm Block = the post-norm closed form, up to {tol:g} (smallest {n})", "|pre-ref_post|"),
    ("zeroed sublayers: post-norm Block is the identity, up to {tol:g} (smallest {n})", "f=0 |post-x|"),
    ("pre-norm output has feature mean 0, up to {tol:g} (smallest {n})", "pre mean"),
    ("pre-norm output has feature variance 1, up to {tol:g} (smallest {n})", "pre var-1"),
]


@with_options
def check(o) -> CheckResult:
    """``samples`` trials of models.gpt.Block, pre- and post-norm with one state dict, against closed forms;
    controls: pre = post, post-norm with zeroed sublayers is the identity, the pre-norm output is normalised."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    rows = []
    for i in range(o.samples):
        r = trial(o.d_model, o.tokens, gen, dev)
        res.series.setdefault("outputs", r.pop("_outputs"))  # the first trial's, for the figure
        rows.append(r)
        res.table.append({"trial": i} | r)
    n = f"over {o.samples} trials"
    res.claims += [Bound.of(c.format(n=n), max(r[k] for r in rows), 0.0, EQUAL_TOL) for c, k in CLAIMS]
    res.controls += [Bound.of(c.format(n=n, tol=DIFF_TOL), min(r[k] for r in rows), 0.0, DIFF_TOL) for c, k in CONTROLS]
    res.notes += [
        f"models.gpt.Block, d={o.d_model}, h={N_HEAD}, T={o.tokens}, batch {BATCH}, float64, biases, eval mode; "
        "both blocks load one state dict of seeded random weights",
        f"claims: max|module - closed form| <= {EQUAL_TOL:g}; controls use the looser {DIFF_TOL:g} and must "
        "still be rejected, so pre and post differ by more than 10^7 times the equality tolerance",
        "normalisation rows use gain 1, bias 0 and eps 0 in both norms (the derivation's LayerNorm)",
    ]
    return res


def figure(res: CheckResult):
    """Left: the exact example's $x$, pre-norm and post-norm outputs; right: the first trial's pre- against post-norm
    Block outputs, with the line of equal outputs."""
    o, ex = res.settings, example()
    fig, (a, b) = plotting.subplots(2, width=10, height=4)
    labels = {
        "x": "$x = (1, 2, 6)$",
        "pre": r"pre-norm $x + W\,\mathrm{LN}(x)$",
        "post": r"post-norm $\mathrm{LN}(x + Wx)$",
    }
    for name, off in [("x", -0.27), ("pre", 0.0), ("post", 0.27)]:
        a.bar([i + off for i in range(3)], [float(v) for v in ex[name]], width=0.25, label=labels[name])
    a.set_xticks(list(range(3)), ["feature 1", "feature 2", "feature 3"])
    a.axhline(0, color="k", lw=0.6)
    a.set_title("exact example: $d = 3$, $f(x) = (x_3, 0, 0)$")
    a.legend(fontsize=8)
    y_pre, y_post = res.series["outputs"]
    b.scatter(y_pre.numpy(), y_post.numpy(), s=6, alpha=0.6)
    lim = float(max(y_pre.abs().max(), y_post.abs().max()))
    b.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="equal outputs")
    b.set(xlabel="pre-norm Block output", ylabel="post-norm Block output (same weights)")
    b.set_title(f"models.gpt.Block, $d={o.d_model}$, seed {o.seed}")
    b.legend(fontsize=8)
    fig.suptitle("Exercise 13.31: pre-norm and post-norm are different functions")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

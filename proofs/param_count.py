"""Exercises 13.12 and 13.17: a decoder-only Transformer has about $12Ld^2 + 2Vd$ parameters.

Each block has attention with $W_Q, W_K, W_V, W_O$, four $d \\times d$ matrices ($4d^2$ for any
number of heads, exercise 13.30), and an MLP at 4x expansion, $d \\times 4d$ and $4d \\times d$
($8d^2$), so $12d^2$ per block and $12Ld^2$ for $L$ blocks. The token embedding is a $V \\times d$
table and the output layer a $d \\times V$ matrix, $Vd$ each:

$$P \\approx 12Ld^2 + 2Vd.$$

The rule leaves out the biases ($9Ld$: $4d$ in attention, $5d$ in the MLP), the norms ($2L + 1$ of
them: $2d$ each for LayerNorm with a bias, $d$ for RMSNorm), learned position embeddings
($n_\\mathrm{ctx}d$; sinusoidal and rotary positions have none), and weight tying (a tied output
layer shares the embedding table, so $-Vd$). A SwiGLU MLP with three $d \\times d_\\mathrm{ff}$
matrices has exactly $8d^2$ only at $d_\\mathrm{ff} = 8d/3$; LLaMA rounds that up to a multiple
of 256 (11008 at $d = 4096$).

Exercise 13.12 ($L = 24$, $d = 1024$, $V = 50000$): $12 \\cdot 24 \\cdot 1024^2 + 2 \\cdot 50000 \\cdot
1024 = 404{,}389{,}888 \\approx 0.40$B. A GPT-2-style model of those shapes (GPT-2 medium, with
learned positions, biases and a tied embedding) has 354,560,000: the rule is 14 % high, because
tying makes one of its two $Vd$ terms wrong, and $Vd$ is 17 % of $12Ld^2$ at this size.

Exercise 13.17 ($V = 32000$, $d = 4096$, $L = 32$): $6{,}704{,}594{,}944 \\approx 6.7$B. These are
LLaMA-7B's shapes, whose exact count is 6,738,415,616: the rule is 0.50 % low, because everything
it leaves out is small or absent there (SwiGLU's $3 \\cdot 4096 \\cdot 11008$ is $8d^2$ plus 0.8 %, no
biases, $65 \\cdot 4096$ RMSNorm gains, untied embeddings so $2Vd$ is right, RoPE has no parameters).

Real models depart from the rule's shapes in ways the flags describe: grouped-query attention
(``--kv-heads``: $K$ and $V$ are $d \\times h_\\mathrm{kv} d_\\mathrm{head}$, so attention has
$2d^2 + 2d^2 h_\\mathrm{kv}/h$ weights; Llama-2-70B has 8 key/value heads for 64 and 68,976,648,192
parameters, where counting it as multi-head attention gives 78,371,889,152), a head size other than
$d/h$ (``--head-dim``: $Q$ is $d \\times h d_\\mathrm{head}$, as in Gemma-7B), MLP widths
(``--gelu-hidden``, ``--swiglu-hidden``), tying (``--tie-embeddings``) and biases (``--bias``).

The check builds the models on the meta device (shapes only, no memory) and counts their
parameters exactly: the project's ``models.gpt.GPT`` (which ties the head size to $d/h$) and,
independently, the same architectures assembled from ``torch.nn`` parts
(``nn.TransformerEncoderLayer`` for multi-head GPT-2 style, else ``nn.Linear`` and ``nn.LayerNorm``;
``nn.Linear`` and ``nn.RMSNorm`` for LLaMA style, with $h_\\mathrm{kv}$ key/value heads). Every count is
compared with its formula at tolerance 0, at the exercises' shapes (or the ones given), at seeded
random small shapes (grouped-query attention, free head sizes, widths, tying and biases drawn too),
and at the published counts of GPT-2 medium, LLaMA-7B, Llama-2-70B and Gemma-7B. Negative controls:
the same exact comparison rejects the rule with one $Vd$ or with a $4d^2$ MLP, rejects the rule as
the exact count of the GPT-2- and LLaMA-style models, rejects "within 5 %" for the GPT-2-style
model at 13.12's shapes, and rejects each model's formula with a flag given left out (multi-head
attention for grouped-query, $d/h$ for another head size, the style's tying), at the shapes asked and
at the anchors (so the 78,371,889,152 multi-head count is rejected for Llama-2-70B).
"""

from __future__ import annotations

import re

import sympy as sp
import torch

from derive import counts
from derive.counts import L, V, d, d_ff, h, n_ctx
from derive.engine import Derivation
from derive.model_styles import STYLE_DEFAULTS, complete, gpt2_params, llama_params, style_params
from derive.model_styles import STYLE_NAMES as STYLE
from models.utils.device import pick_device
from numeric.check import Bound, CheckResult
from numeric.meta_models import gpt_gpt2, gpt_llama, gpt_rule_shaped, torch_gpt2, torch_llama
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.12"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"$P \approx 12 L d^2 + 2 V d$ (13.12: 0.40B); within 5% for $V = 32000$, $d = "
    r"4096$, $L = 32$ (13.17: 6.7B; LLaMA-7B 6.74B)."
)
UNUSED_FLAGS = {"--device": "every model is built on the meta device: shapes only, no memory"}
DEFAULT_SAMPLES = 8  # seeded random small shapes counted exactly, on top of the exercises' shapes
# The exercises give L, d, V; heads and context are those of the real models with these shapes
# (GPT-2 medium for 13.12, LLaMA-7B for 13.17). Neither changes the rule.
EXERCISES = {
    "13.12": dict(L=24, d=1024, V=50000, h=16, n=1024),
    "13.17": dict(L=32, d=4096, V=32000, h=32, n=2048),
}
# each size option and its key in a shape (derive.model_styles); unset (None) leaves the key to the exercise
SHAPE_KEYS = dict(layers="L", d_model="d", vocab="V", heads="h", n_ctx="n", swiglu_hidden="ff", kv_heads="kv")
SHAPE_KEYS |= dict(head_dim="dh", gelu_hidden="gff")
SWITCH_KEYS = dict(tie_embeddings="tie", bias="bias")
_EX, _WHY = "unset: the exercise's value, ", "the module's range, beyond any published model's (meta device)"


def _size(flag: str, help: str, hi: int = 65536) -> Option:
    """A size option; unset (None) leaves the size to the exercise (or to the other sizes)."""
    return Option(flag, int, None, help, lo=1, hi=hi, why=_WHY)


def _switch(flag: str, what: str) -> Option:
    return Option(flag, str, None, f"yes: {what}; no: not; unset: GPT-2 yes, LLaMA no", choices=("yes", "no"))


OPTIONS = [
    Option(
        "--exercise",
        str,
        "both",
        "13.12, 13.17 or both; shapes given override its values (13.12's for both)",
        choices=(*EXERCISES, "both"),
    ),
    _size("--layers", _EX + "24 (13.12), 32 (13.17)", 256),
    _size("--d-model", _EX + "1024, 4096"),
    _size("--vocab", _EX + "50000, 32000", 10_000_000),
    _size("--heads", "query heads, divide d-model unless --head-dim is given; " + _EX + "16, 32"),
    _size("--kv-heads", "key/value heads (grouped-query attention), divide --heads; unset: --heads"),
    _size("--head-dim", "head size d_head, even (RoPE; others: torch.nn models only); unset: d-model/heads"),
    _size("--n-ctx", "positions of the GPT-2-style model; " + _EX + "1024, 2048", 1 << 20),
    _size("--gelu-hidden", "GELU width of the GPT-2-style model; unset: 4 d-model", 1 << 20),
    _size("--swiglu-hidden", "SwiGLU width of the LLaMA-style model; unset: 256 ceil(8d/3/256)", 1 << 20),
    _switch("--tie-embeddings", "the output layer shares the token table"),
    _switch("--bias", "biases in Linear layers and LayerNorms"),
]
WITHIN = 0.05  # exercise 13.17's "to within 5%"
# Published totals (Hugging Face): gpt2-medium and LLaMA-7B (the models whose shapes these are),
# Llama-2-70B (grouped-query attention, 8 key/value heads for 64 query heads) and Gemma-7B
# (16 heads of 256 = 4096 wide on d = 3072, tied embeddings; its GeGLU MLP has SwiGLU's three
# d x d_ff matrices; the Gemma report gives 7,751,248,896 non-embedding parameters).
ANCHORS = {
    "GPT-2 medium": ("gpt2", dict(L=24, d=1024, V=50257, h=16, n=1024, ff=4096), 354_823_168),
    "LLaMA-7B": ("llama", dict(L=32, d=4096, V=32000, h=32, n=2048, ff=11008), 6_738_415_616),
    "Llama-2-70B": ("llama", dict(L=80, d=8192, V=32000, h=64, kv=8, n=4096, ff=28672), 68_976_648_192),
    "Gemma-7B": ("llama", dict(L=28, d=3072, V=256000, h=16, dh=256, n=8192, ff=24576, tie=True), 8_537_680_896),
}
BUILDERS = {"gpt2": (gpt_gpt2, torch_gpt2), "llama": (gpt_llama, torch_llama)}  # (the project's GPT, torch.nn)
RULE = L * counts.block_matmul_params(d, h) + counts.embedding_params(V, d, pos="none") + V * d


def rule(L: int, d: int, V: int) -> int:
    """The rule 12 L d^2 + 2 V d at integer sizes."""
    return int(RULE.subs({counts.L: L, counts.d: d, counts.V: V}))


# -- the derivation, in five groups of steps ------------------------------------------------------

PF, G, M = sp.Function("P"), sp.Symbol("P_GPT2"), sp.Symbol("P_LLaMA")  # PF(L, d, V): the rule
EX12, EX17 = {L: 24, d: 1024, V: 50000}, {L: 32, d: 4096, V: 32000}


def derivation() -> Derivation:
    """The rule 12 L d^2 + 2 V d, its values at 13.12 and 13.17, what it leaves out, and the GPT-2-style,
    LLaMA-style and grouped-query counts it is compared with (five groups of steps)."""
    dx = Derivation(
        "Exercises 13.12 and 13.17: parameters of a decoder-only Transformer",
        assumptions=[
            "$L$ blocks of width $d$, $h$ heads ($h$ divides $d$; checked on inputs), vocabulary $V$",
            r"attention: $W_Q, W_K, W_V, W_O$, $d \times d$ each; MLP: $d \times 4d$ and $4d \times d$ "
            r"(GELU at $4\times$ expansion)",
            r"token embedding $V \times d$; output layer $d \times V$, not tied to it",
            "the rule counts matrices only: no biases, norms or position tables",
        ],
    )
    for steps in (_rule_steps, _left_out_steps, _gpt2_steps, _llama_steps, _gqa_steps):
        steps(dx)
    return dx


def _rule_steps(dx: Derivation) -> None:
    """The rule: 4d^2 attention + 8d^2 MLP per block, V d for each embedding; its value at 13.12 and 13.17."""
    dx.eq(sp.Symbol("P_attn"), 4 * d**2, "$W_Q, W_K, W_V, W_O$", "exact", counts.attention_params(d, h, bias=False))
    dx.eq(sp.Symbol("P_mlp"), 8 * d**2, r"$d \times 4d$ and $4d \times d$", "exact", counts.mlp_params(d, bias=False))
    dx.eq(sp.Symbol("P_block"), 12 * d**2, "one block", "expand", counts.block_matmul_params(d, h))
    dx.eq(sp.Symbol("P_in"), V * d, r"token embedding $V \times d$", "exact", counts.embedding_params(V, d, pos="none"))
    untied = counts.non_embedding_params(L, d, h, V, tie=False) - counts.non_embedding_params(L, d, h, V)
    dx.eq(sp.Symbol("P_out"), V * d, r"untied output layer $d \times V$", "expand", untied)
    dx.eq(PF(L, d, V), 12 * L * d**2 + 2 * V * d, "$L$ blocks and both embeddings", "expand", RULE)
    dx.eq(
        PF(24, 1024, 50000),
        404_389_888,
        r"13.12: $L = 24$, $d = 1024$, $V = 50000$ ($\approx 0.40$B)",
        "exact",
        RULE.subs(EX12),
    )
    dx.eq(
        PF(32, 4096, 32000),
        6_704_594_944,
        r"13.17: $L = 32$, $d = 4096$, $V = 32000$ ($\approx 6.7$B)",
        "exact",
        RULE.subs(EX17),
    )


def _left_out_steps(dx: Derivation) -> None:
    """What the rule leaves out: biases, norms, learned positions; and what tying takes away."""
    biases = L * (counts.attention_params(d, h) - counts.attention_params(d, h, bias=False))
    biases += L * (counts.mlp_params(d) - counts.mlp_params(d, bias=False))
    dx.eq(
        sp.Symbol("P_biases"),
        9 * L * d,
        "left out: biases, $4d$ (attention) $+$ $5d$ (MLP) per block",
        "expand",
        biases,
    )
    layer_norms = (2 * L + 1) * counts.norm_params(d)
    dx.eq(sp.Symbol("P_LN"), 2 * d * (2 * L + 1), "left out: $2L + 1$ LayerNorms (gain, bias)", "expand", layer_norms)
    rms_norms = (2 * L + 1) * counts.norm_params(d, "rmsnorm")
    dx.eq(sp.Symbol("P_RMS"), d * (2 * L + 1), "or $2L + 1$ RMSNorms (gain only)", "expand", rms_norms)
    pos = counts.embedding_params(V, d, n_ctx, "learned") - counts.embedding_params(V, d, n_ctx, "rope")
    dx.eq(sp.Symbol("P_pos"), n_ctx * d, "left out: learned positions (sinusoidal, RoPE: 0)", "expand", pos)
    tie = counts.model_params(L, d, h, V, n_ctx) - counts.model_params(L, d, h, V, n_ctx, tie=False)
    dx.eq(sp.Symbol("P_tied") - sp.Symbol("P_untied"), -V * d, r"tying shares the $V \times d$ table", "expand", tie)


def _gpt2_steps(dx: Derivation) -> None:
    """The GPT-2-style count against the rule: at 13.12's shapes the tied table makes the rule > 10% high."""
    why = "GPT-2 style: biases $+$ LayerNorms $+$ positions $-$ tied table"
    dx.eq(G - PF(L, d, V), 13 * L * d + 2 * d + n_ctx * d - V * d, why, "expand", gpt2_params() - RULE)
    share = sp.Mul(V * d, sp.Pow(12 * L * d**2, -1, evaluate=False), evaluate=False)
    why = "the tied table's share of the blocks: large for small models"
    dx.eq(share, V / (12 * L * d), why, "cancel", computed=V * d / (12 * L * d**2))
    g12 = gpt2_params(24, 1024, 50000, 16, 1024)
    dx.eq(G, 354_560_000, r"GPT-2 style at 13.12's shapes ($h = 16$, $n_\mathrm{ctx} = 1024$)", "exact", g12)
    dx.holds(
        RULE.subs(EX12) / g12 - 1, ">", sp.Rational(1, 10), r"so the rule is $> 10\%$ high there ($V/(12 L d) = 17\%$)"
    )


def _llama_steps(dx: Derivation) -> None:
    """The LLaMA-style count against the rule: SwiGLU's excess and RMSNorm gains; 13.17 is within 5%."""
    swiglu = counts.mlp_params(d, bias=False, kind="swiglu")
    dx.eq(
        sp.Symbol("P_SwiGLU"),
        8 * d**2,
        r"SwiGLU, 3 $d \times d_\mathrm{ff}$, is $8d^2$ at $d_\mathrm{ff} = 8d/3$",
        "expand",
        swiglu,
    )
    why = "LLaMA style: SwiGLU excess $+$ RMSNorm gains (no biases, RoPE, untied)"
    dx.eq(M - PF(L, d, V), L * (3 * d * d_ff - 8 * d**2) + (2 * L + 1) * d, why, "expand", llama_params() - RULE)
    excess = 3 * d * d_ff - 8 * d**2
    why = r"13.17: $d_\mathrm{ff} = 11008$ gives $8d^2 + 0.78\%$ per block"
    dx.eq(excess, 1_048_576, why, "exact", excess.subs({d: 4096, d_ff: 11008}))
    l17 = llama_params(32, 4096, 32000, 32, 11008)
    dx.eq(
        M,
        6_738_415_616,
        r"LLaMA-7B's shapes: $32 \times 1{,}048{,}576 + 65 \times 4096$ more than the rule",
        "exact",
        l17,
    )
    dx.holds(1 - RULE.subs(EX17) / l17, "<", sp.Rational(1, 20), "13.17: the rule is within 5% (0.50% low)")


def _gqa_steps(dx: Derivation) -> None:
    """Grouped-query attention and a free head size change the attention count; Llama-2-70B exactly."""
    h_kv, d_h = counts.h_kv, sp.Symbol("d_head", positive=True, integer=True)
    gqa = counts.attention_params(d, h, bias=False, n_kv=h_kv)
    why = r"grouped-query attention: $K$ and $V$ have $h_\mathrm{kv}$ heads of $d/h$ ($h_\mathrm{kv}$ divides $h$)"
    dx.eq(sp.Symbol("P_attn_GQA"), 2 * d**2 + 2 * d**2 * h_kv / h, why, "expand", gqa)
    free = counts.attention_params(d, h, bias=False, n_kv=h_kv, d_head=d_h)
    why = (
        r"a head size $d_\mathrm{head}$ other than $d/h$: $Q$ is $d \times h d_\mathrm{head}$, the output projection "
        r"$h d_\mathrm{head} \times d$"
    )
    dx.eq(sp.Symbol("P_attn_dhead"), 2 * d * h * d_h + 2 * d * h_kv * d_h, why, "expand", free)
    l70 = llama_params(80, 8192, 32000, 64, 28672, n_kv=8)
    dx.eq(M, 68_976_648_192, "Llama-2-70B's shapes: 8 key/value heads for 64 (GQA)", "exact", l70)
    mha70 = llama_params(80, 8192, 32000, 64, 28672)
    why = r"counting it as multi-head attention overstates it by $80 \times 2 \times 8192 \times 7168$"
    dx.eq(sp.Symbol("P_MHA") - M, 9_395_240_960, why, "exact", mha70 - l70)


# -- the shapes asked -----------------------------------------------------------------------------


def cases(o) -> list[tuple[str, dict]]:
    """[(label, shape)] to evaluate: the exercise's values, overridden by any size or switch given, every
    size filled in and each switch None (the style's own) unless given. With 'both' and nothing given,
    both exercises; with anything given, 13.12's values fill the rest. The label stays the exercise's
    while only heads or n_ctx are given (neither changes the rule or the LLaMA-style count), else
    'custom'. Raises ValueError naming the option for heads that do not fit the width or each other."""
    given = {key: getattr(o, dest) for dest, key in SHAPE_KEYS.items() if getattr(o, dest)}
    switches = {key: {"yes": True, "no": False}.get(getattr(o, dest)) for dest, key in SWITCH_KEYS.items()}
    anything = bool(given) or any(v is not None for v in switches.values())
    keys = [o.exercise] if o.exercise != "both" else ["13.12"] if anything else list(EXERCISES)
    plain = given.keys() <= {"h", "n"} and all(v is None for v in switches.values())
    out = []
    for key in keys:
        s = EXERCISES[key] | given
        _check_heads(s)
        out.append((key if plain else "custom", complete("llama", s) | switches))
    return out


def _check_heads(s: dict) -> None:
    """Key/value heads divide the heads; the head size is even (RoPE), and d/h unless given."""
    dm, hh, kv = s["d"], s["h"], s.get("kv") or s["h"]
    if hh % kv:
        raise ValueError(f"kv_heads: must divide heads={hh}, got {kv}")
    if s.get("dh"):
        if s["dh"] % 2:
            raise ValueError(f"head_dim: must be even for RoPE (the LLaMA-style model), got {s['dh']}")
    elif dm % hh:
        raise ValueError(f"heads: must divide d_model={dm} unless a head_dim= is given, got {hh}")
    elif (dm // hh) % 2:
        raise ValueError(
            f"heads: the head size d_model={dm} / heads={hh} = {dm // hh} must be even for RoPE (the LLaMA-style "
            f"model) unless a head_dim= is given, got {hh}"
        )


def validate(o) -> None:
    """Refuse heads that do not divide the width (unless head_dim is given), key/value heads that do
    not divide the heads, and odd head sizes (RoPE)."""
    cases(o)


def random_shapes(samples: int, seed: int) -> list[dict]:
    """Small shapes from a seeded generator: h in 1..4, kv a divisor of h, L in 1..3; the head size is
    d/h (even, up to 16) for even-numbered shapes and an independent even size up to 16 for the
    others (which only torch.nn builds); GELU and SwiGLU widths, tying and biases drawn too."""
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))
    out = []
    for i in range(samples):
        hh = r(1, 4)
        divisors = [k for k in range(1, hh + 1) if hh % k == 0]
        kv = divisors[r(0, len(divisors) - 1)]
        dd = hh * 2 * r(1, 8)
        dh = dd // hh if i % 2 == 0 else 2 * r(1, 8)
        tie, bias = ((None, True, False)[r(0, 2)] for _ in range(2))
        out.append(
            dict(L=r(1, 3), d=dd, V=r(1, 300), h=hh, n=r(1, 64), ff=r(1, 4 * dd))
            | dict(kv=kv, dh=dh, gff=r(1, 4 * dd), tie=tie, bias=bias)
        )
    return out


# -- the answer and the check ---------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def _answer_line(label: str, s: dict) -> str:
    P = rule(s["L"], s["d"], s["V"])
    return f"Answer {label}: 12*{s['L']}*{s['d']}^2 + 2*{s['V']}*{s['d']} = {P:,} ~ {P / 1e9:.2f}B"


@with_options
def answer(o) -> list[str]:
    """The rule's estimate and each style's exact count for the shapes asked (what ``--no-check`` prints)."""
    lines = []
    for label, s in cases(o):
        P = rule(s["L"], s["d"], s["V"])
        lines.append(_answer_line(label, s))
        for style in BUILDERS:
            n = style_params(style, s)
            lines.append(
                f"  {STYLE[style]}{_describe(style, s)}: {n:,} by its formula (the rule is {_pct(P / n - 1)} off)"
            )
    return lines


@with_options
def check(o) -> CheckResult:
    """Every count of the shapes asked, the published anchors and the random shapes, built on the meta
    device and compared exactly with its formula; controls: wrong rules and flags left out."""
    todo = cases(o)
    pick_device(o.device)  # validates the device; every model here is built on the meta device
    res = CheckResult(CLAIM, "meta (shapes only, no memory)", o.samples, o.seed)
    for label, s in todo:
        _case_findings(res, label, s)
    _anchor_findings(res)
    _random_findings(res, o.samples, o.seed)
    res.notes += [
        "counts are exact integers of models built on the meta device; every comparison has tolerance 0 "
        "except the 5% ones (relative error = rule / exact - 1)",
        "GPT-2 style: biases, LayerNorm, 4d GELU MLP, learned positions, tied head; LLaMA style: no biases, "
        "RMSNorm, SwiGLU, RoPE, untied head (--kv-heads, --head-dim, --gelu-hidden, --swiglu-hidden, "
        "--tie-embeddings and --bias change these); the rule's shape: the project's GPT with multi-head attention "
        "and without biases, positions or tying (RMSNorm gains are all it adds)",
        f"anchors (published counts): {', '.join(ANCHORS)}; Llama-2-70B checks grouped-query attention, Gemma-7B "
        "a head size other than d/h and a tied LLaMA-style head",
        f"random shapes: {o.samples} from torch.Generator seed {o.seed}; h in 1..4, kv a divisor of h, head size d/h "
        "(even up to 16) or, every other shape, an independent even size up to 16 (torch.nn only), L in 1..3, "
        "V in 1..300, n_ctx in 1..64, GELU and SwiGLU widths in 1..4d, tying and biases drawn",
    ]
    return res


def _row(label: str, model: str, exact: int, P: int, rel: float) -> dict:
    return {"case": label, "model": model, "exact": exact, "rule": P, "rule-exact": P - exact, "rel err": _pct(rel)}


def _case_findings(res: CheckResult, label: str, s: dict) -> None:
    """One shape asked: the rule against the GPT of its own shape, then each style's two models against
    the style's formula and against the rule (13.17: within 5% of the LLaMA style)."""
    Lv, dv, Vv, hv = s["L"], s["d"], s["V"], s["h"]
    P = rule(Lv, dv, Vv)
    tag = _tag(label, complete("llama", s))
    res.notes.append(_answer_line(label, s))
    # the rule's own architecture: multi-head attention, any h dividing d (the count does not depend on h)
    mats, total = gpt_rule_shaped(dict(L=Lv, d=dv, V=Vv, h=hv if dv % hv == 0 else 1))
    res.claims.append(
        Bound.of(f"{tag}: GPT's matrices (untied, no biases or positions, MHA) = 12Ld^2 + 2Vd", mats, P, 0)
    )
    res.claims.append(
        Bound.of(f"{tag}: that GPT's total = rule + (2L+1)d RMSNorm gains", total, P + (2 * Lv + 1) * dv, 0)
    )
    res.controls.append(Bound.of(f"{tag}: those matrices = 12Ld^2 + Vd (one embedding)", mats, P - Vv * dv, 0))
    res.controls.append(Bound.of(f"{tag}: those matrices = 8Ld^2 + 2Vd (4d^2 MLP)", mats, P - 4 * Lv * dv**2, 0))
    res.table.append(_row(label, "rule's shape (GPT)", total, P, P / total - 1))
    rels = {}
    for style, (ours, theirs) in BUILDERS.items():
        want, got_gpt, got = style_params(style, s), ours(s), theirs(s)
        if got_gpt is None:
            res.notes.append(
                f"{label}: the project's GPT ties the head size to d/h, so the {STYLE[style]} model with "
                f"d_head = {s['dh']} is built from torch.nn only"
            )
        else:
            res.claims.append(Bound.of(f"{tag}: {STYLE[style]} GPT = its formula", got_gpt, want, 0))
        res.claims.append(Bound.of(f"{tag}: {STYLE[style]} from torch.nn = its formula", got, want, 0))
        for what, wrong in _without_flags(style, s):
            res.controls.append(
                Bound.of(f"{tag}: {STYLE[style]} torch.nn = its formula {what}, {wrong:,}", got, wrong, 0)
            )
        rels[style] = rel = P / got - 1
        if P != got:
            res.controls.append(Bound.of(f"{tag}: {STYLE[style]} = 12Ld^2 + 2Vd exactly", got, P, 0))
        if style == "gpt2" and abs(rel) >= 2 * WITHIN:
            res.controls.append(Bound.of(f"{tag}: rule within 5% of the GPT-2-style count", rel, 0.0, WITHIN))
        if style == "llama" and label == "13.17":
            res.claims.append(Bound.of(f"{tag}: 13.17, rule within 5% of the LLaMA-style count", rel, 0.0, WITHIN))
        res.table.append(_row(label, STYLE[style] + _describe(style, s), got, P, rel))
        res.notes.append(f"{label}: the rule is {_pct(rel)} off the {STYLE[style]} count {got:,}" + _why(style, s))
    if label == "13.17":
        ok = "yes" if abs(rels["llama"]) <= WITHIN else "NO"
        res.notes.append(
            f"13.17 within 5%: {ok}, {_pct(rels['llama'])} off LLaMA-7B's shapes (and {_pct(rels['gpt2'])} off a "
            "GPT-2-style model): at these shapes each term the rule gets wrong is at most V/12Ld = 2% of 12Ld^2"
        )


def _anchor_findings(res: CheckResult) -> None:
    """The published counts, by both models and the formula; the formula without a flag is rejected."""
    for name, (style, s, published) in ANCHORS.items():
        ours, theirs = BUILDERS[style]
        got_gpt = ours(s)
        if got_gpt is not None:
            res.claims.append(Bound.of(f"{name}: {STYLE[style]} GPT = published {published:,}", got_gpt, published, 0))
        res.claims.append(Bound.of(f"{name}: {STYLE[style]} torch.nn = published", theirs(s), published, 0))
        res.claims.append(Bound.of(f"{name}: {STYLE[style]} formula = published", style_params(style, s), published, 0))
        for what, wrong in _without_flags(style, s):
            res.controls.append(Bound.of(f"{name}: its formula {what}, {wrong:,}, = published", wrong, published, 0))


def _random_findings(res: CheckResult, samples: int, seed: int) -> None:
    """The seeded random shapes: each model against its style's formula; the worst case is reported."""
    rand = random_shapes(samples, seed)
    for style, (ours, theirs) in BUILDERS.items():
        for who, fn in (("GPT", ours), ("torch.nn", theirs)):
            pairs = [(got, style_params(style, s)) for s in rand if (got := fn(s)) is not None]
            got, want = max(pairs, key=lambda p: abs(p[0] - p[1]))
            res.claims.append(
                Bound.of(f"{STYLE[style]} {who} = formula at {len(pairs)} random shapes (worst)", got, want, 0)
            )


def _without_flags(style: str, s: dict) -> list[tuple[str, int]]:
    """(description, the style's count without one of the shape's non-default choices): each must differ."""
    a = complete(style, s)
    out = []
    if a["kv"] != a["h"]:
        out.append(("without --kv-heads (multi-head attention)", s | {"kv": a["h"]}))
    if a["dh"] * a["h"] != a["d"] and a["d"] % a["h"] == 0:
        out.append((f"without --head-dim (d_head = d/h = {a['d'] // a['h']})", s | {"dh": a["d"] // a["h"]}))
    if s.get("tie") is not None and a["tie"] != STYLE_DEFAULTS[style]["tie"]:
        out.append(("without --tie-embeddings (the style's own tying)", s | {"tie": None}))
    return [(what, style_params(style, other)) for what, other in out]


def _tag(label: str, a: dict) -> str:
    t = f"{label} (L={a['L']}, d={a['d']}, V={a['V']}"
    if a["kv"] != a["h"]:
        t += f", kv={a['kv']}/{a['h']} heads"
    if a["dh"] * a["h"] != a["d"]:
        t += f", d_head={a['dh']}"
    return t + ")"


def _describe(style: str, s: dict) -> str:
    a = complete(style, s)
    out = f" d_ff={a['ff']}" if style == "llama" else f" n_ctx={a['n']}"
    if style == "gpt2" and a["gff"] != 4 * a["d"]:
        out += f" d_ff={a['gff']}"
    if a["kv"] != a["h"]:
        out += f" kv={a['kv']}/{a['h']}"
    if a["dh"] * a["h"] != a["d"]:
        out += f" d_head={a['dh']}"
    for k in ("tie", "bias"):
        if a[k] != STYLE_DEFAULTS[style][k]:
            out += f" {'tied' if k == 'tie' else 'bias'}={'yes' if a[k] else 'no'}"
    return out


def _why(style: str, s: dict) -> str:
    """What makes the style's count differ from the rule, term by term."""
    a = complete(style, s)
    Lv, dv, Vv, hv, kv, dh = a["L"], a["d"], a["V"], a["h"], a["kv"], a["dh"]
    gelu = style == "gpt2"
    parts = []
    if kv != hv or dh * hv != dv:
        att = int(counts.attention_params(dv, hv, False, kv, dh))
        parts.append(f"attention ({kv} K/V heads of {hv}, d_head {dh}) {att - 4 * dv * dv:+,} vs 4d^2 per layer")
    if not gelu:
        parts.append(f"SwiGLU 3 d d_ff - 8d^2 = {3 * dv * a['ff'] - 8 * dv * dv:+,} per layer")
    elif a["gff"] != 4 * dv:
        parts.append(f"GELU 2 d d_ff - 8d^2 = {2 * dv * a['gff'] - 8 * dv * dv:+,} per layer")
    if a["bias"]:
        kind, width = ("gelu", a["gff"]) if gelu else ("swiglu", a["ff"])
        att_b = counts.attention_params(dv, hv, True, kv, dh) - counts.attention_params(dv, hv, False, kv, dh)
        mlp_b = counts.mlp_params(dv, width, True, kind) - counts.mlp_params(dv, width, False, kind)
        parts.append(f"biases {int(Lv * (att_b + mlp_b)):,}")
    else:
        parts.append("no biases")
    norm = "LayerNorm" if gelu else "RMSNorm"
    per = int(counts.norm_params(dv, norm.lower(), a["bias"]))
    parts.append(f"{norm}s (2L+1) x {per} = {(2 * Lv + 1) * per:,}")
    parts.append(f"positions n_ctx d = {a['n'] * dv:,}" if gelu else "RoPE has no weights")
    if a["tie"]:
        parts.append(f"tied head -Vd = {-Vv * dv:,} (V/12Ld = {Vv / (12 * Lv * dv):.1%} of the blocks)")
    else:
        parts.append("the untied head makes 2Vd right")
    return ": " + "; ".join(parts)


def figure(res: CheckResult):
    """Exact parameter counts of each model against the rule $12 L d^2 + 2 V d$, on a log axis."""
    fig, ax = plotting.subplots(width=7.5, height=4.2)
    rows = res.table
    # sizes in the model names (n_ctx=1024, d_ff=11008, d_head=256) as mathtext: $n_\mathrm{ctx} = 1024$
    labels = [
        re.sub(r"\b([a-z])_([a-z]+)=(\d+)", r"$\1_\\mathrm{\2} = \3$", f"{r['case']}: {r['model']}") for r in rows
    ]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["exact"] for r in rows], 0.4, label="exact count (built models)", color="C0")
    ax.barh([i - 0.2 for i in y], [r["rule"] for r in rows], 0.4, label="rule $12 L d^2 + 2 V d$", color="C7")
    for i, r in zip(y, rows):
        ax.annotate(
            f"rule - exact: {r['rel err']}",
            (r["exact"], i + 0.2),
            fontsize=7,
            va="center",
            xytext=(3, 0),
            textcoords="offset points",
        )
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set(xscale="log", xlabel="parameters", title=plotting.title(res, f"Exercise {NUMBER}: parameter counts"))
    ax.legend(fontsize=8, loc="lower right")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

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
(``--kv-heads``: $K$ and $V$ are $d \\times h_{kv} d_\\mathrm{head}$, so attention has
$2d^2 + 2d^2 h_{kv}/h$ weights; Llama-2-70B has 8 key/value heads for 64 and 68,976,648,192
parameters, where counting it as multi-head attention gives 78,371,889,152), a head size other than
$d/h$ (``--head-dim``: $Q$ is $d \\times h d_\\mathrm{head}$, as in Gemma-7B), MLP widths
(``--gelu-hidden``, ``--swiglu-hidden``), tying (``--tie-embeddings``) and biases (``--bias``).

The check builds the models on the meta device (shapes only, no memory) and counts their
parameters exactly: the project's ``models.gpt.GPT`` (which ties the head size to $d/h$) and,
independently, the same architectures assembled from ``torch.nn`` parts
(``nn.TransformerEncoderLayer`` for multi-head GPT-2 style, else ``nn.Linear`` and ``nn.LayerNorm``;
``nn.Linear`` and ``nn.RMSNorm`` for LLaMA style, with $h_{kv}$ key/value heads). Every count is
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

import contextlib
import sys

import sympy as sp
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from derive import counts
from derive.counts import L, V, d, d_ff, h, n_ctx
from derive.engine import Derivation
from models.gpt import GPT, GPTConfig, swiglu_hidden
from models.utils.device import pick_device
from numeric.check import Bound, CheckResult
from proofs.cli import Option

NUMBER = "13.12"
CLAIM = "P ~ 12 L d^2 + 2 V d (13.12: 0.40B); within 5% for V=32000, d=4096, L=32 (13.17: 6.7B; LLaMA-7B 6.74B)."
UNUSED_FLAGS = {"--device": "every model is built on the meta device: shapes only, no memory"}
DEFAULT_SAMPLES = 8  # seeded random small shapes counted exactly, on top of the exercises' shapes
# The exercises give L, d, V; heads and context are those of the real models with these shapes
# (GPT-2 medium for 13.12, LLaMA-7B for 13.17). Neither changes the rule.
EXERCISES = {
    "13.12": dict(layers=24, d_model=1024, vocab=50000, heads=16, n_ctx=1024),
    "13.17": dict(layers=32, d_model=4096, vocab=32000, heads=32, n_ctx=2048),
}
SHAPES = ("layers", "d_model", "vocab", "heads", "n_ctx", "swiglu_hidden", "kv_heads", "head_dim", "gelu_hidden")
SWITCHES = ("tie_embeddings", "bias")  # yes / no; unset: each style's own
LIMITS = dict(
    layers=256,
    d_model=65536,
    vocab=10_000_000,
    heads=65536,
    n_ctx=1 << 20,
    swiglu_hidden=1 << 20,
    kv_heads=65536,
    head_dim=65536,
    gelu_hidden=1 << 20,
)
_EX = "unset: the exercise's value, "
OPTIONS = [
    Option("--exercise", str, "both", "13.12, 13.17 or both; shapes given override its values (13.12's for both)"),
    Option("--layers", int, None, _EX + "24 (13.12), 32 (13.17)"),
    Option("--d-model", int, None, _EX + "1024, 4096"),
    Option("--vocab", int, None, _EX + "50000, 32000"),
    Option("--heads", int, None, "query heads, must divide d-model unless --head-dim is given; " + _EX + "16, 32"),
    Option("--kv-heads", int, None, "key/value heads (grouped-query attention), must divide --heads; unset: --heads"),
    Option(
        "--head-dim", int, None, "head size d_head, even (RoPE); unset: d-model/heads (others: torch.nn models only)"
    ),
    Option("--n-ctx", int, None, "positions of the GPT-2-style model; " + _EX + "1024, 2048"),
    Option("--gelu-hidden", int, None, "GELU width of the GPT-2-style model; unset: 4 d-model"),
    Option("--swiglu-hidden", int, None, "SwiGLU width of the LLaMA-style model; unset: 256 ceil(8d/3/256)"),
    Option(
        "--tie-embeddings", str, None, "yes or no: the output layer shares the token table; unset: GPT-2 yes, LLaMA no"
    ),
    Option("--bias", str, None, "yes or no: biases in Linear layers and LayerNorms; unset: GPT-2 yes, LLaMA no"),
]
FLAGS = {o.dest: o.flag for o in OPTIONS} | {"samples": "--samples"}
# What the two styles are; --tie-embeddings and --bias override the first two for both.
STYLE_DEFAULTS = {"gpt2": dict(tie=True, bias=True), "llama": dict(tie=False, bias=False)}
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

# -- the formulas ------------------------------------------------------------------------------

RULE = L * counts.block_matmul_params(d, h) + counts.embedding_params(V, d, pos="none") + V * d


def gpt2_formula(L=L, d=d, V=V, h=h, n_ctx=n_ctx, n_kv=None, d_head=None, d_ff=None, tie=True, bias=True):
    """Biases, LayerNorms with bias, a 4d GELU MLP, learned positions, tied output layer (by default)."""
    return counts.model_params(L, d, h, V, n_ctx, bias, "gelu", "layernorm", n_kv, d_ff, True, tie, "learned", d_head)


def llama_formula(L=L, d=d, V=V, h=h, d_ff=d_ff, n_kv=None, d_head=None, tie=False, bias=False):
    """No biases, RMSNorm, SwiGLU of width d_ff, rotary positions, untied output layer (by default)."""
    return counts.model_params(L, d, h, V, n_ctx, bias, "swiglu", "rmsnorm", n_kv, d_ff, True, tie, "rope", d_head)


def rule(L: int, d: int, V: int) -> int:
    return int(RULE.subs({counts.L: L, counts.d: d, counts.V: V}))


def derivation() -> Derivation:
    P, G, M = sp.Function("P"), sp.Symbol("P_GPT2"), sp.Symbol("P_LLaMA")
    ex12 = {L: 24, d: 1024, V: 50000}
    ex17 = {L: 32, d: 4096, V: 32000}
    dx = Derivation(
        "Exercises 13.12 and 13.17: parameters of a decoder-only Transformer",
        assumptions=[
            "L blocks of width d, h heads (h divides d; checked on inputs), vocabulary V",
            "attention: W_Q, W_K, W_V, W_O, d x d each; MLP: d x 4d and 4d x d (GELU at 4x expansion)",
            "token embedding V x d; output layer d x V, not tied to it",
            "the rule counts matrices only: no biases, norms or position tables",
        ],
    )
    dx.eq(sp.Symbol("P_attn"), 4 * d**2, "W_Q, W_K, W_V, W_O", "exact", counts.attention_params(d, h, bias=False))
    dx.eq(sp.Symbol("P_mlp"), 8 * d**2, "d x 4d and 4d x d", "exact", counts.mlp_params(d, bias=False))
    dx.eq(sp.Symbol("P_block"), 12 * d**2, "one block", "expand", counts.block_matmul_params(d, h))
    dx.eq(sp.Symbol("P_in"), V * d, "token embedding V x d", "exact", counts.embedding_params(V, d, pos="none"))
    untied = counts.non_embedding_params(L, d, h, V, tie=False) - counts.non_embedding_params(L, d, h, V)
    dx.eq(sp.Symbol("P_out"), V * d, "untied output layer d x V", "expand", untied)
    dx.eq(P(L, d, V), 12 * L * d**2 + 2 * V * d, "L blocks and both embeddings", "expand", RULE)
    dx.eq(P(24, 1024, 50000), 404_389_888, "13.12: L = 24, d = 1024, V = 50000 (~0.40B)", "exact", RULE.subs(ex12))
    dx.eq(P(32, 4096, 32000), 6_704_594_944, "13.17: L = 32, d = 4096, V = 32000 (~6.7B)", "exact", RULE.subs(ex17))
    # what the rule leaves out
    ab = counts.attention_params(d, h) - counts.attention_params(d, h, bias=False)
    mb = counts.mlp_params(d) - counts.mlp_params(d, bias=False)
    dx.eq(
        sp.Symbol("P_biases"),
        9 * L * d,
        "left out: biases, 4d (attention) + 5d (MLP) per block",
        "expand",
        L * (ab + mb),
    )
    dx.eq(
        sp.Symbol("P_LN"),
        2 * d * (2 * L + 1),
        "left out: 2L + 1 LayerNorms (gain, bias)",
        "expand",
        (2 * L + 1) * counts.norm_params(d),
    )
    dx.eq(
        sp.Symbol("P_RMS"),
        d * (2 * L + 1),
        "or 2L + 1 RMSNorms (gain only)",
        "expand",
        (2 * L + 1) * counts.norm_params(d, "rmsnorm"),
    )
    pos = counts.embedding_params(V, d, n_ctx, "learned") - counts.embedding_params(V, d, n_ctx, "rope")
    dx.eq(sp.Symbol("P_pos"), n_ctx * d, "left out: learned positions (sinusoidal, RoPE: 0)", "expand", pos)
    tie = counts.model_params(L, d, h, V, n_ctx) - counts.model_params(L, d, h, V, n_ctx, tie=False)
    dx.eq(sp.Symbol("P_tied") - sp.Symbol("P_untied"), -V * d, "tying shares the V x d table", "expand", tie)
    dx.eq(
        G - P(L, d, V),
        13 * L * d + 2 * d + n_ctx * d - V * d,
        "GPT-2 style: biases + LayerNorms + positions - tied table",
        "expand",
        gpt2_formula() - RULE,
    )
    g12 = gpt2_formula(24, 1024, 50000, 16, 1024)
    share = sp.Mul(V * d, sp.Pow(12 * L * d**2, -1, evaluate=False), evaluate=False)
    dx.eq(
        share,
        V / (12 * L * d),
        "the tied table's share of the blocks: large for small models",
        "cancel",
        computed=V * d / (12 * L * d**2),
    )
    dx.eq(G, 354_560_000, "GPT-2 style at 13.12's shapes (h = 16, n_ctx = 1024)", "exact", g12)
    dx.holds(RULE.subs(ex12) / g12 - 1, ">", sp.Rational(1, 10), "so the rule is > 10% high there (V/12Ld = 17%)")
    dx.eq(
        sp.Symbol("P_SwiGLU"),
        8 * d**2,
        "SwiGLU, 3 d x d_ff, is 8d^2 at d_ff = 8d/3",
        "expand",
        counts.mlp_params(d, bias=False, kind="swiglu"),
    )
    dx.eq(
        M - P(L, d, V),
        L * (3 * d * d_ff - 8 * d**2) + (2 * L + 1) * d,
        "LLaMA style: SwiGLU excess + RMSNorm gains (no biases, RoPE, untied)",
        "expand",
        llama_formula() - RULE,
    )
    ff17 = {d: 4096, d_ff: 11008}
    dx.eq(
        3 * d * d_ff - 8 * d**2,
        1_048_576,
        "13.17: d_ff = 11008 gives 8d^2 + 0.78% per block",
        "exact",
        (3 * d * d_ff - 8 * d**2).subs(ff17),
    )
    l17 = llama_formula(32, 4096, 32000, 32, 11008)
    dx.eq(M, 6_738_415_616, "LLaMA-7B's shapes: 32 x 1,048,576 + 65 x 4096 more than the rule", "exact", l17)
    dx.holds(1 - RULE.subs(ex17) / l17, "<", sp.Rational(1, 20), "13.17: the rule is within 5% (0.50% low)")
    h_kv, d_h = counts.h_kv, sp.Symbol("d_head", positive=True, integer=True)
    dx.eq(
        sp.Symbol("P_attn_GQA"),
        2 * d**2 + 2 * d**2 * h_kv / h,
        "grouped-query attention: K and V have h_kv heads of d/h (h_kv divides h)",
        "expand",
        counts.attention_params(d, h, bias=False, n_kv=h_kv),
    )
    dx.eq(
        sp.Symbol("P_attn_dhead"),
        2 * d * h * d_h + 2 * d * h_kv * d_h,
        "a head size d_head other than d/h: Q is d x h d_head, the output projection h d_head x d",
        "expand",
        counts.attention_params(d, h, bias=False, n_kv=h_kv, d_head=d_h),
    )
    l70 = llama_formula(80, 8192, 32000, 64, 28672, n_kv=8)
    dx.eq(M, 68_976_648_192, "Llama-2-70B's shapes: 8 key/value heads for 64 (GQA)", "exact", l70)
    mha70 = llama_formula(80, 8192, 32000, 64, 28672)
    dx.eq(
        sp.Symbol("P_MHA") - M,
        9_395_240_960,
        "counting it as multi-head attention overstates it by 80 x 2 x 8192 x 7168",
        "exact",
        mha70 - l70,
    )
    return dx


# -- models on the meta device ------------------------------------------------------------------


class _SkipInit(TorchFunctionMode):
    """Skip in-place initialisers: a meta tensor has no values to fill, and on meta torch routes
    each of them through its Python decompositions (about 1 ms each, 1 s to import the first time)."""

    NAMES = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "fill_", "zero_", "ones_", "zeros_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.NAMES:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


@contextlib.contextmanager
def shapes_only():
    """Build modules on the meta device, without initialising them: shapes and counts only."""
    with torch.device("meta"), _SkipInit():
        yield


def n_params(module: nn.Module) -> int:
    """Parameters, each shared tensor once (``parameters()`` deduplicates tied weights)."""
    return sum(p.numel() for p in module.parameters())


def _gpt(L, d, V, h, n, **kw) -> GPT:
    with shapes_only():
        return GPT(GPTConfig(block_size=n, vocab_size=V, n_layer=L, n_head=h, n_embd=d, **kw))


def gpt_rule_shaped(L, d, V, h) -> tuple[int, int]:
    """(weights of the Linear and Embedding layers, all parameters) of the project's GPT with
    nothing the rule leaves out but its RMSNorm gains."""
    m = _gpt(L, d, V, h, 1, bias=False, pos="none", norm="rmsnorm", tie_weights=False)
    mats = sum(x.weight.numel() for x in m.modules() if isinstance(x, nn.Linear | nn.Embedding))
    return mats, m.num_params()


def arch(style: str, s: dict) -> dict:
    """Every size and switch of one model of ``style``: the shape ``s`` (L, d, V, h, n and optionally
    ff, kv, dh, gff, tie, bias; None or absent means the default) completed with multi-head
    attention (kv = h), head size d / h, a 4d GELU MLP, LLaMA's SwiGLU width, and the style's own
    tying and biases."""
    d, h = s["d"], s["h"]
    out = dict(L=s["L"], d=d, V=s["V"], h=h, n=s["n"])
    out["kv"] = s.get("kv") or h
    out["dh"] = s.get("dh") or d // h
    out["ff"] = s.get("ff") or swiglu_hidden(d, 256)
    out["gff"] = s.get("gff") or 4 * d
    for k, v in STYLE_DEFAULTS[style].items():
        out[k] = v if s.get(k) is None else bool(s[k])
    return out


def _shape(L, d, V, h, n, ff, kv, dh, gff, tie, bias) -> dict:
    return dict(L=L, d=d, V=V, h=h, n=n, ff=ff, kv=kv, dh=dh, gff=gff, tie=tie, bias=bias)


def gpt_gpt2(L, d, V, h, n, ff=None, kv=None, dh=None, gff=None, tie=None, bias=None) -> int | None:
    """The project's GPT in GPT-2 style; None for a head size other than d/h, which it cannot build."""
    a = arch("gpt2", _shape(L, d, V, h, n, ff, kv, dh, gff, tie, bias))
    if a["dh"] * h != d:
        return None
    return _gpt(
        L, d, V, h, n, n_kv_head=a["kv"], mlp_hidden=a["gff"], tie_weights=a["tie"], bias=a["bias"]
    ).num_params()


def gpt_llama(L, d, V, h, n, ff=None, kv=None, dh=None, gff=None, tie=None, bias=None) -> int | None:
    """The project's GPT in LLaMA style; None for a head size other than d/h, which it cannot build."""
    a = arch("llama", _shape(L, d, V, h, n, ff, kv, dh, gff, tie, bias))
    if a["dh"] * h != d:
        return None
    m = _gpt(
        L,
        d,
        V,
        h,
        n,
        n_kv_head=a["kv"],
        bias=a["bias"],
        pos="rope",
        norm="rmsnorm",
        mlp="swiglu",
        mlp_hidden=a["ff"],
        tie_weights=a["tie"],
    )
    return m.num_params()


def _attention_linears(d: int, a: dict) -> dict:
    """q (d -> h d_head), k and v (d -> kv d_head), o (h d_head -> d), as Hugging Face lays them out."""
    lin = lambda i, o: nn.Linear(i, o, bias=a["bias"])
    q, kv = a["h"] * a["dh"], a["kv"] * a["dh"]
    return dict(q=lin(d, q), k=lin(d, kv), v=lin(d, kv), o=lin(q, d))


def _head(wte: nn.Embedding, d: int, V: int, tie: bool) -> nn.Linear:
    head = nn.Linear(d, V, bias=False)
    if tie:
        head.weight = wte.weight
    return head


def torch_gpt2(L, d, V, h, n, ff=None, kv=None, dh=None, gff=None, tie=None, bias=None) -> int:
    """GPT-2 from torch.nn parts: pre-norm nn.TransformerEncoderLayer blocks (MultiheadAttention, GELU
    MLP, two LayerNorms) for multi-head attention with head size d/h, else the same block from
    nn.Linear (q, k, v, o with kv key/value heads of size dh) and nn.LayerNorm; token and position
    tables, a final LayerNorm, an output layer tied to the token table or not."""
    a = arch("gpt2", _shape(L, d, V, h, n, ff, kv, dh, gff, tie, bias))
    b, gff = a["bias"], a["gff"]
    with shapes_only():
        if a["kv"] == h and a["dh"] * h == d:
            blocks = [
                nn.TransformerEncoderLayer(d, h, gff, 0.0, norm_first=True, batch_first=True, bias=b) for _ in range(L)
            ]
        else:
            lin = lambda i, o: nn.Linear(i, o, bias=b)
            blocks = [
                nn.ModuleDict(
                    _attention_linears(d, a)
                    | dict(fc=lin(d, gff), proj=lin(gff, d), ln1=nn.LayerNorm(d, bias=b), ln2=nn.LayerNorm(d, bias=b))
                )
                for _ in range(L)
            ]
        wte = nn.Embedding(V, d)
        parts = [wte, nn.Embedding(n, d), *blocks, nn.LayerNorm(d, bias=b), _head(wte, d, V, a["tie"])]
        return n_params(nn.ModuleList(parts))


def torch_llama(L, d, V, h, n, ff=None, kv=None, dh=None, gff=None, tie=None, bias=None) -> int:
    """LLaMA from torch.nn parts, laid out like Hugging Face's LlamaForCausalLM (q/k/v/o_proj with
    kv key/value heads of size dh, gate/up/down_proj, two RMSNorms per layer, final norm, lm_head
    untied unless ``tie``; RoPE has no weights)."""
    a = arch("llama", _shape(L, d, V, h, n, ff, kv, dh, gff, tie, bias))
    ff = a["ff"]
    with shapes_only():
        lin = lambda i, o: nn.Linear(i, o, bias=a["bias"])
        layer = lambda: nn.ModuleDict(
            _attention_linears(d, a)
            | dict(
                gate=lin(d, ff),
                up=lin(d, ff),
                down=lin(ff, d),
                norm1=nn.RMSNorm(d, eps=1e-5),
                norm2=nn.RMSNorm(d, eps=1e-5),
            )
        )
        wte = nn.Embedding(V, d)
        parts = [wte, *(layer() for _ in range(L)), nn.RMSNorm(d, eps=1e-5), _head(wte, d, V, a["tie"])]
        return n_params(nn.ModuleList(parts))


def _formula(style: str, s: dict) -> int:
    """The style's count from derive.counts (head size passed only where it is not d/h)."""
    a = arch(style, s)
    dh = None if a["dh"] * a["h"] == a["d"] else a["dh"]
    if style == "gpt2":
        return int(gpt2_formula(a["L"], a["d"], a["V"], a["h"], a["n"], a["kv"], dh, a["gff"], a["tie"], a["bias"]))
    return int(llama_formula(a["L"], a["d"], a["V"], a["h"], a["ff"], a["kv"], dh, a["tie"], a["bias"]))


BUILDERS = {"gpt2": (gpt_gpt2, torch_gpt2), "llama": (gpt_llama, torch_llama)}
STYLE = {"gpt2": "GPT-2 style", "llama": "LLaMA style"}

# -- options ----------------------------------------------------------------------------------


def _size(key: str, v, limit: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limit:
        raise ValueError(f"{FLAGS[key]}: must be a positive integer at most {limit:,}, got {v!r}")
    return v


def _switch(key: str, v) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("yes", "no"):
        return v.strip().lower() == "yes"
    raise ValueError(f"{FLAGS[key]}: must be yes or no, got {v!r}")


def cases(exercise="both", **opts) -> list[tuple[str, dict]]:
    """[(label, shape)] to evaluate: the exercise's values, overridden by any option given. With
    'both' and no option given, both exercises; with options given, 13.12's values fill the rest.
    The label stays the exercise's while only --heads or --n-ctx are given (neither changes the rule
    or the LLaMA-style count); otherwise it is 'custom'."""
    unknown = sorted(opts.keys() - {*SHAPES, *SWITCHES})
    if unknown:
        raise TypeError(f"cases() got unexpected options {unknown}")
    if exercise not in (*EXERCISES, "both"):
        raise ValueError(f"--exercise: must be 13.12, 13.17 or both, got {exercise!r}")
    given = {k: _size(k, opts.get(k), LIMITS[k]) for k in SHAPES}
    given = {k: v for k, v in given.items() if v is not None}
    sw = {k: _switch(k, opts.get(k)) for k in SWITCHES}
    anything = bool(given) or any(v is not None for v in sw.values())
    keys = list(EXERCISES) if exercise == "both" and not anything else ["13.12" if exercise == "both" else exercise]
    plain = given.keys() <= {"heads", "n_ctx"} and all(v is None for v in sw.values())
    out = []
    for key in keys:
        s = EXERCISES[key] | given
        dm, hh = s["d_model"], s["heads"]
        kv = s.get("kv_heads", hh)
        if hh % kv:
            raise ValueError(f"--kv-heads: must divide --heads ({hh}), got {kv}")
        if "head_dim" in s:
            dh = s["head_dim"]
            if dh % 2:
                raise ValueError(f"--head-dim: must be even for RoPE (the LLaMA-style model), got {dh}")
        else:
            if dm % hh:
                raise ValueError(f"--heads: must divide --d-model ({dm}; or give --head-dim), got {hh}")
            dh = dm // hh
            if dh % 2:
                raise ValueError(
                    f"--heads: the head size --d-model/--heads = {dm}/{hh} = {dh} must be even for RoPE "
                    f"(the LLaMA-style model; or give --head-dim), got {hh}"
                )
        shape = _shape(
            s["layers"],
            dm,
            s["vocab"],
            hh,
            s["n_ctx"],
            s.get("swiglu_hidden") or swiglu_hidden(dm, 256),
            kv,
            dh,
            s.get("gelu_hidden") or 4 * dm,
            sw["tie_embeddings"],
            sw["bias"],
        )
        out.append((key if plain else "custom", shape))
    return out


def validate(exercise="both", **opts) -> None:
    cases(exercise, **opts)


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


# -- the check ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def _tag(label: str, a: dict) -> str:
    t = f"{label} (L={a['L']}, d={a['d']}, V={a['V']}"
    if a["kv"] != a["h"]:
        t += f", kv={a['kv']}/{a['h']} heads"
    if a["dh"] * a["h"] != a["d"]:
        t += f", d_head={a['dh']}"
    return t + ")"


def _what_flags_change(style: str, s: dict) -> list[tuple[str, dict]]:
    """(description, the shape without one of its non-default choices): each must change the count."""
    a = arch(style, s)
    out = []
    if a["kv"] != a["h"]:
        out.append(("without --kv-heads (multi-head attention)", s | {"kv": a["h"]}))
    if a["dh"] * a["h"] != a["d"] and a["d"] % a["h"] == 0:
        out.append((f"without --head-dim (d_head = d/h = {a['d'] // a['h']})", s | {"dh": a["d"] // a["h"]}))
    if s.get("tie") is not None and a["tie"] != STYLE_DEFAULTS[style]["tie"]:
        out.append(("without --tie-embeddings (the style's own tying)", s | {"tie": None}))
    return out


def answer(exercise="both", **opts) -> list[str]:
    """The rule's estimate and each style's exact count for the shapes asked (what ``--no-check`` prints)."""
    lines = []
    for label, s in cases(exercise, **opts):
        P = rule(s["L"], s["d"], s["V"])
        lines.append(f"Answer {label}: 12*{s['L']}*{s['d']}^2 + 2*{s['V']}*{s['d']} = {P:,} ~ {P / 1e9:.2f}B")
        for style in BUILDERS:
            n = _formula(style, s)
            lines.append(
                f"  {STYLE[style]}{_describe(style, s)}: {n:,} by its formula (the rule is {_pct(P / n - 1)} off)"
            )
    return lines


def check(device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, exercise="both", **opts) -> CheckResult:
    todo = cases(exercise, **opts)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"--samples: must be a positive integer, got {samples!r}")
    pick_device(device)  # validates --device; every model here is built on the meta device
    res = CheckResult(CLAIM, "meta (shapes only, no memory)", samples, seed)
    for label, s in todo:
        Lv, dv, Vv, hv = s["L"], s["d"], s["V"], s["h"]
        P = rule(Lv, dv, Vv)
        tag = _tag(label, arch("llama", s))
        res.notes.append(f"Answer {label}: 12*{Lv}*{dv}^2 + 2*{Vv}*{dv} = {P:,} ~ {P / 1e9:.2f}B")
        # the rule's own architecture: multi-head attention, any h dividing d (the count does not depend on h)
        mats, total = gpt_rule_shaped(Lv, dv, Vv, hv if dv % hv == 0 else 1)
        res.claims.append(
            Bound.of(f"{tag}: GPT's matrices (untied, no biases or positions, MHA) = 12Ld^2 + 2Vd", mats, P, 0)
        )
        res.claims.append(
            Bound.of(f"{tag}: that GPT's total = rule + (2L+1)d RMSNorm gains", total, P + (2 * Lv + 1) * dv, 0)
        )
        res.controls.append(Bound.of(f"{tag}: those matrices = 12Ld^2 + Vd (one embedding)", mats, P - Vv * dv, 0))
        res.controls.append(Bound.of(f"{tag}: those matrices = 8Ld^2 + 2Vd (4d^2 MLP)", mats, P - 4 * Lv * dv**2, 0))
        res.table.append(
            {
                "case": label,
                "model": "rule's shape (GPT)",
                "exact": total,
                "rule": P,
                "rule-exact": P - total,
                "rel err": _pct(P / total - 1),
            }
        )
        rels = {}
        for style, (ours, theirs) in BUILDERS.items():
            a = arch(style, s)
            want = _formula(style, s)
            got_gpt, got = ours(**s), theirs(**s)
            if got_gpt is None:
                res.notes.append(
                    f"{label}: the project's GPT ties the head size to d/h, so the {STYLE[style]} model with "
                    f"d_head = {a['dh']} is built from torch.nn only"
                )
            else:
                res.claims.append(Bound.of(f"{tag}: {STYLE[style]} GPT = its formula", got_gpt, want, 0))
            res.claims.append(Bound.of(f"{tag}: {STYLE[style]} from torch.nn = its formula", got, want, 0))
            for what, other in _what_flags_change(style, s):
                wrong = _formula(style, other)
                res.controls.append(
                    Bound.of(f"{tag}: {STYLE[style]} torch.nn = its formula {what}, {wrong:,}", got, wrong, 0)
                )
            rel = P / got - 1
            if P != got:
                res.controls.append(Bound.of(f"{tag}: {STYLE[style]} = 12Ld^2 + 2Vd exactly", got, P, 0))
            if style == "gpt2" and abs(rel) >= 2 * WITHIN:
                res.controls.append(Bound.of(f"{tag}: rule within 5% of the GPT-2-style count", rel, 0.0, WITHIN))
            if style == "llama" and label == "13.17":
                res.claims.append(Bound.of(f"{tag}: 13.17, rule within 5% of the LLaMA-style count", rel, 0.0, WITHIN))
            res.table.append(
                {
                    "case": label,
                    "model": STYLE[style] + _describe(style, s),
                    "exact": got,
                    "rule": P,
                    "rule-exact": P - got,
                    "rel err": _pct(rel),
                }
            )
            res.notes.append(f"{label}: the rule is {_pct(rel)} off the {STYLE[style]} count {got:,}" + _why(style, s))
            rels[style] = rel
        if label == "13.17":
            ok = "yes" if abs(rels["llama"]) <= WITHIN else "NO"
            res.notes.append(
                f"13.17 within 5%: {ok}, {_pct(rels['llama'])} off LLaMA-7B's shapes (and {_pct(rels['gpt2'])} off a "
                "GPT-2-style model): at these shapes each term the rule gets wrong is at most V/12Ld = 2% of 12Ld^2"
            )
    for name, (style, s, published) in ANCHORS.items():
        ours, theirs = BUILDERS[style]
        got_gpt = ours(**s)
        if got_gpt is not None:
            res.claims.append(Bound.of(f"{name}: {STYLE[style]} GPT = published {published:,}", got_gpt, published, 0))
        res.claims.append(Bound.of(f"{name}: {STYLE[style]} torch.nn = published", theirs(**s), published, 0))
        res.claims.append(Bound.of(f"{name}: {STYLE[style]} formula = published", _formula(style, s), published, 0))
        for what, other in _what_flags_change(style, s):
            wrong = _formula(style, other)
            res.controls.append(Bound.of(f"{name}: its formula {what}, {wrong:,}, = published", wrong, published, 0))
    rand = random_shapes(samples, seed)
    for style, (ours, theirs) in BUILDERS.items():
        for who, fn in (("GPT", ours), ("torch.nn", theirs)):
            pairs = [(got, _formula(style, s)) for s in rand if (got := fn(**s)) is not None]
            got, want = max(pairs, key=lambda p: abs(p[0] - p[1]))
            res.claims.append(
                Bound.of(f"{STYLE[style]} {who} = formula at {len(pairs)} random shapes (worst)", got, want, 0)
            )
    res.notes += [
        "counts are exact integers of models built on the meta device; every comparison has tolerance 0 "
        "except the 5% ones (relative error = rule / exact - 1)",
        "GPT-2 style: biases, LayerNorm, 4d GELU MLP, learned positions, tied head; LLaMA style: no biases, "
        "RMSNorm, SwiGLU, RoPE, untied head (--kv-heads, --head-dim, --gelu-hidden, --swiglu-hidden, "
        "--tie-embeddings and --bias change these); the rule's shape: the project's GPT with multi-head attention "
        "and without biases, positions or tying (RMSNorm gains are all it adds)",
        f"anchors (published counts): {', '.join(ANCHORS)}; Llama-2-70B checks grouped-query attention, Gemma-7B "
        "a head size other than d/h and a tied LLaMA-style head",
        f"random shapes: {samples} from torch.Generator seed {seed}; h in 1..4, kv a divisor of h, head size d/h "
        "(even up to 16) or, every other shape, an independent even size up to 16 (torch.nn only), L in 1..3, "
        "V in 1..300, n_ctx in 1..64, GELU and SwiGLU widths in 1..4d, tying and biases drawn",
    ]
    return res


def _describe(style: str, s: dict) -> str:
    a = arch(style, s)
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
    a = arch(style, s)
    Lv, dv, Vv, hv, kv, dh = a["L"], a["d"], a["V"], a["h"], a["kv"], a["dh"]
    parts = []
    if kv != hv or dh * hv != dv:
        mha = 4 * dv * dv
        att = int(counts.attention_params(dv, hv, False, kv, dh))
        parts.append(f"attention ({kv} K/V heads of {hv}, d_head {dh}) {att - mha:+,} vs 4d^2 per layer")
    if style == "gpt2":
        if a["gff"] != 4 * dv:
            parts.append(f"GELU 2 d d_ff - 8d^2 = {2 * dv * a['gff'] - 8 * dv * dv:+,} per layer")
    else:
        parts.append(f"SwiGLU 3 d d_ff - 8d^2 = {3 * dv * a['ff'] - 8 * dv * dv:+,} per layer")
    if a["bias"]:
        kind = "gelu" if style == "gpt2" else "swiglu"
        width = a["gff"] if style == "gpt2" else a["ff"]
        att_b = counts.attention_params(dv, hv, True, kv, dh) - counts.attention_params(dv, hv, False, kv, dh)
        mlp_b = counts.mlp_params(dv, width, True, kind) - counts.mlp_params(dv, width, False, kind)
        parts.append(f"biases {int(Lv * (att_b + mlp_b)):,}")
    else:
        parts.append("no biases")
    norm = "LayerNorm" if style == "gpt2" else "RMSNorm"
    per = int(counts.norm_params(dv, norm.lower(), a["bias"]))
    parts.append(f"{norm}s (2L+1) x {per} = {(2 * Lv + 1) * per:,}")
    if style == "gpt2":
        parts.append(f"positions n_ctx d = {a['n'] * dv:,}")
    else:
        parts.append("RoPE has no weights")
    if a["tie"]:
        parts.append(f"tied head -Vd = {-Vv * dv:,} (V/12Ld = {Vv / (12 * Lv * dv):.1%} of the blocks)")
    else:
        parts.append("the untied head makes 2Vd right")
    return ": " + "; ".join(parts)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

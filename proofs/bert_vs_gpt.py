r"""Exercise 13.7: BERT against GPT, compared on the project's own models.

BERT (Devlin et al. 2019) is an encoder: every position attends to every other (a bidirectional mask), and it
is pretrained by masked-language modelling, predicting about 15 % of the tokens from both sides. GPT (Radford
et al. 2018, 2019) is a decoder: position $i$ attends to positions up to $i$ (a causal mask), and it is
pretrained to predict every next token from its prefix. So BERT's vectors use the whole text, which suits
understanding tasks: one fine-tunes it with a small head on the pooled ``[CLS]`` vector (classification,
tagging, extractive question answering, embeddings), but it cannot write text. GPT's left-to-right model
generates: one prompts it, or fine-tunes it to continue text (chat, completion, few-shot tasks in context).

The parameter counts are derived with ``derive.counts``. One block has $12 d^2 + 13 d$ weights in either
model (post-norm BERT and pre-norm GPT-2 hold the same two LayerNorms). BERT-base adds token, position and
token-type tables, an embedding LayerNorm and a pooler, so
$P_\mathrm{BERT} = L(12 d^2 + 13 d) + (V + n_\mathrm{ctx} + n_\mathrm{type}) d + 2 d + d^2 + d$: 109,482,240
at $V = 30522$, $n_\mathrm{ctx} = 512$, $n_\mathrm{type} = 2$, $L = 12$, $d = 768$ (the published 110M, and
exactly Hugging Face's ``BertModel`` for bert-base-uncased). GPT-2 small, its output layer tied to the token
table, has $P_\mathrm{GPT} = L(12 d^2 + 13 d) + (V + n_\mathrm{ctx}) d + 2 d$: 124,439,808 at $V = 50257$,
$n_\mathrm{ctx} = 1024$ (its paper's "117M" was a miscount). At equal vocabulary and context the two differ by
the pooler and the token types alone, $d^2 + (n_\mathrm{type} + 1) d$. A causal mask lets $T(T + 1)/2$ of the
$T^2$ query-key pairs through: half, as $T$ grows.

The check builds both base models on the meta device (shapes only): ``models.encoder.Encoder`` with BERT's
switches (token types, embedding LayerNorm, pooler; post-norm) and ``models.gpt.GPT``, and both again from
``torch.nn`` parts. Each count equals its formula and the published count exactly (tolerance 0), and so does
the masked-LM layout (``BertForMaskedLM``, 109,514,298). Controls, the same exact test: BERT without its
pooler, BERT without token types, and GPT-2 with an untied output layer miss the published counts. Then it
measures the masks in behaviour: in ``samples`` seeded float64 trials, a small encoder and GPT read a random
sequence and each of its copies with one token changed; an output depends on a token when it moves by more
than $10^{-9}$. The encoder's dependencies are all $T^2$ pairs (position 0 moves with every later token), the
GPT's exactly the causal $T(T + 1)/2$, and its position 0 does not move at all: each sequence runs alone, so an
output that depends on nothing changed comes out bitwise the same (change exactly 0). The reversed claims
(the encoder's position 0 ignores later tokens; the GPT's does not; the encoder is causal; the GPT is
bidirectional) are rejected. The table is built from these models; its last two rows, the uses, are the
chapter's answer in words.
"""

from __future__ import annotations

import sympy as sp
import torch
from torch import nn

from derive import counts
from derive.counts import L, V, d, h, n_ctx
from derive.engine import Derivation
from derive.model_styles import gpt2_params
from models.encoder import Encoder, mlm_loss
from models.gpt import GPT, GPTConfig
from models.training.mlm import RATE as MLM_RATE
from models.utils.device import describe, generator, one_thread, pick_device
from numeric.check import Bound, CheckResult
from numeric.meta_models import n_params, shapes_only, torch_gpt2
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.7"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    "BERT is a bidirectional encoder pretrained by masked-LM, GPT a causal decoder pretrained on the next token; "
    "at base size they have 109,482,240 and 124,439,808 parameters."
)
DEFAULT_SAMPLES = 4  # trials: fresh random small models and a fresh random sequence each
MAX_SAMPLES = 1000
SAMPLES_WHY = "time: about 0.05 s a trial at the defaults, 7 s at 256 tokens, on one busy CPU core"
MAX_SECONDS = 420  # the longest check validate lets start
OPTIONS = [
    Option(
        "--tokens",
        int,
        12,
        "sequence length T of the behaviour check (T + 1 sequences per trial)",
        lo=2,
        hi=256,
        why="time: T + 1 passes of T tokens through each model, 7 s a trial at 256 tokens and 2 layers",
    ),
    Option(
        "--layers",
        int,
        2,
        "blocks of the small encoder and GPT of the behaviour check",
        lo=1,
        hi=24,
        why="time: each block adds 2.5 s a trial at 256 tokens; memory stays below 100 MB",
    ),
]
CHANGE_TOL = 1e-9  # an output "depends" on a token when it moves by more; float64 rounding is ~1e-16
SMALL = dict(vocab_size=50, n_head=4, n_embd=32, dropout=0.0)  # the behaviour check's models
BERT_SWITCHES = dict(n_types=2, emb_norm=True, pooler=True)  # Devlin et al. 2019 (models.encoder)
TASK_HEADS = ("head", "mlm_bias", "mlm_transform")  # the encoder's parts outside BertModel

# Published configurations and counts (Hugging Face, the released checkpoints):
BERT_BASE = dict(V=30522, n=512, types=2, L=12, d=768, h=12)  # bert-base-uncased, d_ff = 3072
GPT2_SMALL = dict(V=50257, n=1024, L=12, d=768, h=12)  # gpt2, d_ff = 3072, tied output layer
PUBLISHED = {"BertModel": 109_482_240, "BertForMaskedLM": 109_514_298, "GPT-2 small": 124_439_808}

# -- the derivation ------------------------------------------------------------------------------

n_type, T = sp.symbols("n_type T", positive=True, integer=True)
BLOCK = counts.block_params(d, h)  # 12 d^2 + 13 d, the same in both
POOLER = d * d + d  # dense d x d with bias; tanh has no weights
BERT = L * BLOCK + counts.embedding_params(V, d, n_ctx) + n_type * d + counts.norm_params(d) + POOLER
GPT2 = gpt2_params(L, d, V, h, n_ctx)  # tied output layer
MLM_HEAD = d * d + d + counts.norm_params(d) + V  # transform (dense + LayerNorm) and output bias, tied weights


def _at(expr, s: dict) -> int:
    """``expr`` at the sizes of ``s`` (a BERT_BASE or GPT2_SMALL dict)."""
    return int(expr.subs({V: s["V"], n_ctx: s["n"], n_type: s.get("types", 0), L: s["L"], d: s["d"], h: s["h"]}))


def derivation() -> Derivation:
    """Both parameter counts in closed form and at base size, their difference, the counts the controls test,
    and the number of query-key pairs each mask lets through."""
    dx = Derivation(
        "Exercise 13.7: BERT-base against GPT-2 small",
        assumptions=[
            r"one block: attention $4 d^2 + 4 d$, GELU MLP $d \times 4d$ and back $8 d^2 + 5 d$, two LayerNorms "
            "$4 d$; BERT's post-norm and GPT-2's pre-norm blocks hold the same weights",
            r"BERT-base (Devlin et al. 2019): $V = 30522$, $n_\mathrm{ctx} = 512$, $n_\mathrm{type} = 2$, $L = 12$, "
            "$d = 768$, $h = 12$; token, position and token-type tables, an embedding LayerNorm, a pooler; "
            "counted without pretraining heads, as Hugging Face's `BertModel`",
            r"GPT-2 small (Radford et al. 2019): $V = 50257$, $n_\mathrm{ctx} = 1024$, $L = 12$, $d = 768$, "
            "$h = 12$; token and position tables, a final LayerNorm, the output layer tied to the token table",
            "mask: with the causal mask query $i$ sees keys 1 to $i$; without it, all $T$",
        ],
    )
    S = sp.Symbol
    dx.eq(S("P_block"), 12 * d**2 + 13 * d, "one block of either model", "expand", BLOCK)
    dx.eq(S("P_pool"), d**2 + d, r"BERT's pooler: dense $d \times d$ with bias, then tanh", "expand", POOLER)
    bert = L * (12 * d**2 + 13 * d) + (V + n_ctx + n_type) * d + 2 * d + d**2 + d
    dx.eq(S("P_BERT"), bert, "blocks, three tables, embedding LayerNorm, pooler", "expand", BERT)
    dx.eq(S("P_BERT(base)"), 109_482_240, "at BERT-base's sizes: the published 110M", "exact", _at(BERT, BERT_BASE))
    gpt = L * (12 * d**2 + 13 * d) + (V + n_ctx) * d + 2 * d
    dx.eq(S("P_GPT2"), gpt, "blocks, two tables, final LayerNorm; the tied output layer adds none", "expand", GPT2)
    dx.eq(S("P_GPT2(small)"), 124_439_808, "at GPT-2 small's sizes", "exact", _at(GPT2, GPT2_SMALL))
    dx.eq(
        S("P_BERT - P_GPT2"),
        d**2 + (n_type + 1) * d,
        "at equal $V$ and $n_\\mathrm{ctx}$: the pooler and token types (the two models' extra LayerNorms cancel)",
        "expand",
        BERT - GPT2,
    )
    dx.eq(
        S("P_BERT-MLM(base)"),
        109_514_298,
        "the masked-LM layout: no pooler; dense, LayerNorm and an output bias of $V$ before the tied output",
        "exact",
        _at(BERT - POOLER + MLM_HEAD, BERT_BASE),
    )
    _control_steps(dx)
    i = sp.Symbol("i", positive=True, integer=True)
    pairs = sp.Function("pairs")
    dx.eq(pairs(S("causal"), T), T * (T + 1) / 2, "query $i$ sees $i$ keys", "factor", sp.summation(i, (i, 1, T)))
    dx.limit((T * (T + 1) / 2) / T**2, T, sp.oo, sp.Rational(1, 2), "of the $T^2$ pairs, half as $T$ grows")
    return dx


def _control_steps(dx: Derivation) -> None:
    """The counts the negative controls test: each misses its published count."""
    S = sp.Symbol
    dx.eq(S("P_BERT - P_pool"), 108_891_648, "BERT-base without its pooler", "exact", _at(BERT - POOLER, BERT_BASE))
    untied = _at(GPT2 + V * d, GPT2_SMALL)
    dx.eq(S("P_GPT2,untied"), 163_037_184, r"GPT-2 small with an untied output layer, $+V d$", "exact", untied)


# -- counting on the meta device -----------------------------------------------------------------


def bert(s: dict = BERT_BASE, **switches) -> Encoder:
    """BERT of sizes ``s`` from the project's encoder, on the meta device: post-norm, with BERT's switches
    (``switches`` override them)."""
    cfg = GPTConfig(block_size=s["n"], vocab_size=s["V"], n_layer=s["L"], n_head=s["h"], n_embd=s["d"], prenorm=False)
    with shapes_only():
        return Encoder(cfg, **(BERT_SWITCHES | {"n_types": s["types"]} | switches))


def gpt2(s: dict = GPT2_SMALL, tie: bool = True) -> GPT:
    """GPT-2 of sizes ``s`` from the project's GPT, on the meta device."""
    cfg = GPTConfig(block_size=s["n"], vocab_size=s["V"], n_layer=s["L"], n_head=s["h"], n_embd=s["d"], tie_weights=tie)
    with shapes_only():
        return GPT(cfg)


def body_params(m: Encoder, heads: tuple[str, ...] = TASK_HEADS) -> int:
    """Parameters of ``m`` outside its task ``heads`` (top-level names), each tensor once."""
    return sum(p.numel() for n, p in m.named_parameters() if n.split(".")[0] not in heads)


def torch_bert(s: dict = BERT_BASE) -> int:
    """BERT from ``torch.nn`` parts on the meta device: three ``nn.Embedding`` tables, ``nn.LayerNorm``,
    L post-norm ``nn.TransformerEncoderLayer`` blocks (4d wide) and an ``nn.Linear`` pooler."""
    dd = s["d"]
    with shapes_only():
        tables = [nn.Embedding(k, dd) for k in (s["V"], s["n"], s["types"])]
        layers = [nn.TransformerEncoderLayer(dd, s["h"], 4 * dd, 0.0, batch_first=True) for _ in range(s["L"])]
        return n_params(nn.ModuleList([*tables, nn.LayerNorm(dd), *layers, nn.Linear(dd, dd)]))


def breakdown(m: nn.Module) -> dict[str, int]:
    """Parameters by top-level part of ``m`` (embedding tables, blocks, norms, pooler), each tensor once."""
    out: dict[str, int] = {}
    for n, p in m.named_parameters():
        part = n.split(".")[0]
        if part not in TASK_HEADS:
            out[part] = out.get(part, 0) + p.numel()
    return out


def _exact(what: str, measured: int, target: int) -> Bound:
    """``measured == target`` exactly (tolerance 0), both numbers written out in the claim."""
    return Bound.of(f"{what} ({measured:,} vs {target:,})", measured, target, 0)


def count_findings() -> tuple[list, list, dict]:
    """Exact counts (tolerance 0): claims, controls, and the models and numbers the table and figure use."""
    enc, gpt = bert(), gpt2()
    got = {
        "BERT": body_params(enc),
        "BERT-MLM": body_params(bert(pooler=False, mlm_transform=True), heads=("head",)),
        "GPT": n_params(gpt),
        "BERT torch.nn": torch_bert(),
        "GPT torch.nn": torch_gpt2(GPT2_SMALL),
    }
    formula = {"BERT": _at(BERT, BERT_BASE), "GPT": _at(GPT2, GPT2_SMALL)}
    formula["BERT-MLM"] = _at(BERT - POOLER + MLM_HEAD, BERT_BASE)
    pub = PUBLISHED
    claims = [
        _exact("BERT-base, models.encoder (meta) = its closed form", got["BERT"], formula["BERT"]),
        _exact("BERT-base, models.encoder (meta) = BertModel's published count", got["BERT"], pub["BertModel"]),
        _exact("BERT-base from torch.nn parts = BertModel's count", got["BERT torch.nn"], pub["BertModel"]),
        _exact("masked-LM layout, models.encoder (meta) = its closed form", got["BERT-MLM"], formula["BERT-MLM"]),
        _exact("masked-LM layout = BertForMaskedLM's count", got["BERT-MLM"], pub["BertForMaskedLM"]),
        _exact("GPT-2 small, models.gpt (meta) = its closed form", got["GPT"], formula["GPT"]),
        _exact("GPT-2 small, models.gpt (meta) = the released count", got["GPT"], pub["GPT-2 small"]),
        _exact("GPT-2 small from torch.nn parts = the released count", got["GPT torch.nn"], pub["GPT-2 small"]),
    ]
    controls = [
        _exact("BERT-base without its pooler = BertModel's count", body_params(bert(pooler=False)), pub["BertModel"]),
        _exact("BERT-base without token types = BertModel's count", body_params(bert(n_types=0)), pub["BertModel"]),
        _exact("GPT-2 small, output layer untied = the released count", n_params(gpt2(tie=False)), pub["GPT-2 small"]),
    ]
    return claims, controls, {"bert": enc, "gpt": gpt, "counts": got}


# -- behaviour: which outputs move when one token changes ----------------------------------------


def small_models(layers: int, tokens: int, gen: torch.Generator, dev) -> tuple[Encoder, GPT]:
    """A BERT-style encoder (post-norm, BERT's switches and MLM transform) and a GPT of the same small sizes, in
    float64 eval mode, their weights drawn from ``gen``: matrices N(0, 1/fan_in), norm gains 1 + N(0, 0.01),
    other vectors N(0, 0.01). Built under a forked global RNG, which they leave as it was."""
    enc_cfg = GPTConfig(block_size=tokens, n_layer=layers, prenorm=False, **SMALL)
    with torch.random.fork_rng(devices=[]):
        models = (
            Encoder(enc_cfg, mlm_transform=True, **BERT_SWITCHES),
            GPT(GPTConfig(block_size=tokens, n_layer=layers, **SMALL)),
        )
    for m in models:
        m.to(device=dev, dtype=torch.float64).eval()
        with torch.no_grad():
            for name, p in m.named_parameters():
                r = torch.randn(p.shape, generator=gen, device=dev, dtype=p.dtype)
                if p.ndim == 2:
                    p.copy_(r / p.shape[1] ** 0.5)
                else:
                    p.copy_(0.1 * r + (1.0 if name.endswith("weight") else 0.0))
    return models


def dependence(lm, x: torch.Tensor, vocab: int) -> torch.Tensor:
    """(T, T) float64: entry (i, j) is the largest change of output i's logits when token j of ``x`` (T,) is
    replaced by another non-padding id; ``lm`` maps (1, T) ids to (1, T, vocab) logits. Each of the T + 1
    sequences runs alone: in one batch, a row's place in the matrix products can change its rounding (about
    1e-15) even where nothing it depends on changed, so "unchanged" could not be tested exactly."""
    t = x.numel()
    xs = x.repeat(t + 1, 1)  # row 0 as given, row j + 1 with token j changed
    j = torch.arange(t, device=x.device)
    xs[j + 1, j] = x % (vocab - 1) + 1  # ids 1..vocab-1 shifted by one: always a different non-padding id
    with torch.no_grad():
        y = torch.cat([lm(row[None]) for row in xs])  # (T + 1, T, vocab)
    return (y[1:] - y[:1]).abs().amax(-1).T  # (i, j)


def behaviour_findings(o, gen, dev) -> tuple[list, list, dict]:
    """The dependence matrices of ``o.samples`` trials: claims and reversed-claim controls, and the first trial's."""
    t = o.tokens
    tril = torch.ones(t, t, dtype=torch.bool, device=dev).tril()
    s = dict(enc_missing=0, gpt_vs_causal=0, enc_vs_causal=0, gpt_missing=0, enc0_static=0, gpt0_moving=0)
    gpt0_max, gpt_upper, enc0_min = 0.0, 0.0, float("inf")
    first = {}
    for k in range(o.samples):
        enc, gpt = small_models(o.layers, t, gen, dev)
        x = torch.randint(1, SMALL["vocab_size"], (t,), generator=gen, device=dev)
        de = dependence(enc.mlm_logits, x, SMALL["vocab_size"])
        dg = dependence(lambda ids, m=gpt: m(ids)[0], x, SMALL["vocab_size"])
        if k == 0:
            first = {"encoder": de.cpu(), "gpt": dg.cpu()}
        e, g = de > CHANGE_TOL, dg > CHANGE_TOL
        s["enc_missing"] += int((~e).sum())
        s["gpt_vs_causal"] += int((g != tril).sum())
        s["enc_vs_causal"] += int((e != tril).sum())
        s["gpt_missing"] += int((~g).sum())
        s["enc0_static"] += int((~e[0, 1:]).sum())
        s["gpt0_moving"] += int(g[0, 1:].sum())
        gpt0_max = max(gpt0_max, float(dg[0, 1:].max()))
        gpt_upper = max(gpt_upper, float(dg[~tril].max()))
        enc0_min = min(enc0_min, float(de[0, 1:].min()))
    n = o.samples * (t - 1)
    on = f"{o.samples} trials, T = {t}"
    claims = [
        Bound.of(f"encoder: later tokens (of {n}) that leave position 0 unchanged", s["enc0_static"], 0, 0),
        Bound.of(f"GPT: largest change of position 0 when a later token changes ({on})", gpt0_max, 0, 0),
        Bound.of(f"GPT: largest change of any output i when a token j > i changes ({on})", gpt_upper, 0, 0),
        Bound.of(f"encoder: pairs (i, j) where output i ignores token j, of {o.samples} x T^2", s["enc_missing"], 0, 0),
        Bound.of(f"GPT: pairs where dependence differs from the causal mask ({on})", s["gpt_vs_causal"], 0, 0),
    ]
    controls = [
        Bound.of(
            f"reversed: encoder's position 0 ignores later tokens (smallest change, tol {CHANGE_TOL:g})",
            enc0_min,
            0,
            CHANGE_TOL,
        ),
        Bound.of(
            f"reversed: GPT's position 0 moves with every later token (misses, of {n})", n - s["gpt0_moving"], 0, 0
        ),
        Bound.of(f"reversed: encoder's dependence is causal (pairs that differ, {on})", s["enc_vs_causal"], 0, 0),
        Bound.of(f"reversed: GPT's dependence is bidirectional (pairs missing, {on})", s["gpt_missing"], 0, 0),
    ]
    return claims, controls, first


# -- the comparison table ------------------------------------------------------------------------


def _arch(m: nn.Module) -> str:
    cfg, blk = m.config, m.h[0]
    kind = "encoder-only" if isinstance(m, Encoder) else "decoder-only"
    norm = "pre-norm" if cfg.prenorm else "post-norm"
    mask = "causal" if blk.attn.causal else "bidirectional"
    sizes = f"d {cfg.n_embd}, {cfg.n_head} heads, d_ff {blk.mlp.c_proj.in_features}"
    return f"{kind}: {cfg.n_layer} {norm} {mask} blocks, {sizes}"


def _tables(m: nn.Module) -> str:
    parts = [f"token {m.wte.num_embeddings}", f"position {m.wpe.num_embeddings}"]
    if getattr(m, "wtt", None) is not None:
        parts.append(f"type {m.wtt.num_embeddings}")
    return " + ".join(parts) + (", LayerNorm" if isinstance(getattr(m, "emb_ln", None), nn.LayerNorm) else "")


def table(found: dict, t: int, layers: int) -> list[dict]:
    """The comparison, one row per aspect, generated from the built models, the counts and the measured masks."""
    enc, gpt, got = found["bert"], found["gpt"], found["counts"]
    e, g = (found["first"][k] > CHANGE_TOL for k in ("encoder", "gpt"))
    tied = gpt.lm_head.weight is gpt.wte.weight
    head_new = n_params(enc.head)  # the encoder's classifier, 2 classes by default
    pooler = n_params(enc.pooler)
    rows = [
        ("architecture", _arch(enc), _arch(gpt)),
        ("embeddings", _tables(enc), _tables(gpt)),
        (
            f"attention (measured, T={t}, {layers} layers)",
            f"bidirectional: {int(e.sum())} of {t * t} (i, j) pairs",
            f"causal: {int(g.sum())} of {t * t} (i, j) pairs",
        ),
        (
            "pretraining objective",
            f"masked LM ({mlm_loss.__name__}): {MLM_RATE:.0%} of tokens, seen from both sides",
            "next token (GPT.forward targets): every token, from its prefix",
        ),
        (
            "parameters (meta device)",
            f"{got['BERT']:,} (pooler {pooler:,})",
            f"{got['GPT']:,} (output layer {'tied' if tied else 'untied'})",
        ),
        (
            "fine-tuning style",
            f"new head on the pooled [CLS]: +{head_new:,} weights for 2 classes; all weights tuned",
            "prompt it, or tune it to continue text: +0 weights",
        ),
        (
            "typical uses",
            f"classify, tag, extract answers, embed (generate: {'yes' if hasattr(enc, 'generate') else 'no'})",
            f"generate, complete, chat, few-shot in context (generate: {'yes' if hasattr(gpt, 'generate') else 'no'})",
        ),
    ]
    return [{"aspect": a, "BERT-base": b, "GPT-2 small": c} for a, b, c in rows]


def trial_seconds(tokens: int, layers: int) -> float:
    """Seconds of one behaviour trial on one busy CPU core, fitted to measurements: 0.05 s at 12 tokens and
    2 layers, 7 s at 256 and 2, 61 s at 256 and 24 (two models, T + 1 passes each)."""
    return 0.02 + (tokens + 1) * (8e-3 + 3.7e-5 * layers * tokens)


def validate(o) -> None:
    """All trials together within MAX_SECONDS (memory is small at every allowed size)."""
    seconds = o.samples * trial_seconds(o.tokens, o.layers)
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"samples: {o.samples:,} trials of {o.tokens} tokens and {o.layers} layers would take ~{seconds:,.0f} s "
            f"on one CPU core ({seconds / o.samples:.2g} s each); at most {MAX_SECONDS} s"
        )


@with_options
def check(o) -> CheckResult:
    """Exact parameter counts on the meta device against the formulas and published counts (controls: no pooler,
    no token types, untied output layer), and the measured dependence of each output on each token (controls:
    the reversed claims)."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples, o.seed)
    c_claims, c_controls, found = count_findings()
    with one_thread():  # tiny float64 models: more CPU threads only contend
        b_claims, b_controls, found["first"] = behaviour_findings(o, gen, dev)
    res.claims += c_claims + b_claims
    res.controls += c_controls + b_controls
    res.table = table(found, o.tokens, o.layers)
    res.series |= {"masks": found["first"], "breakdown": {"BERT-base": breakdown(found["bert"])}}
    res.series["breakdown"]["GPT-2 small"] = breakdown(found["gpt"])
    res.notes += [
        "counts: exact integers on the meta device (no weights, no sampling): tolerance 0, no false alarms",
        f"behaviour: {o.samples} trials of float64 models (d 32, 4 heads, {o.layers} layers, vocabulary 50, "
        f"T = {o.tokens}) on {dev.type}, one thread; an output depends on a token when its logits move by more than "
        f"{CHANGE_TOL:g} (rounding is about 1e-16, a dependence about 1e-2); a deterministic comparison, so the "
        "verdict has no false-alarm probability beyond that margin",
        "the encoder reads no padding here (ids 1 to 49), so every key is visible to every query",
        "GPT-2's paper listed 117M for this model; the released checkpoint has 124,439,808",
    ]
    return res


PART_NAMES = {  # the models' top-level parts, in words, for the figure
    "h": "blocks",
    "wte": "token table",
    "wpe": "position table",
    "wtt": "token-type table",
    "pooler": "pooler",
    "emb_ln": "LayerNorm outside blocks",
    "ln_f": "LayerNorm outside blocks",
}


def figure(res: CheckResult):
    """The two attention masks as measured: which output (row) moves when which token (column) changes, for the
    encoder and the GPT, and the base models' parameters by part."""
    import numpy as np

    fig, axes = plotting.subplots(3, width=16, height=4.8, gridspec_kw={"width_ratios": [1, 1, 1.5]})
    for ax, (key, name) in zip(axes, [("encoder", "BERT-style encoder"), ("gpt", "GPT")]):
        dep = (res.series["masks"][key] > CHANGE_TOL).numpy()
        ax.imshow(dep, cmap="Blues", vmin=0, vmax=1.3)
        ax.set(xlabel="token $j$ changed", ylabel="output $i$", title=f"{name}: {int(dep.sum())} of {dep.size} move")
    models = {m: {} for m in res.series["breakdown"]}
    for m, parts in res.series["breakdown"].items():
        for k, v in parts.items():
            models[m][PART_NAMES.get(k, k)] = models[m].get(PART_NAMES.get(k, k), 0) + v
    names = list(dict.fromkeys(n for p in models.values() for n in p))
    names.sort(key=lambda n: -max(p.get(n, 0) for p in models.values()))
    y, ax = np.arange(len(names)), axes[2]
    for k, (m, parts) in enumerate(models.items()):
        vals = [parts.get(n, 0) for n in names]
        ax.barh(y + 0.4 * k - 0.2, vals, 0.4, label=f"{m}: {sum(vals):,}")
        for yy, v in zip(y, vals):
            if v:
                ax.text(v, yy + 0.4 * k - 0.2, f" {v:,}", va="center", fontsize=7)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set(xscale="log", xlim=(1e3, 1e9), xlabel="parameters (log scale)", title="base models by part (meta device)")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(plotting.title(res, "Exercise 13.7: bidirectional against causal"))
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

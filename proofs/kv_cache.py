"""Exercises 13.14 and 13.23: a KV cache holds $2 L n_\\mathrm{kv} d_\\mathrm{head} s$ bytes per token.

To decode the next token, attention needs the key and the value of every earlier position in every
layer. A cache keeps them: per token and layer, one key and one value vector of $d_\\mathrm{head}$
numbers for each of the $n_\\mathrm{kv}$ key/value heads, $s$ bytes per number, so

$$\\text{bytes per token} = 2 \\cdot L \\cdot n_\\mathrm{kv} \\cdot d_\\mathrm{head} \\cdot s,
\\qquad \\text{bytes for } T \\text{ tokens} = T \\cdot 2 L n_\\mathrm{kv} d_\\mathrm{head} s.$$

Multi-head attention has $n_\\mathrm{kv} = h$ (then $h d_\\mathrm{head} = d$ and the cache is
$2Lds$ per token); multi-query attention (MQA) shares one key/value head among all query heads,
$n_\\mathrm{kv} = 1$; grouped-query attention (GQA) sits in between. The saving over MHA is
$h / n_\\mathrm{kv}$, whatever $L$, $d_\\mathrm{head}$, the dtype and the context.

13.14 ($L = 80$, $h = n_\\mathrm{kv} = 64$, $d_k = 128$, fp16): $2 \\cdot 80 \\cdot 64 \\cdot 128 \\cdot 2 =
2{,}621{,}440$ bytes $= 2.62$ MB $= 2.5$ MiB per token; "32K" is $32 \\cdot 1024 = 32{,}768$ tokens,
$85.9$ GB $= 80$ GiB (read as $32{,}000$: $83.9$ GB $= 78.1$ GiB). A real 70B model with GQA
(LLaMA-2-70B: 8 KV heads) holds 8 times less. 13.23 (12 layers, 12 heads): MQA saves 12x, GQA
with 4 KV heads 3x.

The check generates $T$ tokens (greedy) with the project's GPT (``models.gpt``), as MHA, GQA and
MQA, in float32, bfloat16 and float16, and compares the bytes its ``KVCache`` holds
(``nbytes``, and the tensors' storage) with the formula exactly (tolerance 0). ``generate``
allocates room for prompt plus new tokens and writes all but the last token, whose key and value
nobody has needed yet; the check fills a fresh cache with NaN and counts what was overwritten. It
also allocates the cache of the configuration asked for (13.14's by default) in its dtype. The
same comparisons reject the formula with $n_\\mathrm{kv} = h$ for an MQA model, without the
factor 2 (keys only), with fp32's 4 bytes for an fp16 model, and without the prompt.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import sympy as sp

from derive import kv
from derive.counts import L, h, h_kv
from derive.engine import Derivation
from derive.kv import T, d_head, s
from proofs.cli import Option

NUMBER = "13.14, 13.23"
CLAIM = "A KV cache holds 2 L n_kv d_head s bytes per token: MQA (n_kv = 1) and GQA save h / n_kv over MHA."
DEFAULT_SAMPLES = 8  # tokens T generated per model in the check
OPTIONS = [
    Option("--layers", int, 80, "layers L"),
    Option("--heads", int, 64, "query heads h"),
    Option("--kv-heads", str, "mha", "key/value heads n_kv: mha (= heads), mqa (= 1), or a divisor of heads"),
    Option("--head-dim", int, 128, "head dimension d_head (d_k)"),
    Option("--dtype", str, "fp16", f"cache dtype, one of {', '.join(kv.DTYPE_BYTES)}"),
    Option("--context", str, "32K", "context length in tokens; nK is shown both as n*1024 and n*1000"),
    Option("--mqa-layers", int, 12, "13.23: layers of the MHA/GQA/MQA comparison (and of the check's models)"),
    Option("--mqa-heads", int, 12, "13.23: query heads of the comparison (and of the check's models)"),
    Option("--mqa-head-dim", int, 64, "13.23: head dimension of the comparison (64: GPT-2 small)"),
    Option("--mqa-gqa", int, 4, "13.23: key/value heads of the GQA row (must divide --mqa-heads)"),
    Option("--mqa-context", int, 1024, "13.23: context length of the comparison"),
]
REAL_70B_KV_HEADS = 8  # LLaMA-2-70B: 64 query heads share 8 key/value heads
MAX = {"layers": 1024, "heads": 1024, "head_dim": 65536, "context": 1 << 40}
MAX |= {"mqa_layers": 48, "mqa_heads": 48, "mqa_head_dim": 65536, "mqa_context": 1 << 40}  # 48: the check builds GPTs
CHECK_HEAD_DIM, PROMPT, BATCH, VOCAB = 8, 3, 2, 65  # the generating models are small and fast
DIRECT_BUDGET = 256 * 2**20  # bytes the directly allocated cache of the asked configuration may take
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "float8_e4m3fn", "int8": "int8"}


@dataclass(frozen=True)
class Config:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    dtype: str
    contexts: tuple[tuple[int, str], ...]  # (tokens, how "32K" was read)
    mqa_layers: int
    mqa_heads: int
    mqa_head_dim: int
    mqa_gqa: int
    mqa_context: int
    tokens: int  # T generated in the check


def _posint(name: str, v, maximum: int = 1 << 40) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= maximum:
        raise ValueError(f"{name}: must be an integer in [1, {maximum}], got {v!r}")
    return v


def parse_context(value) -> tuple[tuple[int, str], ...]:
    """'32768' -> one reading; '32K' -> 32*1024 and 32*1000 (both are called 32K)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", str(value))
    if not m or int(m[1]) <= 0:
        raise ValueError(f"context: expected a positive token count like 32768 or 32K, got {value!r}")
    n = int(m[1])
    if m[2]:
        return ((_posint("context", n * 1024, MAX["context"]), f"{n}K = {n}*1024"), (n * 1000, f"{n}K as {n}*1000"))
    return ((_posint("context", n, MAX["context"]), str(n)),)


def parse_kv_heads(value, heads: int) -> int:
    name = str(value).strip().lower()
    if name in ("mha", "mqa"):
        return heads if name == "mha" else 1
    try:
        n = int(name)
    except ValueError:
        raise ValueError(f"kv_heads: expected mha, mqa or an integer, got {value!r}") from None
    if n <= 0 or heads % n:
        raise ValueError(f"kv_heads: must be a positive divisor of heads={heads}, got {n}")
    return n


def validate(
    layers=80,
    heads=64,
    kv_heads="mha",
    head_dim=128,
    dtype="fp16",
    context="32K",
    mqa_layers=12,
    mqa_heads=12,
    mqa_head_dim=64,
    mqa_gqa=4,
    mqa_context=1024,
    samples=DEFAULT_SAMPLES,
) -> Config:
    """Check every option (ValueError naming the first bad one) and return them parsed."""
    ints = {"layers": layers, "heads": heads, "head_dim": head_dim, "mqa_layers": mqa_layers}
    ints |= {"mqa_heads": mqa_heads, "mqa_head_dim": mqa_head_dim, "mqa_context": mqa_context}
    for name, v in ints.items():
        _posint(name, v, MAX[name])
    nkv = parse_kv_heads(kv_heads, heads)
    kv.dtype_bytes(dtype)
    contexts = parse_context(context)
    if isinstance(mqa_gqa, bool) or not isinstance(mqa_gqa, int) or mqa_gqa <= 0 or mqa_heads % mqa_gqa:
        raise ValueError(f"mqa_gqa: must be a positive divisor of mqa_heads={mqa_heads}, got {mqa_gqa!r}")
    _posint("samples", samples, 256)
    return Config(
        layers,
        heads,
        nkv,
        head_dim,
        dtype,
        contexts,
        mqa_layers,
        mqa_heads,
        mqa_head_dim,
        mqa_gqa,
        mqa_context,
        samples,
    )


# -- the formula and its numbers ---------------------------------------------------------------


def per_token(layers: int, n_kv: int, head_dim: int, dtype: str) -> int:
    return int(kv.bytes_per_token(layers, n_kv, head_dim, kv.dtype_bytes(dtype)))


def human(n: int) -> str:
    """'2.62 MB = 2.5 MiB': decimal (10^3) and binary (2^10) units, 3 significant figures."""

    def unit(base, names):
        k = 0
        while k + 1 < len(names) and n >= base ** (k + 1):
            k += 1
        return f"{n / base**k:.3g} {names[k]}"

    return f"{unit(1000, ['B', 'kB', 'MB', 'GB', 'TB', 'PB'])} = {unit(1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'])}"


def kind(heads: int, n_kv: int) -> str:
    return "MHA" if n_kv == heads else ("MQA" if n_kv == 1 else f"GQA({n_kv})")


def answers(cfg: Config) -> list[dict]:
    """The calculator's table: 13.14 at each reading of the context and beside GQA-8 and MQA;
    13.23 as MHA, GQA and MQA."""

    def row(ex, Lr, hr, nkv, hd, ctx):
        b = per_token(Lr, nkv, hd, cfg.dtype)
        total = int(kv.cache_bytes(ctx, Lr, nkv, hd, kv.dtype_bytes(cfg.dtype)))
        out = {"exercise": ex, "attention": kind(hr, nkv), "L": Lr, "h": hr, "n_kv": nkv, "d_head": hd}
        out |= {"dtype": cfg.dtype, "bytes/token": b, "per token": human(b), "context": ctx}
        return out | {"total bytes": total, "total": human(total), "saving vs MHA": f"{hr // nkv}x"}

    rows = [row("13.14", cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, c) for c, _ in cfg.contexts]
    ctx = cfg.contexts[0][0]
    for nkv in dict.fromkeys((cfg.heads, REAL_70B_KV_HEADS, 1)):
        if nkv != cfg.kv_heads and cfg.heads % nkv == 0:
            rows.append(row("13.14", cfg.layers, cfg.heads, nkv, cfg.head_dim, ctx))
    for nkv in dict.fromkeys((cfg.mqa_heads, cfg.mqa_gqa, 1)):
        rows.append(row("13.23", cfg.mqa_layers, cfg.mqa_heads, nkv, cfg.mqa_head_dim, cfg.mqa_context))
    return rows


def answer(**options) -> list[str]:
    """The calculator's table and its summary for the options asked (what ``--no-check`` prints)."""
    from numeric.check import format_table

    cfg = validate(**options)
    rows = answers(cfg)
    return format_table(rows).splitlines() + summary(cfg, rows)


def summary(cfg: Config, rows: list[dict]) -> list[str]:
    main = rows[0]
    b = main["bytes/token"]
    out = [
        f"13.14: 2 * {cfg.layers} * {cfg.kv_heads} * {cfg.head_dim} * {kv.dtype_bytes(cfg.dtype)} = {b:,} bytes "
        f"per token = {b / 1e6:.6g} MB (10^6 B) = {b / 2**20:.6g} MiB (2^20 B) in {cfg.dtype}, "
        f"{kind(cfg.heads, cfg.kv_heads)}"
    ]
    for r, (_, how) in zip(rows, cfg.contexts):
        out.append(
            f"13.14: context {r['context']:,} tokens ({how}): {r['total bytes']:,} bytes = "
            f"{r['total bytes'] / 1e9:.6g} GB = {r['total bytes'] / 2**30:.6g} GiB"
        )
    if len(cfg.contexts) > 1:
        out.append("'32K' in a model card means 32,768 tokens (K = 1024); the 32,000 reading is shown for comparison")
    for r in rows[len(cfg.contexts) :]:
        if r["exercise"] == "13.14":
            is_70b = (cfg.layers, cfg.heads, cfg.head_dim, r["n_kv"]) == (80, 64, 128, REAL_70B_KV_HEADS)
            real = " (LLaMA-2-70B's real layout)" if is_70b else ""
            out.append(
                f"13.14 beside {r['attention']}{real}: {r['bytes/token']:,} B/token = {r['per token']}; "
                f"{r['context']:,} tokens: {r['total']} ({r['bytes/token'] / b:.6g} x the asked layout)"
            )
    small = [r for r in rows if r["exercise"] == "13.23"]
    mha = small[0]["bytes/token"]
    parts = [f"{r['attention']} {r['bytes/token']:,} B/token ({r['per token']})" for r in small]
    out.append(
        f"13.23 ({cfg.mqa_layers} layers, {cfg.mqa_heads} heads, d_head {cfg.mqa_head_dim}): " + ", ".join(parts)
    )
    out.append(
        "13.23 savings h/n_kv: "
        + ", ".join(f"{r['attention']} {mha // r['bytes/token']}x" for r in small[1:])
        + f"; at {cfg.mqa_context:,} tokens "
        + ", ".join(f"{r['attention']} {r['total']}" for r in small)
        + " (the factor does not depend on L, d_head, dtype or context)"
    )
    return out


# -- the derivation -----------------------------------------------------------------------------


def derivation() -> Derivation:
    d = sp.Symbol("d", positive=True, integer=True)
    M = sp.Function("M")  # bytes per token, by number of KV heads
    per = kv.bytes_per_token(L, h_kv, d_head, s)
    dx = Derivation(
        "Exercises 13.14 and 13.23: bytes of a KV cache",
        assumptions=[
            "L layers; h query heads and n_kv key/value heads (n_kv divides h), each of size d_head",
            "every layer stores one key and one value vector per key/value head and past token",
            "s bytes per stored number: fp32 4, fp16 and bf16 2, fp8 and int8 1",
            "batch 1; MB = 10^6 bytes, MiB = 2^20 bytes (GB, GiB likewise)",
        ],
    )
    dx.eq(sp.Symbol("numbers_layer"), 2 * h_kv * d_head, "K and V rows of one layer and token", computed=per / (L * s))
    dx.eq(M(h_kv), 2 * L * h_kv * d_head * s, "over L layers at s bytes each", strategy="expand", computed=per)
    dx.eq(M(h), 2 * L * d * s, "MHA: n_kv = h and h d_head = d", computed=per.subs({h_kv: h, d_head: d / h}))
    dx.eq(
        sp.Symbol("bytes_T"),
        2 * T * L * h_kv * d_head * s,
        "T tokens hold T times that",
        strategy="expand",
        computed=kv.cache_bytes(),
    )
    dx.eq(M(h) / M(h_kv), h / h_kv, "saving of GQA over MHA", strategy="cancel", computed=kv.savings(h, h_kv))
    dx.eq(M(h) / M(1), h, "MQA (n_kv = 1) saves a factor h", strategy="cancel", computed=kv.savings(h, 1))
    at = {L: 80, h_kv: 64, d_head: 128, s: kv.dtype_bytes("fp16")}
    b = per.subs(at)
    MB, MiB, GB, GiB = sp.symbols("MB MiB GB GiB", positive=True)  # 10^6, 2^20, 10^9, 2^30 bytes
    dx.eq(M(64), 2_621_440, "13.14: L = 80, n_kv = h = 64, d_head = 128, fp16", strategy="exact", computed=b)
    dx.eq(M(64) / MB, sp.Rational("2.62144"), "in MB: 2.62144", strategy="exact", computed=b / 10**6)
    dx.eq(M(64) / MiB, sp.Rational(5, 2), "in MiB: 2.5", strategy="exact", computed=b / 2**20)
    dx.eq(32768 * M(64) / GiB, 80, "32K = 32,768 tokens: 80 GiB", strategy="exact", computed=32768 * b / 2**30)
    dx.eq(
        32768 * M(64) / GB,
        sp.Rational("85.89934592"),
        "that is 85.9 GB",
        strategy="exact",
        computed=32768 * b / 10**9,
    )
    dx.eq(
        32000 * M(64) / GiB,
        sp.Rational("78.125"),
        "read as 32,000 tokens: 78.125 GiB (83.9 GB)",
        strategy="exact",
        computed=32000 * b / 2**30,
    )
    dx.eq(
        M(64) / M(8), 8, "GQA with 8 KV heads (LLaMA-2-70B): 8 times less", strategy="exact", computed=kv.savings(64, 8)
    )
    dx.eq(M(12) / M(1), 12, "13.23: 12 heads, MQA saves 12x", strategy="exact", computed=kv.savings(12, 1))
    dx.eq(M(12) / M(4), 3, "13.23: GQA with 4 KV heads saves 3x", strategy="exact", computed=kv.savings(12, 4))
    return dx


# -- the check ----------------------------------------------------------------------------------


@contextmanager
def one_thread():
    """The check's tensors are tiny: OpenMP threads only contend on a shared CPU."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def generate_keeping_cache(model, idx, tokens: int):
    """``model.generate(idx, tokens, temperature=0)`` and the ``KVCache`` it allocated. The cache is
    filled with NaN when allocated, so afterwards its non-NaN entries are exactly what was written."""
    made = []
    allocate = model.new_cache

    def spy(batch, capacity):
        cache = allocate(batch, capacity)
        for t in cache.k + cache.v:
            t.fill_(float("nan"))
        made.append(cache)
        return cache

    model.new_cache = spy
    try:
        out = model.generate(idx, tokens, temperature=0)
    finally:
        del model.new_cache
    (cache,) = made
    return out, cache


def storage_bytes(cache) -> int:
    return sum(t.untyped_storage().nbytes() for t in cache.k + cache.v)


def written_bytes(cache) -> int:
    return sum(int((~t.isnan()).sum()) * t.element_size() for t in cache.k + cache.v)


def check(device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, **options):
    import torch

    from models.gpt import GPT, GPTConfig, KVCache
    from models.utils.device import describe, generator, pick_device
    from numeric.check import Bound, CheckResult

    cfg = validate(samples=samples, **options)
    dev = pick_device(device)
    res = CheckResult(CLAIM, describe(dev), samples, seed)
    res.table = answers(cfg)
    Lm, hm, n_new, hd = cfg.mqa_layers, cfg.mqa_heads, cfg.tokens, CHECK_HEAD_DIM
    prompt = torch.randint(0, VOCAB, (BATCH, PROMPT), generator=generator(dev, seed), device=dev)
    got = {}  # (n_kv, dtype) -> cache
    with one_thread():
        for nkv in dict.fromkeys((hm, cfg.mqa_gqa, 1)):
            for dt in ("fp32", "bf16", "fp16"):
                gcfg = GPTConfig(PROMPT + n_new, VOCAB, Lm, hm, hm * hd, n_kv_head=nkv)
                model = GPT(gcfg).to(device=dev, dtype=getattr(torch, TORCH_DTYPES[dt])).eval()
                out, got[nkv, dt] = generate_keeping_cache(model, prompt, n_new)
                assert out.shape == (BATCH, PROMPT + n_new)

    def formula(nkv, dt, positions, layers=Lm, head_dim=hd):
        return BATCH * positions * per_token(layers, nkv, head_dim, dt)

    cap, filled = PROMPT + n_new, PROMPT + n_new - 1
    for (nkv, dt), c in got.items():
        res.claims.append(
            Bound.of(
                f"{kind(hm, nkv)} {dt}: KVCache.nbytes after {n_new} tokens = 2 L n_kv d_head s B (P+T) "
                f"(L={Lm}, n_kv={nkv}, d_head={hd}, B={BATCH}, P+T={cap})",
                c.nbytes,
                formula(nkv, dt, cap),
                0,
            )
        )
    worst = lambda f, n: max(((f(c), formula(k, dt, n)) for (k, dt), c in got.items()), key=lambda v: abs(v[0] - v[1]))
    res.claims.append(
        Bound.of("storage bytes of every cache's tensors = the formula (worst)", *worst(storage_bytes, cap), 0)
    )
    res.claims.append(
        Bound.of(f"bytes written = the formula at P+T-1 = {filled} positions (worst)", *worst(written_bytes, filled), 0)
    )
    tdtype = getattr(torch, TORCH_DTYPES[cfg.dtype])
    for nkv in dict.fromkeys((cfg.kv_heads, cfg.heads, REAL_70B_KV_HEADS, 1)):
        if cfg.heads % nkv:
            continue
        b = per_token(cfg.layers, nkv, cfg.head_dim, cfg.dtype)
        n = min(4, DIRECT_BUDGET // b)
        if n == 0:
            res.notes.append(f"{kind(cfg.heads, nkv)} cache of the asked layout not allocated: {human(b)} per token")
            continue
        ccfg = GPTConfig(n, 1, cfg.layers, cfg.heads, cfg.heads * cfg.head_dim, n_kv_head=nkv)
        c = KVCache(ccfg, 1, n, device=dev, dtype=tdtype)
        res.claims.append(
            Bound.of(
                f"13.14 layout {kind(cfg.heads, nkv)} {cfg.dtype}: KVCache(L={cfg.layers}, n_kv={nkv}, "
                f"d_head={cfg.head_dim}) for {n} token{'s' * (n > 1)} = {n} x {b:,} B",
                c.nbytes,
                n * b,
                0,
            )
        )
        del c

    # negative controls: each is a plausible wrong formula, compared with the same measurement
    mha, mqa = got[hm, "fp32"], got[1, "fp16"]
    if hm > 1:
        res.controls.append(
            Bound.of(f"MQA fp16 model vs n_kv = h = {hm} (query heads)", mqa.nbytes, formula(hm, "fp16", cap), 0)
        )
    else:
        res.notes.append("h = 1: MQA is MHA, so the n_kv = h control cannot differ and is left out")
    res.controls.append(
        Bound.of("MHA fp32 model vs keys only (no factor 2)", mha.nbytes, formula(hm, "fp32", cap) // 2, 0)
    )
    res.controls.append(
        Bound.of("MHA fp16 model vs fp32's 4 bytes", got[hm, "fp16"].nbytes, formula(hm, "fp32", cap), 0)
    )
    res.controls.append(
        Bound.of(f"MHA fp32 model vs T = {n_new} tokens (prompt forgotten)", mha.nbytes, formula(hm, "fp32", n_new), 0)
    )
    res.notes = summary(cfg, res.table) + res.notes
    res.notes += [
        f"check models: the project's GPT with L={Lm}, h={hm}, d_head={hd} (n_embd={hm * hd}), prompt P={PROMPT}, "
        f"batch B={BATCH}, T={n_new} new tokens by greedy generate(); generate allocates P+T positions and "
        f"fills P+T-1 (the last token is never fed back)",
        "all byte counts are exact integers; every comparison has tolerance 0",
    ]
    return res


def figure(path, device=None, seed: int = 0, **options):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    cfg = validate(**options)
    ctx = [2**k for k in range(8, 18)]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for nkv in dict.fromkeys((cfg.heads, REAL_70B_KV_HEADS, 1)):
        if cfg.heads % nkv == 0:
            b = per_token(cfg.layers, nkv, cfg.head_dim, cfg.dtype)
            ax.plot(ctx, [c * b / 2**30 for c in ctx], "o-", ms=3, label=f"{kind(cfg.heads, nkv)}: {human(b)} / token")
    c0 = cfg.contexts[0][0]
    ax.axvline(c0, color="k", lw=0.6, ls=":", label=f"context {c0:,}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("context length T (tokens)")
    ax.set_ylabel("KV cache (GiB, batch 1)")
    ax.set_title(f"KV cache, L={cfg.layers}, h={cfg.heads}, d_head={cfg.head_dim}, {cfg.dtype}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

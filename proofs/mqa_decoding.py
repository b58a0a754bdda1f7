r"""Exercise 13.23: multi-query attention, and what it saves in the KV cache of a 12-layer, 12-head model.

Multi-query attention (MQA; Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You
Need") keeps $h$ query heads but one shared key/value head; grouped-query attention (GQA; Ainslie
et al. 2023) keeps $n_{kv}$ of them, $1 \le n_{kv} \le h$, $n_{kv} \mid h$. Decoding stores one key and
one value vector of $d_\text{head}$ numbers per key/value head, layer and past token, so at $s$ bytes
per number

$$M(n_{kv}) = 2 \, L \, n_{kv} \, d_\text{head} \, s \ \text{bytes per token}, \qquad
\frac{M(h)}{M(1)} = h .$$

For the 12-layer, 12-head model of the exercise ($d_\text{model} = 768$, $d_\text{head} = 64$) in fp16
that is 36,864 bytes per token with multi-head attention and 3,072 with MQA: twelve times less,
whatever the context. The derivation proves the formula and the factor, and evaluates them there.

The check builds the chapter's GPT (``models.gpt``) at the exercise's size with 12, 4 and 1 key/value
heads, decodes greedily with its KV cache, and compares the bytes the cache holds with the formula
(exactly: they are integers) and the MHA/MQA ratio with $h$. By default the width is 192 rather than
768 ($d_\text{head} = 16$): the factors do not depend on it, and the check runs in seconds. Negative
controls: the formula without the factor 2, a saving of $2h/(h+1)$ (as if only the keys were shared)
and of $L$ (where $L \ne h$) are rejected. The
decoding speed of each variant is measured with the project's timing helper and reported, not
judged: on a CPU at batch 1 decoding is bound by the weights, not the cache, so MQA need not be faster
there.
"""

from __future__ import annotations

import sympy as sp

from derive import kv
from derive.counts import L, h, h_kv
from derive.engine import Derivation
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.23"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"A KV cache holds $2 L n_\mathrm{kv} d_\mathrm{head} s$ bytes per token, so MQA saves "
    r"a factor $h$: 12 for a 12-layer, 12-head model."
)
DEFAULT_SAMPLES = None  # nothing is drawn at random: the weights are seeded, the measured bytes are exact
MAX_WIDTH = 2048  # weights ~ 12 L d^2 x 4 bytes: 2.4 GB at 12 layers, width 2048
OPTIONS = [
    Option("--layers", int, 12, "layers L", lo=1, hi=48, why="memory ~ 48 L d^2 bytes"),
    Option("--heads", int, 12, "query heads h", lo=2, hi=64, why="h divides the width"),
    Option(
        "--n-embd",
        int,
        192,
        "model width d_model (the exercise's 768 gives the same factors, slower)",
        lo=1,
        hi=MAX_WIDTH,
        why="memory ~ 48 L d^2 bytes",
    ),
    Option("--new", int, 16, "tokens decoded after an 8-token prompt", lo=1, hi=4096, why="time grows with it"),
    Option("--repeats", int, 3, "timed decodes per variant (median reported)", lo=1, hi=100, why="time"),
]


def kv_heads(o) -> list[int]:
    """The variants compared: MHA (h), GQA (the largest divisor of h from 2 to h/3, if any) and MQA (1)."""
    gqa = [k for k in range(o.heads - 1, 1, -1) if o.heads % k == 0 and k <= o.heads // 3][:1]
    return list(dict.fromkeys([o.heads, *gqa, 1]))


def validate(o) -> None:
    """The heads divide the width, and the weights fit in memory."""
    if o.n_embd % o.heads:
        raise ValueError(f"n_embd: must be divisible by heads ({o.heads}), got {o.n_embd}")
    if o.layers * o.n_embd**2 > 24 * 1024**2:
        raise ValueError(f"n_embd: layers x n_embd^2 must be at most {24 * 1024**2:,} (weights ~ 48 L d^2 bytes)")


def derivation() -> Derivation:
    """The bytes per token, the MQA factor h, and their values at L = 12, h = 12, d_head = 64, fp16."""
    d_head, s = kv.d_head, kv.s
    M = sp.Function("M")
    der = Derivation(
        "Exercise 13.23: the KV cache of multi-query attention",
        assumptions=[
            r"$L$ layers, $h$ query heads, $n_\mathrm{kv}$ key/value heads ($n_\mathrm{kv}$ divides $h$), "
            r"each of size $d_\mathrm{head}$",
            "each layer stores one key and one value vector per key/value head and past token, $s$ bytes a number",
        ],
    )
    per = kv.bytes_per_token()
    der.eq(
        M(h_kv),
        2 * L * h_kv * d_head * s,
        r"$K$ and $V$, in $L$ layers, $n_\mathrm{kv}$ heads of $d_\mathrm{head}$ numbers",
        "expand",
        per,
    )
    der.eq(
        M(h) / M(1),
        h,
        r"MQA ($n_\mathrm{kv} = 1$) against MHA ($n_\mathrm{kv} = h$)",
        "cancel",
        computed=kv.savings(h, 1),
    )
    at = {L: 12, d_head: 64, s: kv.dtype_bytes("fp16")}
    der.eq(
        M(12),
        36864,
        r"$L = 12$, $h = 12$, $d_\mathrm{head} = 768 / 12 = 64$, fp16: MHA",
        "exact",
        per.subs(at | {h_kv: 12}),
    )
    der.eq(M(1), 3072, "the same model with MQA", "exact", per.subs(at | {h_kv: 1}))
    der.eq(M(12) - M(1), 33792, "saved per token: $11/12$ of the cache", "exact", per.subs(at | {h_kv: 12}) - 3072)
    return der


@with_options
def check(o) -> CheckResult:
    """Build the GPT with each number of KV heads, decode with its cache, compare bytes and formula."""
    from models.training.decode_bench import compare
    from models.utils.device import one_thread

    with one_thread():  # batch-1 decoding of a small model: OpenMP threads only contend on a shared CPU
        rows, device = compare(
            o.layers, o.heads, o.n_embd, kv_heads(o), prompt=8, new=o.new, repeats=o.repeats, device=o.device
        )
    res = CheckResult(f"Exercise {NUMBER}: KV-cache bytes of MHA, GQA and MQA", device, None, o.seed)
    for r in rows:
        res.claims.append(
            Bound.of(
                f"{r['kind']} (n_kv = {r['n_kv_head']}): cache bytes / formula",
                r["kv_bytes"] / r["kv_bytes_formula"],
                1.0,
                0.0,
            )
        )
        res.controls.append(
            Bound.of(
                f"{r['kind']}: cache bytes / formula without the factor 2 (keys only)",
                r["kv_bytes"] / (r["kv_bytes_formula"] // 2),
                1.0,
                0.0,
            )
        )
    mha, mqa = rows[0], rows[-1]
    res.claims.append(Bound.of("MHA / MQA cache bytes = h", mha["kv_bytes"] / mqa["kv_bytes"], o.heads, 0.0))
    ratio = mha["kv_bytes"] / mqa["kv_bytes"]
    wrong = {"2h/(h+1), as if only the keys were shared": 2 * o.heads / (o.heads + 1), "L": o.layers}
    for name, w in wrong.items():
        if w != o.heads:
            res.controls.append(Bound.of(f"MHA / MQA cache bytes = {name}", ratio, w, 0.0))
        else:
            res.notes.append(f"the control 'the saving is {name}' equals h here and is left out")
    keys = ("kind", "n_kv_head", "params", "kv_bytes", "kv_bytes_per_token", "kv_saving", "tokens_per_s", "speedup")
    res.table = [{k: r[k] for k in keys} for r in rows]
    res.notes += [
        f"{o.layers} layers, {o.heads} heads, width {o.n_embd}, rope, batch 1, 8-token prompt + {o.new} new tokens, "
        f"float32 on the CPU (bfloat16 on CUDA); bytes are exact integers, so the tolerance is 0",
        f"tokens/s: median of {o.repeats} greedy decodes after one warm-up (models.utils.timing); reported, not "
        "judged: at batch 1 the weights, not the cache, bound the time, so MQA's gain shows at long contexts "
        "and large batches",
    ]
    return res


def figure(res: CheckResult):
    """Bytes per token and tokens per second of each variant."""
    fig, (a, b) = plotting.subplots(2, width=10, height=4)
    names = [f"{r['kind']}\n$n_\\mathrm{{kv}}={r['n_kv_head']}$" for r in res.table]
    a.bar(names, [r["kv_bytes_per_token"] for r in res.table], color="C0")
    a.set(ylabel="KV-cache bytes per token", title=plotting.title(res, f"Exercise {NUMBER}: cache"))
    b.bar(names, [r["tokens_per_s"] for r in res.table], color="C1")
    b.set(ylabel="tokens / s (greedy, batch 1)", title="decoding speed (measured)")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m models.training.decode_bench``: KV-cache size and decoding speed of multi-head (MHA),
grouped-query (GQA) and multi-query (MQA) attention (exercise 13.23).

For each number of KV heads it builds the same GPT (12 layers, 12 heads by default, random
weights), generates greedily with the KV cache, and prints the bytes the cache holds next to the
formula 2 · L · n_kv · d_head · bytes · batch · positions, and tokens per second (median of
``--repeats`` runs after a warm-up). The MHA row is the baseline of the ratios.
"""

from __future__ import annotations

import json

import torch

from models.gpt import GPT, GPTConfig
from models.utils.budget import require_memory
from models.utils.cli import OneLineParser, guard, positive_int, text
from models.utils.device import describe, pick_device
from models.utils.timing import time_calls


def kv_bytes_formula(cfg: GPTConfig, batch: int, positions: int, dtype: torch.dtype) -> int:
    """2 (keys and values) · layers · KV heads · head size · bytes per element · batch · positions."""
    elem = torch.empty((), dtype=dtype).element_size()
    return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * elem * batch * positions


def measure(cfg: GPTConfig, batch: int, prompt: int, new: int, repeats: int, device, dtype, seed: int = 0) -> dict:
    """Build ``GPT(cfg)`` (weights seeded by ``seed``, the global RNG untouched), decode ``new`` tokens greedily
    after a random ``prompt`` with a fresh KV cache ``repeats`` times after a warm-up, and return the cache's
    bytes (measured and by formula), the parameters and tokens per second (``batch * new`` / median time)."""
    with torch.random.fork_rng(devices=[]):  # seeded weights, without touching the caller's global RNG
        torch.manual_seed(seed)
        model = GPT(cfg).to(device=device, dtype=dtype).eval()
    idx = torch.randint(cfg.vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(seed)).to(device)

    def decode(cache):
        model.generate(idx, new, temperature=0, cache=cache)
        return cache

    # a fresh cache per run, made outside the timer; one warm-up run, then the median of ``repeats``
    timing = time_calls(
        decode, device=device, repeats=repeats, warmup=1, setup=lambda: model.new_cache(batch, prompt + new)
    )
    cache = timing.result  # the cache of the last run
    return {
        "n_kv_head": cfg.n_kv_head,
        "kind": "MHA" if cfg.n_kv_head == cfg.n_head else ("MQA" if cfg.n_kv_head == 1 else "GQA"),
        "params": model.num_params(),
        "kv_bytes": cache.nbytes,
        "kv_bytes_formula": kv_bytes_formula(cfg, batch, prompt + new, dtype),
        "kv_bytes_per_token": cache.nbytes // (batch * (prompt + new)),
        "tokens_per_s": batch * new / timing.median,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m models.training.decode_bench``: exit 0 when every cache holds the formula's bytes, 1 if not, 2 on
    bad input."""
    p = OneLineParser(prog="python -m models.training.decode_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=positive_int(), default=12)
    p.add_argument("--heads", type=positive_int(), default=12)
    p.add_argument("--n-embd", type=positive_int(), default=768)
    p.add_argument("--kv-heads", type=text(), default="12,4,1", help="comma-separated KV head counts (default 12,4,1)")
    p.add_argument("--batch", type=positive_int(), default=1)
    p.add_argument("--prompt", type=positive_int(), default=64)
    p.add_argument("--new", type=positive_int(), default=192, help="tokens to generate (default 192)")
    p.add_argument("--repeats", type=positive_int(), default=3)
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default=None,
        help="default: bfloat16 on CUDA, float32 on CPU",
    )
    p.add_argument("--device", type=text(), default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    flags = {"n_layer": "--layers", "n_head": "--heads", "n_embd": "--n-embd", "n_kv_head": "--kv-heads"}
    flags |= {"block_size": "--prompt/--new", "device": "--device", "kv_heads": "--kv-heads"}
    return guard(lambda: _bench(args), flags)


def _kv_heads(s: str) -> list[int]:
    try:
        kvs = [int(k) for k in s.split(",")]
    except ValueError:
        raise ValueError(f"kv_heads: expected comma-separated integers like 12,4,1, got {s!r}") from None
    if len(kvs) > 64:
        raise ValueError(f"kv_heads: at most 64 configurations, got {len(kvs)}")
    return kvs


def compare(
    layers: int,
    heads: int,
    n_embd: int,
    kv_heads: list[int],
    batch: int = 1,
    prompt: int = 64,
    new: int = 192,
    repeats: int = 3,
    device=None,
    dtype: str | None = None,
) -> tuple[list[dict], str]:
    """Build the same GPT (rope, no bias, vocabulary 65) with each number of KV heads in ``kv_heads``
    and :func:`measure` it; the first is the baseline of ``kv_saving`` and ``speedup``. Returns the
    rows and the device's description. ValueError (naming the flag's parameter) when a size is invalid
    or the weights and cache would not fit in memory, before anything is built."""
    dev = pick_device(device)
    dtype = getattr(torch, dtype or ("bfloat16" if dev.type == "cuda" else "float32"))
    cfgs = [
        GPTConfig(
            n_layer=layers,
            n_head=heads,
            n_embd=n_embd,
            n_kv_head=k,
            pos="rope",
            block_size=prompt + new,
            vocab_size=65,
            bias=False,
        )
        for k in kv_heads
    ]
    for c in cfgs:  # weights (untied head: two V x d tables) and the cache, per model, one at a time
        weights = c.vocab_size * c.n_embd * 2 + c.n_layer * 12 * c.n_embd**2
        cache = kv_bytes_formula(c, batch, prompt + new, dtype)
        elem = torch.empty((), dtype=dtype).element_size()
        require_memory(
            f"--n-embd {c.n_embd} x --layers {c.n_layer} x --batch/--prompt/--new", weights * elem + cache, dev
        )
    rows = [measure(c, batch, prompt, new, repeats, dev, dtype) for c in cfgs]
    for r in rows:
        r["kv_saving"] = rows[0]["kv_bytes"] / r["kv_bytes"]
        r["speedup"] = r["tokens_per_s"] / rows[0]["tokens_per_s"]
    return rows, f"{describe(dev)}, {dtype}"


def _bench(args) -> int:
    rows, device = compare(
        args.layers,
        args.heads,
        args.n_embd,
        _kv_heads(args.kv_heads),
        args.batch,
        args.prompt,
        args.new,
        args.repeats,
        args.device,
        args.dtype,
    )
    if args.json:
        print(json.dumps({"device": device, "rows": rows}, indent=1))
        return 0
    print(
        f"{device}: {args.layers} layers, {args.heads} heads, width {args.n_embd}, "
        f"batch {args.batch}, {args.prompt} prompt + {args.new} new tokens"
    )
    print(
        f"{'kind':>4} {'kv':>3} {'KV bytes':>12} {'formula':>12} {'bytes/token':>12} {'saving':>7} "
        f"{'tokens/s':>9} {'speed-up':>8}"
    )
    for r in rows:
        ok = "=" if r["kv_bytes"] == r["kv_bytes_formula"] else "!="
        print(
            f"{r['kind']:>4} {r['n_kv_head']:>3} {r['kv_bytes']:>12,} {ok}{r['kv_bytes_formula']:>11,} "
            f"{r['kv_bytes_per_token']:>12,} {r['kv_saving']:>6.1f}x {r['tokens_per_s']:>9.1f} {r['speedup']:>7.2f}x"
        )
    return 0 if all(r["kv_bytes"] == r["kv_bytes_formula"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

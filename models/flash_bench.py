"""Attention throughput and memory: naive attention, the tiled PyTorch FlashAttention, the Triton kernel and
torch's SDPA backends, over context lengths n, forward and forward+backward, measured in one run.

    python -m models.flash_bench [--n 1024,2048,4096,8192,16384] [--batch 4] [--heads 32] [--head-dim 64]
        [--dtype bfloat16] [--causal] [--device cuda] [--repeats 10] [--json] [--out bench.json]

Rows: ``naive`` (``models.attention.scaled_dot_product_attention``, written out: stores the n x n scores and
probabilities), ``tiled`` (``models.flash.flash_attention``, the Python-loop algorithm, blocks of ``--block``),
``triton`` (``models.flash_triton``, CUDA only), and ``sdpa-flash``, ``sdpa-cudnn``, ``sdpa-efficient``,
``sdpa-math`` (``torch.nn.functional.scaled_dot_product_attention`` forced to one backend with
``torch.nn.attention.sdpa_kernel``; a backend this build or device lacks is reported as unavailable).

FLOP convention (the FlashAttention papers' benchmarks): forward 4·b·h·n²·d (q kᵀ and P v, 2 FLOPs per
multiply-add), halved when causal; backward 2.5 times the forward (five matrix products instead of two), so a
forward+backward pass counts 3.5 times the forward. TFLOP/s = these FLOPs over the median seconds per call
(``models.utils.timing.time_calls``: one warm-up call, which also autotunes the Triton kernel, then ``--repeats``
calls, the device synchronised around each). Peak memory: ``models.utils.memory.peak_bytes`` of one call, the tensor
bytes above the live inputs (CUDA allocator counters; torch's profiler on the CPU). Out of memory is a row marked
OOM; a row whose last size took over ``--budget`` seconds per call skips its larger sizes (marked slow). Ratios
are against ``sdpa-flash`` measured in the same run. Bad input: one line naming the flag, exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from models import flash_triton
from models.attention import scaled_dot_product_attention as naive_attention
from models.flash import flash_attention
from models.utils.budget import fmt_bytes, require_memory
from models.utils.cli import OneLineParser, finite_float, guard, int_in, output_file
from models.utils.cli import text as nonempty
from models.utils.device import describe, pick_device
from models.utils.files import write_text
from models.utils.memory import peak_bytes
from models.utils.timing import time_calls

MAX_N = 1 << 17
DEFAULTS = {  # per device type: n, batch, heads, dtype, repeats, tiled block
    "cpu": {"n": (128, 256, 512), "batch": 1, "heads": 4, "dtype": "float32", "repeats": 3, "block": 64},
    "cuda": {
        "n": (1024, 2048, 4096, 8192, 16384),
        "batch": 4,
        "heads": 32,
        "dtype": "bfloat16",
        "repeats": 10,
        "block": 256,
    },
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PASSES = ("fwd", "fwd+bwd")
BASELINE = "sdpa-flash"
GOAL_N = 4096  # the goal: triton forward >= 0.8x sdpa-flash forward at n >= 4K (head dim 64, bf16)


def attention_flops(batch: int, heads: int, n: int, head_dim: int, causal: bool, backward: bool) -> float:
    """FLOPs of attention by the convention of the module docstring: 4·b·h·n²·d forward, halved for causal,
    times 3.5 with the backward (which counts 2.5 forwards).

    >>> attention_flops(1, 1, 1024, 64, causal=False, backward=False) == 4 * 1024**2 * 64
    True
    >>> attention_flops(2, 3, 100, 64, causal=True, backward=True) / attention_flops(2, 3, 100, 64, False, False)
    1.75
    """
    fwd = 4.0 * batch * heads * n * n * head_dim * (0.5 if causal else 1.0)
    return fwd * (3.5 if backward else 1.0)


def _sdpa(backend_name: str) -> Callable:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)

    def run(q, k, v, causal):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return run


def implementations(block: int) -> dict[str, Callable]:
    """name -> fn(q, k, v, causal) for every row of the table."""
    return {
        "naive": lambda q, k, v, c: naive_attention(q, k, v, is_causal=c),
        "tiled": lambda q, k, v, c: flash_attention(q, k, v, causal=c, block_q=block, block_k=block),
        "triton": lambda q, k, v, c: flash_triton.triton_flash_attention(q, k, v, causal=c),
        "sdpa-flash": _sdpa("FLASH_ATTENTION"),
        "sdpa-cudnn": _sdpa("CUDNN_ATTENTION"),
        "sdpa-efficient": _sdpa("EFFICIENT_ATTENTION"),
        "sdpa-math": _sdpa("MATH"),
    }


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(e).lower()


def _free(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def measure(fn: Callable[[], object], dev: torch.device, repeats: int) -> dict:
    """Median seconds per call and peak bytes of ``fn()``; status ``ok``, ``oom`` or ``unavailable`` (the
    exception's first line) instead of raising for what a backend or the device cannot do."""
    try:
        t = time_calls(fn, device=dev, repeats=repeats, warmup=1)
        peak = peak_bytes(fn, dev)
    except Exception as e:  # a missing backend or kernel, or the device out of memory, is a finding
        _free(dev)
        if _is_oom(e):
            return {"status": "oom"}
        return {"status": "unavailable", "note": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"}
    return {"status": "ok", "seconds": t.median, "peak_bytes": peak}


def _dense_bytes(n: int, b: int, h: int, itemsize: int) -> float:
    # naive/math attention with its backward: about 4 live n x n tensors (scores, probabilities, their grads)
    return 4.0 * b * h * n * n * itemsize


def run(args: argparse.Namespace) -> dict:
    """Measure every (row, n, pass); return the report (see :func:`table` for the printed form)."""
    dev = pick_device(args.device)
    d = DEFAULTS[dev.type]
    ns = args.n or d["n"]
    b, h, hd = args.batch or d["batch"], args.heads or d["heads"], args.head_dim
    dtype = DTYPES[args.dtype or d["dtype"]]
    repeats, block = args.repeats or d["repeats"], args.block or d["block"]
    item = torch.empty((), dtype=dtype).element_size()
    require_memory("n", 8.0 * b * h * max(ns) * hd * item, dev)  # q, k, v, dO and the three gradients, + output
    impls = implementations(block)
    rows = []
    for name, attn in impls.items():
        slow = False
        for n in ns:
            gen = torch.Generator(device=dev).manual_seed(n)
            q, k, v, do = (torch.randn(b, h, n, hd, generator=gen, device=dev, dtype=dtype) for _ in range(4))
            for p in PASSES:
                row = {"impl": name, "n": n, "pass": p}
                if name == "triton" and dev.type != "cuda":
                    rows.append(row | {"status": "unavailable", "note": "needs CUDA"})
                    continue
                if slow:
                    rows.append(row | {"status": "slow", "note": f"a smaller n took over {args.budget:g} s per call"})
                    continue
                if dev.type == "cpu" and name in ("naive", "sdpa-math"):
                    try:  # the CPU has no OOM error, it swaps: refuse what would not fit
                        require_memory(name, _dense_bytes(n, b, h, item), dev)
                    except ValueError as e:
                        rows.append(row | {"status": "oom", "note": str(e)})
                        continue
                if p == "fwd":
                    fn = lambda a=attn, x=(q, k, v): a(*x, args.causal)
                else:
                    xs = [t.detach().requires_grad_() for t in (q, k, v)]
                    fn = lambda a=attn, x=xs, g=do: torch.autograd.grad(a(*x, args.causal), x, g)
                r = measure(fn, dev, repeats)
                if r["status"] == "ok":
                    flops = attention_flops(b, h, n, hd, args.causal, p != "fwd")
                    r["tflops"] = flops / r["seconds"] / 1e12
                    slow = slow or r["seconds"] > args.budget
                rows.append(row | r)
            del q, k, v, do
            _free(dev)
    report = {
        "device": describe(dev),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "config": {
            "n": list(ns),
            "batch": b,
            "heads": h,
            "head_dim": hd,
            "dtype": str(dtype).split(".")[1],
            "causal": args.causal,
            "repeats": repeats,
            "tiled_block": block,
        },
        "flops": "forward 4*b*h*n^2*d (halved when causal); forward+backward 3.5x the forward",
        "rows": rows,
    }
    report["ratios"] = ratios(rows)
    report["goal"] = goal(report)
    return report


def ratios(rows: list[dict]) -> list[dict]:
    """TFLOP/s of each measured row over that of ``sdpa-flash`` at the same n and pass (same run)."""
    base = {(r["n"], r["pass"]): r["tflops"] for r in rows if r["impl"] == BASELINE and r["status"] == "ok"}
    return [
        {"impl": r["impl"], "n": r["n"], "pass": r["pass"], "vs_sdpa_flash": r["tflops"] / base[(r["n"], r["pass"])]}
        for r in rows
        if r["status"] == "ok" and (r["n"], r["pass"]) in base
    ]


def goal(report: dict) -> dict:
    """The issue's goal: the smallest Triton/sdpa-flash forward ratio at n >= 4096 (aim 0.8, hope 1.0), and the
    Triton/cuDNN ratio at the same sizes; ``met`` is None where it was not measured."""
    tf = {(r["impl"], r["n"]): r["tflops"] for r in report["rows"] if r["pass"] == "fwd" and r["status"] == "ok"}
    ns = [n for n in report["config"]["n"] if n >= GOAL_N and ("triton", n) in tf and (BASELINE, n) in tf]
    out = {"rule": "triton fwd / sdpa-flash fwd >= 0.8 at n >= 4096 (head dim 64, bf16)", "n": ns}
    cfg = report["config"]
    if cfg["head_dim"] != 64 or cfg["dtype"] != "bfloat16":  # the goal is stated for this configuration only
        return out | {"min_ratio": None, "met": None, "why": "goal stated for head dim 64 and bfloat16"}
    if not ns:
        return out | {"min_ratio": None, "met": None}
    worst = min(tf[("triton", n)] / tf[(BASELINE, n)] for n in ns)
    cudnn = [tf[("triton", n)] / tf[("sdpa-cudnn", n)] for n in ns if ("sdpa-cudnn", n) in tf]
    return out | {"min_ratio": worst, "met": worst >= 0.8, "min_ratio_vs_cudnn": min(cudnn) if cudnn else None}


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except Exception:  # not installed, or installed and broken
        return None


def _cell(r: dict) -> str:
    if r["status"] != "ok":
        return r["status"].upper()
    return f"{r['tflops']:.3g} TF {fmt_bytes(r['peak_bytes'])}"


def table(report: dict) -> str:
    """The report as text: per pass, a row per implementation and a column per n (TFLOP/s, peak memory)."""
    c = report["config"]
    ns = c["n"]
    out = [
        f"attention: batch {c['batch']}, heads {c['heads']}, head dim {c['head_dim']}, {c['dtype']}, "
        f"{'causal' if c['causal'] else 'not causal'}; {report['device']}; torch {report['torch']}, "
        f"triton {report['triton'] or 'not installed'}",
        f"FLOPs: {report['flops']}; median of {c['repeats']} calls; peak = tensor bytes above the inputs",
    ]
    width = 22
    for p in PASSES:
        out.append(f"\n{p}: TFLOP/s and peak memory")
        out.append(" " * 16 + "".join(f"n={n}".rjust(width) for n in ns))
        for impl in dict.fromkeys(r["impl"] for r in report["rows"]):
            cells = {r["n"]: _cell(r) for r in report["rows"] if r["impl"] == impl and r["pass"] == p}
            out.append(f"  {impl:<14}" + "".join(cells.get(n, "").rjust(width) for n in ns))
        rat = {(x["impl"], x["n"]): x["vs_sdpa_flash"] for x in report["ratios"] if x["pass"] == p}
        if rat:
            out.append(f"  {p} / {BASELINE}:")
            for impl in dict.fromkeys(i for i, _ in rat if i != BASELINE):
                out.append(
                    f"    {impl:<12}"
                    + "".join(
                        f"{rat[(impl, n)]:.2f}x".rjust(width) if (impl, n) in rat else "".rjust(width) for n in ns
                    )
                )
    notes = {(r["impl"], r.get("note")) for r in report["rows"] if r.get("note")}
    out += [f"  note {impl}: {note}" for impl, note in sorted(notes)]
    g = report["goal"]
    if g["met"] is None:
        out.append(f"goal ({g['rule']}): not measured here")
    else:
        vs = g.get("min_ratio_vs_cudnn")
        out.append(
            f"goal ({g['rule']}): min {g['min_ratio']:.2f}x -> {'met' if g['met'] else 'NOT met'}"
            + (f"; vs sdpa-cudnn {vs:.2f}x" if vs is not None else "")
        )
    return "\n".join(out)


def _n_list(s: str) -> tuple[int, ...]:
    one = int_in(16, MAX_N, "naive attention at 2^17 needs 4 b h n^2 bytes: 64 GiB per head at float32")
    parts = s.split(",")
    if not all(p.strip() for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {s!r}")
    return tuple(sorted({one(p.strip()) for p in parts}))  # ascending: a slow size skips only the larger ones


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m models.flash_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=_n_list, default=None, help="context lengths, e.g. 1024,4096 (default by device)")
    p.add_argument("--batch", type=int_in(1, 1024, "inputs b*h*n*d"), default=None, help="batch size b")
    p.add_argument("--heads", type=int_in(1, 1024, "inputs b*h*n*d"), default=None, help="heads h")
    p.add_argument("--head-dim", type=int, choices=flash_triton.HEAD_DIMS, default=64, help="head dim d (default 64)")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--causal", action="store_true", help="causal mask (FLOPs halved)")
    p.add_argument("--device", type=nonempty(), default=None, help="cpu or cuda (default: PROOFS_DEVICE, else CUDA)")
    p.add_argument("--repeats", type=int_in(1, 1000, "each repeat is one full call"), default=None, help="timed calls")
    p.add_argument(
        "--block",
        type=int_in(16, 4096, "the tiled row's tiles are block^2 scores"),
        default=None,
        help="tile size of the tiled PyTorch row (default 64 CPU, 256 CUDA)",
    )
    p.add_argument(
        "--budget",
        type=finite_float(0.0, 3600.0, lo_open=True),
        default=2.0,
        help="seconds per call past which a row skips its larger n (default 2)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", type=output_file(), default=None, help="also write the JSON report to this file")
    return p


FLAGS = {"device": "--device", "n": "--n", "batch": "--batch", "heads": "--heads", "PROOFS_DEVICE": "PROOFS_DEVICE"}


def main(argv: list[str] | None = None) -> int:
    """``python -m models.flash_bench``: exit 0, or 2 on bad input (one line naming the flag)."""
    args = _parser().parse_args(argv)
    return guard(lambda: _main(args), FLAGS)


def _main(args) -> int:
    report = run(args)
    text = json.dumps(report, indent=2, default=float)
    if args.out:
        write_text(args.out, text + "\n", "--out")
    print(text if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Monte Carlo throughput: dot products q·k per second on this device, for the plainest torch
code next to the project's streaming path, measured in the same run.

    python -m numeric.bench [--device cuda] [--dk 64] [--samples N] [--repeats 5] [--json] [--sweep]

* baseline: ``torch.randn`` q and k, ``(q * k).sum(-1)``, ``.var()``, in chunks sized to fit
  memory (the samples are written to memory and read back);
* project: ``numeric.dotprod.dot_product_moments`` with its default dispatch (the fused Triton
  kernel of ``numeric.fused`` on CUDA when available, else the chunked torch path).

Each is run once to warm up (compilation, caches) and then ``--repeats`` times; the rate is
the sample count over the median time, with ``torch.cuda.synchronize`` around every run on
CUDA. The project's variance estimate is also checked against Var(q·k) = d_k (two-sided z-test
at false-alarm rate 1e-9); the exit status is 1 if it is rejected. Bad input: one line on
stderr naming the parameter, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch

from models.utils.cli import OneLineParser, guard, int_in, seed_int
from models.utils.cli import text as nonempty
from models.utils.device import describe, generator, pick_device
from models.utils.timing import time_calls
from numeric import fused
from numeric.dotprod import dot_product_moments
from numeric.stats import compare

DEFAULT_SAMPLES = {"cpu": 1 << 18, "cuda": 1 << 30}
RATE = 1e-9
# (block, iters, warps, fast math) of the fused kernel
SWEEP = (
    (256, 128, 2, None),
    (512, 64, 4, None),
    (1024, 64, 4, None),
    (1024, 64, 8, None),
    (2048, 32, 8, None),
    (512, 64, 4, False),
)


MAX_DK = 1 << 16
MAX_SAMPLES = 1 << 36


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m numeric.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device", type=nonempty(), default=None, help="cpu or cuda (default: PROOFS_DEVICE, else CUDA if present)"
    )
    p.add_argument(
        "--dk",
        type=int_in(1, MAX_DK, "a chunk of the baseline holds at least two rows of q, k and q*k"),
        default=64,
        help="dimension d_k of q and k (default 64)",
    )
    p.add_argument(
        "--samples",
        type=int_in(4, MAX_SAMPLES, "about a minute on an H200 at the measured ~10^9/s, hours on a CPU"),
        default=None,
        help="dot products per run (default 2^18 CPU, 2^30 CUDA)",
    )
    p.add_argument(
        "--repeats",
        type=int_in(1, 100, "each repeat runs both codes in full"),
        default=5,
        help="timed runs (default 5)",
    )
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the explicit generator (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--sweep", action="store_true", help="also time other launch shapes of the fused kernel")
    return p


def measure(fn: Callable[[], object], dev: torch.device, repeats: int) -> dict:
    """One warm-up run, then ``repeats`` timed runs (``models.utils.timing``); the result of the last run is kept."""
    t = time_calls(fn, device=dev, repeats=repeats, warmup=1)
    return {"warmup_s": t.warmup_s, "times_s": list(t.times), "median_s": t.median, "result": t.result}


def baseline_chunk(dev: torch.device, d_k: int) -> int:
    """Samples per chunk of the baseline: q, k and q*k (3 * d_k float32 each) within budget."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = min(free // 4, 16 << 30)
        return max(2, min(1 << 24, budget // (12 * d_k + 16)))
    return max(2, (1 << 22) // d_k)


def baseline(samples: int, d_k: int, gen: torch.Generator, chunk: int) -> float:
    """The plainest code: randn q and k, multiply, sum, variance; per chunk, then pooled."""
    dev = gen.device
    parts = -(-samples // max(2, chunk))
    size, extra = divmod(samples, parts)  # equal chunks (each at least 2)
    variances = []
    for i in range(parts):
        m = size + (i < extra)
        q = torch.randn((m, d_k), generator=gen, device=dev)
        k = torch.randn((m, d_k), generator=gen, device=dev)
        variances.append((q * k).sum(-1).var() * (m - 1))
    return (torch.stack(variances).sum() / (samples - parts)).item()


def project_path(dev: torch.device) -> str:
    """Which implementation the project uses on ``dev``: the fused Triton kernel or chunked torch."""
    if fused.use_fused(dev, None):
        return f"fused Triton kernel ({fused.status()})"
    return "chunked torch (numeric.dotprod)"


def run(args: argparse.Namespace) -> dict:
    """Time the plainest torch baseline and the project's path on the same samples; return the numbers
    (dot products per second, seconds, the agreement of the two variance estimates)."""
    dev = pick_device(args.device)
    samples = args.samples if args.samples is not None else DEFAULT_SAMPLES[dev.type]
    d_k = args.dk
    gen = generator(dev, args.seed)
    chunk = baseline_chunk(dev, d_k)
    base = measure(lambda: baseline(samples, d_k, gen, chunk), dev, args.repeats)
    wanted_fused = fused.use_fused(dev, None)
    proj = measure(lambda: dot_product_moments(samples, d_k, gen), dev, args.repeats)
    path = project_path(dev)  # after the warm-up: a kernel that failed there has fallen back to torch
    if wanted_fused and not fused.use_fused(dev, None):
        path += " (the fused kernel failed in the warm-up; see the note on stderr)"
    moments = proj.pop("result")
    base_var = base.pop("result")
    verdict = compare(moments.variance_estimate(), d_k, f"Var(q·k) at d_k={d_k}", RATE)
    rate_b = samples / base["median_s"]
    rate_p = samples / proj["median_s"]
    report = {
        "device": describe(dev),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "d_k": d_k,
        "samples": samples,
        "repeats": args.repeats,
        "baseline": {
            "code": f"torch.randn q,k; (q*k).sum(-1); .var(); chunks of {chunk:,}",
            "variance": base_var,
            "rate": rate_b,
            **base,
        },
        "project": {
            "code": f"dot_product_moments -> {path}",
            "variance": moments.variance_estimate().value,
            "rate": rate_p,
            **proj,
        },
        "ratio": rate_p / rate_b,
        "check": verdict.to_dict(),
    }
    if args.sweep:
        report["sweep"] = sweep(samples, d_k, gen, dev, args.repeats)
    return report


def sweep(samples: int, d_k: int, gen: torch.Generator, dev: torch.device, repeats: int) -> list[dict]:
    """Rates of the fused kernel at other launch shapes and with accurate math, and of the
    chunked torch path it replaces (CUDA only)."""
    if not (dev.type == "cuda" and fused.use_fused(dev, None)):
        return [{"note": "sweep needs the fused kernel on CUDA"}]
    rows = []
    for block, iters, warps, fast in SWEEP:
        row = {"what": "fused", "block": block, "iters": iters, "num_warps": warps, "fast_math": fast}
        run = lambda b=block, i=iters, w=warps, f=fast: fused.fused_dot_product_moments(  # noqa: E731
            samples, d_k, gen, block=b, iters=i, num_warps=w, fast_math=f
        )
        rows.append(row | _rate(run, samples, dev, min(repeats, 3)))
    torch_path = lambda: dot_product_moments(samples, d_k, gen, fused=False)  # noqa: E731
    rows.append({"what": "chunked torch path (fused=False)"} | _rate(torch_path, samples, dev, 1))
    return rows


def _rate(fn: Callable[[], object], samples: int, dev: torch.device, repeats: int) -> dict:
    try:
        r = measure(fn, dev, repeats)
    except Exception as e:  # a shape that does not compile is a finding, not a crash
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    return {"rate": samples / r["median_s"], "median_s": r["median_s"], "warmup_s": r["warmup_s"]}


def _triton_version() -> str | None:
    if not fused.triton_installed():
        return None
    try:
        import triton

        return triton.__version__
    except Exception:  # an installed but broken triton
        return "unimportable"


def text(r: dict) -> str:
    """The benchmark's result :func:`run` returned, as printed lines."""
    b, p, c = r["baseline"], r["project"], r["check"]
    out = [
        f"Monte Carlo throughput of q·k at d_k = {r['d_k']} (gaussian components)",
        f"  device: {r['device']}; torch {r['torch']}; triton {r['triton'] or 'not installed'}",
        f"  samples per run: {r['samples']:,}; median of {r['repeats']} runs after one warm-up",
        f"  baseline  {b['rate']:.3e} dot products/s  ({b['median_s']:.3f} s)  {b['code']}",
        f"  project   {p['rate']:.3e} dot products/s  ({p['median_s']:.3f} s, warm-up {p['warmup_s']:.2f} s)"
        f"  {p['code']}",
        f"  ratio project/baseline: {r['ratio']:.2f}x",
        f"  check: Var(q·k) = {p['variance']:.6g} ± {c['stderr']:.2g} vs d_k = {r['d_k']}: |z| = {c['z']:.2f}"
        f" vs {c['z_crit']:.2f} (rate {c['rate']:g}) -> {'agrees' if c['agrees'] else 'REJECTED'}"
        f"; baseline variance {b['variance']:.6g}",
    ]
    for row in r.get("sweep", []):
        if "note" in row:
            out.append(f"  sweep: {row['note']}")
            continue
        what = " ".join(f"{k}={v}" for k, v in row.items() if k not in ("rate", "median_s", "warmup_s", "error"))
        if "rate" in row:
            what += f": {row['rate']:.3e} dot products/s ({row['median_s']:.3f} s, warm-up {row['warmup_s']:.2f} s)"
        else:
            what += f": {row.get('error', '')}"
        out.append(f"  sweep {what}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m numeric.bench``: exit 0, or 2 on bad input (one line naming the flag)."""
    args = _parser().parse_args(argv)
    return guard(lambda: _main(args), {"device": "--device", "samples": "--samples", "dk": "--dk"})


def _main(args) -> int:
    report = run(args)
    print(json.dumps(report, indent=2, default=float) if args.json else text(report))
    return 0 if report["check"]["agrees"] else 1


if __name__ == "__main__":
    sys.exit(main())

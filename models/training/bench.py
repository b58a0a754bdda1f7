"""``python -m models.training.bench``: step time, tokens per second and model FLOPs utilisation (MFU)
of a training preset on the current device.

MFU = achieved model FLOPs / peak, with model FLOPs per token = 6N + 12·L·T·d (the PaLM
appendix convention nanoGPT uses: 6 per parameter for forward and backward, plus attention).
The peak is the device's dense bf16 rate where known (``--peak-tflops`` overrides it).
"""

from __future__ import annotations

import json

import torch

from models.utils.timing import time_calls

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


DESCRIPTION = (
    "Time training steps of a preset on this device: median step time, tokens per second and model FLOPs "
    "utilisation (MFU, model FLOP/s over the device's dense bf16 peak). Trains nothing to keep, writes nothing."
)
# trainer settings a benchmark has no use for (it times --steps training steps, never evaluates, logs or
# saves): offered no flag, so argparse refuses them in one line (exit 2)
UNUSED = ("out", "resume", "max_iters", "eval_interval", "eval_iters", "eval_train", "target_loss", "log_interval")
UNUSED += ("progress",)


def peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak (TFLOP/s) of a known CUDA GPU, for model FLOPs utilisation; None on a CPU or
    an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def flops_per_token(n_params: int, n_layer: int, block_size: int, n_embd: int) -> int:
    """Training FLOPs per token: 6 N (forward and backward) plus attention's 12 L T d (nanoGPT's and PaLM's
    appendix convention)."""
    return 6 * n_params + 12 * n_layer * block_size * n_embd


def parser():
    """The benchmark's parser: the trainer's model and training flags less :data:`UNUSED`, and its own."""
    from models.training.gpt_chars import build_parser
    from models.utils.cli import finite_float, positive_int

    p = build_parser("python -m models.training.bench", DESCRIPTION, skip=UNUSED)
    b = p.add_argument_group("benchmark")
    b.add_argument("--steps", type=positive_int(), default=30, help="timed training steps; default: 30")
    b.add_argument("--warmup", type=positive_int(), default=5, help="untimed steps first; default: 5")
    b.add_argument(
        "--peak-tflops",
        type=finite_float(0, lo_open=True),
        default=None,
        help="peak FLOP/s of the device, in TFLOP/s; default: the known GPU's dense bf16 peak, else no MFU",
    )
    b.add_argument("--json", action="store_true", help="print JSON; default: text")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m models.training.bench``: exit 0, or 2 on bad input (one line naming the flag)."""
    from models.training.gpt_chars import FLAGS
    from models.utils.cli import guard

    args = parser().parse_args(argv)
    return guard(lambda: _bench(args), FLAGS)


def _bench(args) -> int:
    from dataclasses import replace

    from models.data.chars import CharData
    from models.training.gpt_chars import configs_from_args, make_run
    from models.utils.device import pick_device

    mc, tc = configs_from_args(args)
    pick_device(tc.device)
    data = CharData.load(tc.data)
    run = make_run(replace(mc, vocab_size=data.vocab_size), replace(tc, progress=False), data)
    cuda = run.device.type == "cuda"
    timing = time_calls(run.train_step, device=run.device, repeats=args.steps, warmup=args.warmup)
    warm_s, step = timing.warmup_s, timing.median
    tokens = tc.batch_size * tc.grad_accum * mc.block_size * run.world
    fpt = flops_per_token(run.model.num_params(), mc.n_layer, mc.block_size, mc.n_embd)
    peak = args.peak_tflops or peak_tflops(run.device)
    out = {
        "device": torch.cuda.get_device_name(run.device) if cuda else "cpu",
        "preset": args.preset,
        "params": run.model.num_params(),
        "tokens_per_step": tokens,
        "warmup_s": warm_s,
        "median_step_ms": 1000 * step,
        "tokens_per_s": tokens / step,
        "model_tflops_per_s": fpt * tokens / step / 1e12,
        "mfu": (fpt * tokens / step / 1e12 / peak) if peak else None,
    }
    run.close()
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        mfu = f"{100 * out['mfu']:.1f} % of {peak:.0f} TFLOP/s" if peak else "n/a (peak unknown; --peak-tflops)"
        print(f"{out['device']}, preset {args.preset}: {out['params']:,} parameters, {tokens:,} tokens/step")
        print(f"  warm-up ({args.warmup} steps, compilation included): {warm_s:.2f} s")
        print(f"  median step: {out['median_step_ms']:.2f} ms over {args.steps} steps")
        print(
            f"  tokens/s: {out['tokens_per_s']:,.0f}; model FLOP/s: {out['model_tflops_per_s']:.2f} TFLOP/s; MFU: {mfu}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m models.experiments positional|norm_ffn``: train the chapter's GPT in two variants
on tiny Shakespeare and compare their validation curves.

- ``positional`` (exercise 13.21): sinusoidal vs learned position embeddings;
- ``norm_ffn`` (exercise 13.22): LayerNorm + GELU MLP vs RMSNorm + SwiGLU MLP.

Both variants share the preset, the seed (so the same training batches) and the evaluation
batches. Written to ``OUT/<name>/``: ``results.json`` (every curve and the summary),
``curves.png`` and ``summary.md``. The uncertainty quoted is that of the evaluation (the
standard error over evaluation batches); seed-to-seed variation is measured only with --seeds > 1.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from models.files import replace_dir

EXPERIMENTS = {
    "positional": ("13.21", {"sinusoidal": dict(pos="sinusoidal"), "learned": dict(pos="learned")}),
    "norm_ffn": (
        "13.22",
        {"layernorm+gelu": dict(norm="layernorm", mlp="gelu"), "rmsnorm+swiglu": dict(norm="rmsnorm", mlp="swiglu")},
    ),
}


def summarize(runs: dict[str, list[dict]], threshold: float | None = None) -> dict:
    """Best and final val loss per variant, and steps/time to reach ``threshold`` (default: the larger
    of the variants' val losses half-way through training, so that both reach it mid-run)."""
    best = {k: min(h, key=lambda r: r["val"]) for k, h in runs.items()}
    if threshold is None:  # the worse of the variants' val losses half-way through: both reach it mid-run
        last = max(r["step"] for h in runs.values() for r in h)
        mid = {k: min(h, key=lambda r: abs(r["step"] - last / 2))["val"] for k, h in runs.items()}
    thr = threshold if threshold is not None else max(mid.values())
    out = {"threshold": thr, "variants": {}}
    for k, h in runs.items():
        hit = next((r for r in h if r["val"] <= thr), None)
        out["variants"][k] = {
            "best_val": best[k]["val"],
            "best_val_se": best[k].get("val_se"),
            "best_step": best[k]["step"],
            "final_val": h[-1]["val"],
            "final_val_se": h[-1].get("val_se"),
            "steps_to_threshold": hit["step"] if hit else None,
            "seconds_to_threshold": hit.get("run_s") if hit else None,  # training time of this variant alone
        }
    (a, va), (b, vb) = list(out["variants"].items())[:2]
    se = math.sqrt((va["final_val_se"] or 0) ** 2 + (vb["final_val_se"] or 0) ** 2)
    diff = vb["final_val"] - va["final_val"]
    out["comparison"] = {
        "final_val_difference": diff,
        "difference_se": se,
        "z": diff / se if se > 0 else None,
        "faster": (
            None
            if None in (va["steps_to_threshold"], vb["steps_to_threshold"])
            or va["steps_to_threshold"] == vb["steps_to_threshold"]
            else (a if va["steps_to_threshold"] < vb["steps_to_threshold"] else b)
        ),
    }
    return out


def _markdown(name: str, number: str, preset: str, s: dict, device: str, steps: int) -> str:
    lines = [
        f"# Exercise {number}: {name} ({preset} preset, {steps} steps, {device})",
        "",
        "| variant | best val (step) | final val | steps to {:.4f} | seconds to it |".format(s["threshold"]),
        "|---|---|---|---|---|",
    ]
    for k, v in s["variants"].items():
        lines.append(
            f"| {k} | {v['best_val']:.4f} ± {v['best_val_se']:.4f} ({v['best_step']}) | "
            f"{v['final_val']:.4f} ± {v['final_val_se']:.4f} | {v['steps_to_threshold']} | "
            f"{'n/a' if v['seconds_to_threshold'] is None else round(v['seconds_to_threshold'], 1)} |"
        )
    c = s["comparison"]
    lines += [
        "",
        f"Final val difference (second − first): {c['final_val_difference']:+.4f} ± {c['difference_se']:.4f} "
        f"(evaluation noise only; z = {c['z'] if c['z'] is None else round(c['z'], 2)}).",
        f"Reaches {s['threshold']:.4f} first: {c['faster'] or 'neither / tie'}.",
        "Resolution: losses are evaluated every eval_interval steps on fixed batches, with one seed per variant, "
        "so a gap of one evaluation interval, or of less than about two standard errors, is not a difference.",
        "",
    ]
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, h in runs.items():
        steps = [r["step"] for r in h]
        (line,) = ax.plot(steps, [r["val"] for r in h], label=f"{k} (val)")
        if all("train" in r for r in h):
            ax.plot(steps, [r["train"] for r in h], "--", color=line.get_color(), alpha=0.6, label=f"{k} (train)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def run_experiment(
    name: str,
    preset: str = "cpu",
    steps: int | None = None,
    out: str = "runs/experiments",
    seed: int = 1337,
    device: str | None = None,
    eval_interval: int | None = None,
    eval_iters: int | None = None,
    threshold: float | None = None,
    data=None,
) -> dict:
    """Train every variant of experiment ``name`` and write its results folder whole."""
    from models.data import CharData
    from models.gpt import GPTConfig
    from models.train import MODEL_PRESETS, TRAIN_PRESETS, Run, TrainConfig

    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: unknown {name!r}; choose from {sorted(EXPERIMENTS)}")
    if preset not in MODEL_PRESETS:
        raise ValueError(f"preset: unknown {preset!r}; choose from {sorted(MODEL_PRESETS)}")
    number, variants = EXPERIMENTS[name]
    data = data or CharData.load()
    tkw = dict(TRAIN_PRESETS[preset], seed=seed, device=device, progress=None)
    if steps is not None:
        tkw |= dict(max_iters=steps, lr_decay_iters=steps)
    tkw |= {k: v for k, v in dict(eval_interval=eval_interval, eval_iters=eval_iters).items() if v is not None}
    tc = TrainConfig(**tkw)
    runs, meta = {}, {}
    for k, switches in variants.items():
        print(f"[{name}] training {k} ({preset} preset, {tc.max_iters} steps)", file=sys.stderr, flush=True)
        mc = GPTConfig(**(MODEL_PRESETS[preset] | switches | {"vocab_size": data.vocab_size}))
        run = Run(mc, replace(tc), data)
        res = run.fit()
        run.close()
        runs[k] = res["history"]
        meta[k] = {
            "params": res["params"],
            "median_step_ms": res["median_step_ms"],
            "device": res["device"],
            "model_config": res["model_config"],
        }
    s = summarize(runs, threshold)
    device_name = next(iter(meta.values()))["device"]
    result = {
        "experiment": name,
        "exercise": number,
        "preset": preset,
        "train_config": res["train_config"],
        "variants": meta,
        "curves": runs,
        "summary": s,
    }

    def build(tmp: Path) -> None:
        (tmp / "results.json").write_text(json.dumps(result, indent=1))
        (tmp / "summary.md").write_text(_markdown(name, number, preset, s, device_name, tc.max_iters))
        plot(runs, tmp / "curves.png", f"Exercise {number}: {name} ({preset} preset)")

    replace_dir(Path(out) / name, build)
    return result


def main(argv: list[str] | None = None) -> int:
    from models.cli import OneLineParser, positive_int
    from models.train import MODEL_PRESETS

    p = OneLineParser(prog="python -m models.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument(
        "--preset",
        choices=sorted(MODEL_PRESETS),
        default=None,
        help="gpu or cpu (default: gpu when CUDA is present, else cpu)",
    )
    p.add_argument("--steps", type=positive_int("steps"), default=5000, help="training steps (default 5000)")
    p.add_argument("--eval-interval", type=positive_int("eval_interval"), default=None)
    p.add_argument("--eval-iters", type=positive_int("eval_iters"), default=None)
    p.add_argument(
        "--threshold", type=float, default=None, help="val loss to time (default: the worse mid-run val loss)"
    )
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="runs/experiments", help="output folder (default runs/experiments)")
    args = p.parse_args(argv)
    try:
        import torch

        preset = args.preset or ("gpu" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
        r = run_experiment(
            args.experiment,
            preset,
            args.steps,
            args.out,
            args.seed,
            args.device,
            args.eval_interval,
            args.eval_iters,
            args.threshold,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        _markdown(
            args.experiment,
            r["exercise"],
            r["preset"],
            r["summary"],
            next(iter(r["variants"].values()))["device"],
            r["train_config"]["max_iters"],
        )
    )
    print(f"Written to {Path(args.out) / args.experiment}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m models.training.experiments positional|norm_ffn``: train the chapter's GPT in two variants
on tiny Shakespeare and compare their validation curves.

- ``positional`` (exercise 13.21): sinusoidal vs learned position embeddings;
- ``norm_ffn`` (exercise 13.22): LayerNorm + GELU MLP vs RMSNorm + SwiGLU MLP.
- ``nope`` (exercise 13.6): learned position embeddings vs none at all (NoPE, a causal decoder).

Both variants share the preset, the seed (so the same training batches) and the evaluation
batches. Written to ``OUT/<name>/``: ``results.json`` (every curve and the summary),
``curves.png`` and ``summary.md``. With ``--seeds N`` each variant trains at N seeds and the
comparison is paired by seed, its uncertainty measured over seeds; with one seed only the
evaluation's standard error (over evaluation batches) is known, and the summary says so.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from models.utils.files import check_replaceable, replace_dir

EXPERIMENTS = {
    "positional": ("13.21", {"sinusoidal": dict(pos="sinusoidal"), "learned": dict(pos="learned")}),
    "norm_ffn": (
        "13.22",
        {"layernorm+gelu": dict(norm="layernorm", mlp="gelu"), "rmsnorm+swiglu": dict(norm="rmsnorm", mlp="swiglu")},
    ),
    "nope": ("13.6", {"learned": dict(pos="learned"), "none": dict(pos="none")}),
}


def _mean_se(xs: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error over seeds (None with a single seed)."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def summarize(runs: dict[str, list[list[dict]]], threshold: float | None = None) -> dict:
    """Per variant, over its seeds (one evaluation history each, the same seeds for every variant):
    best and final val loss, and the steps/time to reach ``threshold`` (default: the worse of the
    variants' mean val losses half-way through training, so that both reach it mid-run). The first
    two variants are compared seed by seed: same seed, same training batches, so the differences
    are paired; their standard error comes from the seeds, or from the evaluation with one seed."""
    if threshold is None:
        last = max(r["step"] for hs in runs.values() for h in hs for r in h)
        mid = {
            k: sum(min(h, key=lambda r: abs(r["step"] - last / 2))["val"] for h in hs) / len(hs)
            for k, hs in runs.items()
        }
    thr = threshold if threshold is not None else max(mid.values())
    out = {"threshold": thr, "variants": {}}
    for k, hs in runs.items():
        best = [min(h, key=lambda r: r["val"]) for h in hs]
        hits = [next((r for r in h if r["val"] <= thr), None) for h in hs]
        best_val, best_se = _mean_se([r["val"] for r in best])
        final, final_se = _mean_se([h[-1]["val"] for h in hs])
        out["variants"][k] = {  # standard errors over seeds, or of the evaluation with one seed
            "seeds": len(hs),
            "best_val": best_val,
            "best_val_se": best_se if best_se is not None else best[0].get("val_se"),
            "best_step": [r["step"] for r in best],
            "final_val": final,
            "final_val_se": final_se if final_se is not None else hs[0][-1].get("val_se"),
            "final_val_per_seed": [h[-1]["val"] for h in hs],
            "eval_se": sum(h[-1].get("val_se") or 0.0 for h in hs) / len(hs),  # of one evaluation
            "steps_to_threshold": [r["step"] if r else None for r in hits],
            "seconds_to_threshold": [r.get("run_s") if r else None for r in hits],  # this variant's run alone
        }
    (a, va), (b, vb) = list(out["variants"].items())[:2]
    diffs = [y - x for x, y in zip(va["final_val_per_seed"], vb["final_val_per_seed"])]
    diff, se = _mean_se(diffs)
    source = "seeds"
    if se is None:  # one seed: only the evaluation noise of the two final losses is known
        se, source = math.sqrt((va["final_val_se"] or 0) ** 2 + (vb["final_val_se"] or 0) ** 2), "evaluation"
    # steps to the threshold are known only to the evaluation interval: a seed counts for a variant
    # only when it got there more than one interval earlier (never reaching it counts as infinitely late)
    interval = min(y["step"] - x["step"] for hs in runs.values() for h in hs for x, y in zip(h, h[1:]))
    first = {a: 0, b: 0, "tie": 0}
    for sa, sb in zip(va["steps_to_threshold"], vb["steps_to_threshold"]):
        sa, sb = (math.inf if s is None else s for s in (sa, sb))
        first[a if sb - sa > interval else b if sa - sb > interval else "tie"] += 1
    from scipy import stats

    dof = len(diffs) - 1 if source == "seeds" else None  # a t statistic over seeds, else a z statistic
    stat = diff / se if se > 0 else None
    p = None if stat is None else float(2 * (stats.t.sf(abs(stat), dof) if dof else stats.norm.sf(abs(stat))))
    out["comparison"] = {
        "final_val_difference": diff,
        "difference_se": se,
        "se_from": source,
        "statistic": stat,  # t with ``dof`` degrees of freedom (se from the seeds), else z
        "dof": dof,
        "p_two_sided": p,
        "first_to_threshold": first,  # seeds in which each got there over one evaluation interval earlier
        "eval_interval": interval,
        "faster": a if first[a] > first[b] + first["tie"] else b if first[b] > first[a] + first["tie"] else None,
    }
    return out


def _markdown(name: str, number: str, preset: str, s: dict, device: str, steps: int) -> str:
    seeds = next(iter(s["variants"].values()))["seeds"]
    c = s["comparison"]
    a, b = list(s["variants"])[:2]
    spread = (
        "Losses are means over seeds ± their standard error over seeds; steps are listed seed by seed."
        if seeds > 1
        else "One seed: losses ± the standard error of one evaluation (seed-to-seed spread not measured)."
    )
    lines = [
        f"# Exercise {number}: {name} ({preset} preset, {steps} steps, {seeds} seed{'s' * (seeds > 1)}, {device})",
        "",
        spread,
        "",
        "| variant | best val (steps) | final val | steps to {:.4f} | seconds to it |".format(s["threshold"]),
        "|---|---|---|---|---|",
    ]
    fmt = lambda xs: ", ".join("n/a" if x is None else str(round(x, 1)) for x in xs)  # noqa: E731
    for k, v in s["variants"].items():
        lines.append(
            f"| {k} | {v['best_val']:.4f} ± {v['best_val_se']:.4f} ({fmt(v['best_step'])}) | "
            f"{v['final_val']:.4f} ± {v['final_val_se']:.4f} | {fmt(v['steps_to_threshold'])} | "
            f"{fmt(v['seconds_to_threshold'])} |"
        )
    if c["statistic"] is None:
        z = "no spread measured"
    else:
        z = f"t = {c['statistic']:.2f}, {c['dof']} d.o.f." if c["dof"] else f"z = {c['statistic']:.2f}"
        z += f", two-sided p = {c['p_two_sided']:.2g}"
    eval_se = max(v["eval_se"] for v in s["variants"].values())
    first = c["first_to_threshold"]
    lines += [
        "",
        f"Final val difference ({b} − {a}), paired by seed: {c['final_val_difference']:+.4f} ± "
        f"{c['difference_se']:.4f} (standard error from the {c['se_from']}; {z}).",
        f"First to {s['threshold']:.4f} by more than one evaluation interval: {a} in {first[a]}, {b} in "
        f"{first[b]}, neither in {first['tie']} of {seeds} seed{'s' * (seeds > 1)}; faster: "
        f"{c['faster'] or 'neither (no clear majority)'}.",
        f"Resolution: every variant is evaluated every {c['eval_interval']} steps on the same fixed batches "
        f"(one evaluation's standard error ≈ {eval_se:.4f}): a gap of one interval in the steps, or a loss "
        "difference under about two standard errors, is not a difference.",
        "",
    ]
    return "\n".join(lines)


def draw_curves(ax, runs: dict[str, list[list[dict]]], title: str) -> None:
    """Val (and train) loss against step on ``ax``: the mean over seeds, each seed's val curve faint behind it."""
    for k, hs in runs.items():
        steps = [r["step"] for r in hs[0]]
        val = [sum(h[i]["val"] for h in hs) / len(hs) for i in range(len(steps))]
        label = f"{k} (val, mean of {len(hs)} seeds)" if len(hs) > 1 else f"{k} (val)"
        (line,) = ax.plot(steps, val, label=label)
        if len(hs) > 1:
            for h in hs:
                ax.plot(steps, [r["val"] for r in h], color=line.get_color(), alpha=0.25, lw=0.8)
        if all("train" in r for h in hs for r in h):
            train = [sum(h[i]["train"] for h in hs) / len(hs) for i in range(len(steps))]
            ax.plot(steps, train, "--", color=line.get_color(), alpha=0.6, label=f"{k} (train)")
    ax.set(xlabel="step", ylabel="loss (nats/char)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()


def plot(runs: dict[str, list[list[dict]]], path: Path, title: str) -> None:
    """:func:`draw_curves` on a figure of its own, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_curves(ax, runs, title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def train_variants(name: str, model: dict, tc, data, seeds: list[int]) -> tuple[dict, dict]:
    """Train every variant of experiment ``name`` (the GPT ``model`` settings with the variant's
    switches) at each seed of ``seeds`` with training config ``tc``; a seed fixes the weights' init,
    the dropout masks and the training batches, the same for every variant. Returns the evaluation
    histories ``{variant: [history per seed]}`` and per variant its parameters, median step times,
    device and model config. KeyboardInterrupt when a run was stopped by Ctrl-C."""
    from models.gpt import GPTConfig
    from models.training.gpt_chars import make_run

    runs, meta = {}, {}
    for k, switches in EXPERIMENTS[name][1].items():
        mc = GPTConfig(**(model | switches | {"vocab_size": data.vocab_size}))
        runs[k], steps_ms = [], []
        for sd in seeds:
            print(f"[{name}] training {k}, seed {sd} ({tc.max_iters} steps)", file=sys.stderr, flush=True)
            run = make_run(mc, replace(tc, seed=sd), data)
            res = run.fit()
            run.close()
            if res["interrupted"]:  # Ctrl-C ends the whole experiment, not just this run
                raise KeyboardInterrupt
            runs[k].append(res["history"])
            steps_ms.append(res["median_step_ms"])
        meta[k] = {
            "params": res["params"],
            "median_step_ms": steps_ms,  # one per seed
            "device": res["device"],
            "model_config": res["model_config"],
            "train_config": res["train_config"],
        }
    return runs, meta


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
    seeds: int = 1,
) -> dict:
    """Train every variant of experiment ``name`` at seeds ``seed, seed+1, ...`` (``seeds`` of them;
    a seed fixes the weights' init, the dropout masks and the training batches, the same for every
    variant) and write its results folder whole."""
    from models.data.chars import CharData
    from models.gpt import GPTConfig
    from models.training.gpt_chars import MODEL_PRESETS, TRAIN_PRESETS, TrainConfig
    from models.utils.device import pick_device

    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: unknown {name!r}; choose from {sorted(EXPERIMENTS)}")
    if preset not in MODEL_PRESETS:
        raise ValueError(f"preset: unknown {preset!r}; choose from {sorted(MODEL_PRESETS)}")
    if seeds < 1:
        raise ValueError(f"seeds: must be positive, got {seeds}")
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold: must be a positive finite loss, got {threshold}")
    number, variants = EXPERIMENTS[name]
    tkw = dict(TRAIN_PRESETS[preset], seed=seed, device=device, progress=None)
    if steps is not None:
        tkw |= dict(max_iters=steps, lr_decay_iters=steps)
    tkw |= {k: v for k, v in dict(eval_interval=eval_interval, eval_iters=eval_iters).items() if v is not None}
    tc = TrainConfig(**tkw)
    for sd in (seed, seed + seeds - 1):
        replace(tc, seed=sd)  # every seed of the list is in range
    if tc.eval_interval >= tc.max_iters:  # the comparison needs curves: two evaluations at least
        raise ValueError(
            f"eval_interval: must be shorter than the run ({tc.max_iters} steps) so that each variant "
            f"is evaluated at least twice, got {tc.eval_interval}"
        )
    check_replaceable(Path(out) / name, "out")  # refused now, not after hours of training
    pick_device(device)
    for switches in variants.values():  # every variant's config is valid before the first trains
        GPTConfig(**(MODEL_PRESETS[preset] | switches))
    data = data or CharData.load()
    seed_list = [seed + i for i in range(seeds)]
    runs, meta = train_variants(name, MODEL_PRESETS[preset], tc, data, seed_list)
    s = summarize(runs, threshold)
    device_name = next(iter(meta.values()))["device"]
    last_config = [m.pop("train_config") for m in meta.values()][-1]  # of the last run, as before
    result = {
        "experiment": name,
        "exercise": number,
        "preset": preset,
        "seeds": seed_list,
        "train_config": last_config | {"seed": seed},
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
    """``python -m models.training.experiments positional|norm_ffn``: exit 0, 2 on bad input, 130 on Ctrl-C."""
    from models.training.gpt_chars import FLAGS, MODEL_PRESETS
    from models.utils.cli import OneLineParser, finite_float, guard, int_in, output_dir, positive_int, text

    p = OneLineParser(prog="python -m models.training.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument(
        "--preset",
        choices=sorted(MODEL_PRESETS),
        default=None,
        help="gpu or cpu (default: gpu when CUDA is present, else cpu)",
    )
    p.add_argument("--steps", type=positive_int(), default=5000, help="training steps (default 5000)")
    p.add_argument("--eval-interval", type=positive_int(), default=None)
    p.add_argument("--eval-iters", type=positive_int(), default=None)
    p.add_argument(
        "--threshold",
        type=finite_float(0, lo_open=True),
        default=None,
        help="val loss to time (default: the worse mid-run val loss)",
    )
    p.add_argument("--seed", type=int_in(0), default=1337, help="first seed (default 1337)")
    p.add_argument(
        "--seeds", type=positive_int(1000, "seeds per variant"), default=1, help="seeds per variant (default 1)"
    )
    p.add_argument("--device", type=text(), default=None)
    p.add_argument(
        "--out", type=output_dir(), default="runs/experiments", help="output folder (default runs/experiments)"
    )
    args = p.parse_args(argv)
    flags = FLAGS | {"steps": "--steps", "max_iters": "--steps", "lr_decay_iters": "--steps", "seeds": "--seeds"}
    return guard(lambda: _main(args), flags)


def _main(args) -> int:
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
        seeds=args.seeds,
    )
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

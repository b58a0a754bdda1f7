"""``python -m proofs report``: a page per exercise (derivation in LaTeX and Markdown, the
check's result, its figure), an index, and ``results.json``. The folder is built aside and
swapped in only when complete, so a failed run leaves any earlier report intact."""

from __future__ import annotations

import json
from pathlib import Path

from models.utils.device import describe, pick_device
from models.utils.files import check_replaceable, replace_dir
from proofs import REGISTRY, numbers
from proofs.run import run_one


def _page(r: dict, fig: str | None) -> str:
    out = [f"# Exercise {r['exercise']}: {r['name']}", "", f"**Claim.** {r['claim']}", ""]
    if "derivation" in r:
        out += ["## Derivation", "", r["derivation"].markdown(), ""]
    if "check" in r:
        out += ["## Empirical check", "", "```", r["check"].text(), "```", ""]
    if fig:
        out += ["## Figure", "", f"![{r['name']}]({fig})", ""]
    if r.get("error"):
        out += ["## Failure", "", "```", r["traceback"], "```", ""]
    out += [f"Verdict: **{r['verdict']}** ({r['seconds']:.2f} s)", ""]
    return "\n".join(out)


def write_report(out: str | Path = "report", device=None, seed: int = 0) -> Path:
    """Run every registered exercise and write the report folder ``out`` whole."""
    dev = pick_device(device)
    check_replaceable(out, "out")  # a user's folder is refused before the exercises run

    def build(tmp: Path) -> None:
        results, index = (
            [],
            [
                f"# Report: {len(REGISTRY)} exercises",
                "",
                f"Device: {describe(dev)}; seed {seed}.",
                "",
                "| exercise | name | derivation | check | page |",
                "|---|---|---|---|---|",
            ],
        )
        for n in numbers():
            name = REGISTRY[n]
            r = run_one(n, device=str(dev), seed=seed, figure_path=tmp / f"{name}.png")
            fig = f"{name}.png" if (tmp / f"{name}.png").exists() else None
            (tmp / f"{name}.md").write_text(_page(r, fig), encoding="utf-8")
            if "derivation" in r:
                (tmp / f"{name}.tex").write_text(r["derivation"].latex_document(), encoding="utf-8")
            index.append(f"| {n} | {name} | {r['derivation_status']} | {r['verdict']} | [{name}.md]({name}.md) |")
            results.append(
                {
                    "exercise": n,
                    "name": name,
                    "claim": r["claim"],
                    "verdict": r["verdict"],
                    "seconds": r["seconds"],
                    "error": r.get("error"),
                    "derivation": r["derivation"].to_dict() if "derivation" in r else None,
                    "check": r["check"].to_dict() if "check" in r else None,
                    "figure": fig,
                    "tex": f"{name}.tex" if "derivation" in r else None,
                }
            )
        (tmp / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
        summary = {
            "device": describe(dev),
            "seed": seed,
            "passed": all(x["verdict"] == "PASS" for x in results),
            "exercises": results,
        }
        (tmp / "results.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")

    return replace_dir(out, build)

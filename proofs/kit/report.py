"""``python -m proofs report``: a page per exercise (derivation in LaTeX and Markdown, the
check's result, its figure), an index, ``results.json``, and with ``pdf`` one compiled booklet of
them all (:mod:`proofs.kit.booklet`). The folder is built aside and
swapped in only when complete, so a failed run leaves any earlier report intact."""

from __future__ import annotations

import json
from pathlib import Path

from derive import prose
from models.utils.device import describe, pick_device
from models.utils.files import check_replaceable, replace_dir
from proofs import REGISTRY, load, numbers
from proofs.kit.booklet import booklet_tex, compile_pdf, require_pdflatex
from proofs.kit.runner import Outcome, run_one


def caption(mod) -> str:
    """The figure's caption: the first sentence of the exercise's ``figure`` docstring."""
    doc = " ".join((mod.figure.__doc__ or "").split())
    return doc.split(". ")[0].rstrip(".") + "." if doc else ""


def _page(number: str, name: str, r: Outcome) -> str:
    out = [f"# Exercise {number}: {name}", "", f"**Claim.** {prose.to_markdown(r.mod.CLAIM)}", ""]
    if r.derivation is not None:
        out += ["## Derivation", "", r.derivation.markdown(), ""]
    if r.result is not None:
        out += ["## Empirical check", "", "```", r.result.text(), "```", ""]
    if r.figure is not None:
        out += ["## Figure", "", f"![{name}]({r.figure.name})", "", f"*{caption(r.mod)}*", ""]
    if r.error:
        out += ["## Failure", "", "```", r.traceback, "```", ""]
    out += [f"Verdict: **{r.verdict}** ({r.seconds:.2f} s)", ""]
    return "\n".join(out)


def write_report(
    out: str | Path = "report", device=None, seed: int = 0, say=None, pdf: bool = False
) -> tuple[Path, bool]:
    """Run every registered exercise and write the report folder ``out`` whole; returns its path and
    whether every exercise passed. A user's folder at ``out`` is refused (ValueError naming ``out``),
    and ``pdf`` without pdflatex installed (ValueError naming ``pdf``), before any exercise runs.
    ``say`` (e.g. ``print``) receives one progress line per exercise. With ``pdf`` the folder also
    holds ``booklet.pdf`` (and its source ``booklet.tex``)."""
    dev = pick_device(device)
    check_replaceable(out, "out")
    if pdf:
        require_pdflatex("pdf")
    verdicts, pages = [], []

    def build(tmp: Path) -> None:
        results = []
        index = [f"# Report: {len(REGISTRY)} exercises", "", f"Device: {describe(dev)}; seed {seed}.", ""]
        index += ["| exercise | name | derivation | check | seconds | figure | page |", "|---|---|---|---|---|---|---|"]
        for n in numbers():
            name = REGISTRY[n]
            r = run_one(load(n), device=str(dev), seed=seed, figure_path=tmp / f"{name}.png")
            (tmp / f"{name}.md").write_text(_page(n, name, r), encoding="utf-8")
            if r.derivation is not None:
                (tmp / f"{name}.tex").write_text(r.derivation.latex_document(), encoding="utf-8")
            thumb = f'<img src="{r.figure.name}" width="160">' if r.figure else "(none)"
            index.append(
                f"| {n} | {name} | {r.status} | {r.verdict} | {r.seconds:.1f} | {thumb} | [{name}.md]({name}.md) |"
            )
            files = {"figure": r.figure.name if r.figure else None, "tex": f"{name}.tex" if r.derivation else None}
            results.append(r.record(name=name, seconds=r.seconds, **files))
            verdicts.append(r.verdict == "PASS")
            pages.append((n, name, r))
            if say is not None:
                say(f"[{len(verdicts):>2}/{len(REGISTRY)}] {n:>6} {name:<24} {r.verdict:<5} {r.seconds:6.1f} s")
        if pdf:
            index += ["", "All of it in one document: [booklet.pdf](booklet.pdf)."]
        (tmp / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
        summary = {
            "device": describe(dev),
            "seed": seed,
            "passed": all(x["verdict"] == "PASS" for x in results),
            "exercises": results,
        }
        (tmp / "results.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
        if pdf:
            if say is not None:
                say("compiling booklet.pdf with pdflatex")
            compile_pdf(booklet_tex(pages, describe(dev), seed), tmp)

    path = replace_dir(out, build)
    return path, all(verdicts)

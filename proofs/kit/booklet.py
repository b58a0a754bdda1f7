"""The report as one PDF booklet (``python -m proofs report --pdf``): a contents table of verdicts,
then for each exercise, on a new page, its claim, its figure, its derivation typeset and its check's
output. Compiled with ``pdflatex``, which must be installed (TeX Live: ``texlive-latex-recommended``)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from derive import prose
from derive.engine import LATEX_PREAMBLE

WRAP = 95  # characters per line of check output, at \scriptsize in the text width


def require_pdflatex(flag: str = "pdf") -> str:
    """The path of ``pdflatex``; ValueError naming ``flag`` when it is not installed."""
    found = shutil.which("pdflatex")
    if found is None:
        raise ValueError(
            f"{flag}: pdflatex is not installed; install TeX Live (Debian: apt-get install "
            "texlive-latex-recommended) or leave out the PDF"
        )
    return found


def _plain(text: str) -> str:
    """Program output as LaTeX lines in a typewriter font: wrapped, escaped, spaces kept."""
    from pylatexenc.latexencode import unicode_to_latex

    lines = []
    for line in text.splitlines() or [""]:
        indent = len(line) - len(line.lstrip(" "))
        lines += textwrap.wrap(line, WRAP, subsequent_indent=" " * (indent + 4), drop_whitespace=False) or [""]
    body = [unicode_to_latex(ln, unknown_char_policy="replace").replace(" ", "~") or "~" for ln in lines]
    return "{\\scriptsize\\ttfamily\\noindent " + "\\\\\n".join(body) + "\\par}"


def _exercise(number: str, name: str, r) -> str:
    """One exercise's pages; ``r`` is its :class:`proofs.kit.runner.Outcome`."""
    from proofs.kit.report import caption

    out = ["\\clearpage", f"\\section*{{Exercise {number}: \\texttt{{{prose.to_latex(name)}}}}}"]
    out.append(f"\\noindent\\textbf{{Claim.}} {prose.to_latex(r.mod.CLAIM)}\\par")
    if r.figure is not None:
        out += [
            "\\begin{center}",
            f"\\includegraphics[width=\\linewidth,height=0.42\\textheight,keepaspectratio]{{{r.figure.name}}}\\\\",
            f"\\small\\textit{{{prose.to_latex(caption(r.mod))}}}",
            "\\end{center}",
        ]
    if r.derivation is not None:
        out.append(r.derivation.latex())
    if r.result is not None:
        out += ["\\subsection*{Empirical check}", _plain(r.result.text())]
    if r.error:
        out += ["\\subsection*{Failure}", _plain(r.error)]
    out.append(f"\\par\\medskip\\noindent Verdict: \\textbf{{{r.verdict}}} ({r.seconds:.1f} s)")
    return "\n".join(out)


def _text(s: str) -> str:
    """Plain text that is not prose (a device's name) for LaTeX: specials escaped, Unicode mapped."""
    from pylatexenc.latexencode import unicode_to_latex

    return unicode_to_latex(s, unknown_char_policy="replace")


def booklet_tex(pages: list[tuple[str, str, object]], device: str, seed: int) -> str:
    """The booklet's LaTeX source; ``pages`` holds ``(number, name, Outcome)`` in order."""
    rows = [
        f"{n} & \\texttt{{{prose.to_latex(name)}}} & {r.status} & {r.verdict} & {r.seconds:.1f} \\\\"
        for n, name, r in pages
    ]
    head = [
        LATEX_PREAMBLE + "\\usepackage[margin=2.2cm]{geometry}\n\\begin{document}",
        "\\section*{Transformer exercises: derivations and checks}",
        f"Device: {_text(device)}; seed {seed}. Each exercise starts on a new page with its figure.",
        "\\begin{center}\\small\\begin{tabular}{llllr}",
        "exercise & module & derivation & check & seconds \\\\ \\hline",
        *rows,
        "\\end{tabular}\\end{center}",
    ]
    return "\n".join(head + [_exercise(n, name, r) for n, name, r in pages] + ["\\end{document}\n"])


def compile_pdf(tex: str, folder: Path, stem: str = "booklet") -> Path:
    """Write ``stem.tex`` in ``folder`` (beside the figures it names) and compile it to ``stem.pdf``;
    pdflatex's own by-products are removed. Raises RuntimeError with the log's last lines on failure."""
    exe = require_pdflatex()
    (folder / f"{stem}.tex").write_text(tex, encoding="utf-8")
    r = subprocess.run(
        [exe, "-interaction=nonstopmode", "-halt-on-error", f"{stem}.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    log = (folder / f"{stem}.log").read_text(errors="replace") if (folder / f"{stem}.log").exists() else r.stdout
    for ext in ("aux", "log", "out"):
        (folder / f"{stem}.{ext}").unlink(missing_ok=True)
    if r.returncode != 0:
        raise RuntimeError("pdflatex failed on the booklet:\n" + "\n".join(log.splitlines()[-25:]))
    return folder / f"{stem}.pdf"

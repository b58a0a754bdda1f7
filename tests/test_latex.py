"""Every exercise's derivation compiles with pdflatex into pages that nothing runs off: no LaTeX
error, no glyph missing from the font, and no line overfull by more than 10 pt (the width a reader
can see; a few points is TeX's tolerance at work). Skipped where pdflatex is not installed."""

import re
import shutil
import subprocess

import pytest

import proofs
from derive.engine import Derivation

pytestmark = [  # pdflatex runs take about 0.5 s each: the quick subset leaves them to CI
    pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed"),
    pytest.mark.slow,
]
MAX_OVERFULL_PT = 10.0


def compile_tex(tex: str, folder) -> str:
    """Compile ``tex`` in ``folder`` with pdflatex and return its log; fails the test on an error."""
    (folder / "d.tex").write_text(tex, encoding="utf-8")
    r = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )
    log = (folder / "d.log").read_text(errors="replace")
    assert r.returncode == 0, r.stdout[-2000:]
    return log


def overfull_pt(log: str) -> list[float]:
    """The widths by which lines overflow, in pt, from a pdflatex log."""
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


@pytest.mark.parametrize("number", proofs.numbers())
def test_derivation_pages_fit(number, tmp_path):
    log = compile_tex(proofs.load(number).derivation().latex_document(), tmp_path)
    assert "Missing character" not in log, [ln for ln in log.splitlines() if "Missing character" in ln]
    worst = max(overfull_pt(log), default=0.0)
    assert worst <= MAX_OVERFULL_PT, f"a line runs {worst} pt past the margin"


def test_the_check_catches_a_wide_line(tmp_path):
    """Negative control: a display far wider than the page, without the engine's shrinking, is reported."""
    body = " + ".join(f"x_{{{i}}}" for i in range(80))
    tex = Derivation("wide").latex_document().replace("\\end{document}", f"\\[ {body} \\]\n\\end{{document}}")
    assert max(overfull_pt(compile_tex(tex, tmp_path))) > 100


def test_a_derivation_without_steps_compiles(tmp_path):
    compile_tex(Derivation("Exercise 0: $x$ and 100%", ["$x$ real"]).latex_document(), tmp_path)

"""Prose with $...$ maths (derive.prose): every allowed LaTeX command renders in all three targets,
and the check refuses what would not."""

import re
import shutil

import pytest

from derive import prose

WORDS = sorted(m for m in prose.MACROS if m.isalpha())
# commands that take an argument, and what they need to render
ARGS = {"sqrt": "{x}", "frac": "{a}{b}", "mathrm": "{Var}", "text": "{ model}", "mathbb": "{R}", "mathcal": "{N}"}
PAIRS = {
    "left": r"( x \right)",
    "right": None,
    "langle": r"q, k \rangle",
    "rangle": None,
    "lfloor": r"x \rfloor",
    "rfloor": None,
    "lceil": r"x \rceil",
    "rceil": None,
}


def sample(m: str) -> str:
    """A small piece of maths that uses the command ``m`` correctly."""
    if m in PAIRS:
        return rf"\{m} {PAIRS[m]}" if PAIRS[m] else ""
    return rf"a \{m}{ARGS.get(m, '')} b"


SAMPLES = [s for s in (sample(m) for m in WORDS) if s]


@pytest.mark.parametrize("tex", SAMPLES)
def test_every_allowed_command_reads_as_text(tex):
    out = prose.maths_to_text(tex)
    assert "\\" not in out and out.strip(), (tex, out)
    if tex not in (r"a \quad b", r"a \qquad b"):  # spacing commands render as spaces
        assert out.replace(" ", "") != "ab", f"{tex!r} lost its command: {out!r}"  # \ne once vanished this way


def test_text_keeps_grouping_and_spacing():
    assert prose.to_text(r"$R_{n-m}$ and $x^{2i}$") == "R_{n-m} and x^{2i}"
    assert prose.to_text(r"$a \ne b$, $x \to \infty$, $\|J\|_F$") == "a ≠ b, x → ∞, ‖J‖_F"
    assert prose.to_text(r"$\mathrm{Var}(q \cdot k/\sqrt{d_k}) = 1$") == "Var(q·k/√(d_k)) = 1"


@pytest.mark.parametrize(
    "bad, why",
    [
        ("odd $x", "unbalanced"),
        ("d_k is the key width", "outside"),
        ("x^2 grows", "outside"),
        ("scale by sqrt(d_k)", "outside"),
        ("m -> -oo", "outside"),
        ("a <= b", "outside"),
        (r"the \alpha of it", "outside"),
        (r"$\binom{n}{k}$", "not in derive.prose.MACROS"),
        (r"$\tfrac{1}{2}$", "not in derive.prose.MACROS"),
    ],
)
def test_check_refuses(bad, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        prose.check(bad)


@pytest.mark.parametrize("good", ["plain words, 100% of them", r"$d_k \ge 1$ keys", "", "a -- b, (i, j)"])
def test_check_accepts(good):
    assert prose.check(good) == good


def test_code_spans_are_code_everywhere():
    s = "the same count as `derive.counts.attention_params(bias=False)` for $h$ heads"
    assert prose.check(s) == s
    assert prose.to_text(s) == "the same count as derive.counts.attention_params(bias=False) for h heads"
    assert r"\texttt{derive.counts.attention\_params(bias=False)}" in prose.to_latex(s)
    with pytest.raises(ValueError, match="unbalanced '`'"):
        prose.check("an `odd one")


def test_latex_escapes_text_and_keeps_maths():
    assert prose.to_latex(r"50% of {a_b}: $a_b^{2}$ & #1") == r"50\% of \{a\_b\}: $a_b^{2}$ \& \#1"


def test_every_allowed_command_renders_in_mathtext(tmp_path):
    """matplotlib's mathtext draws figure labels: every sample must parse there too."""
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    failed = []
    for tex in SAMPLES:
        if tex in (r"a \le b", r"a \ge b"):  # prose only: mathtext wants \leq, \geq (see MACROS)
            continue
        try:
            parser.parse(f"${tex}$")
        except ValueError as e:
            failed.append((tex, str(e).splitlines()[0]))
    assert not failed


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_every_allowed_command_compiles(tmp_path):
    from test_latex import compile_tex

    from derive.engine import LATEX_PREAMBLE

    body = "\n\n".join(prose.to_latex(f"sample ${tex}$ here") for tex in SAMPLES)
    compile_tex(LATEX_PREAMBLE + "\\begin{document}\n" + body + "\n\\end{document}\n", tmp_path)

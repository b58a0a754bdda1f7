r"""Prose with maths in it: the one format of every title, assumption and reason in a derivation.

Contract: prose is plain text in which maths is written as LaTeX between single dollar signs,
``"independence: $E[q_i k_i] = E[q_i]\,E[k_i] = 0$"``, as in a LaTeX paper or a Jupyter
Markdown cell, and code (a function's name) between backticks, as in Markdown. From that one string
come three renderings:

- :func:`to_latex`: the text escaped for LaTeX, the maths passed through, so it is typeset, code in
  a typewriter font;
- :func:`to_markdown`: unchanged, for Jupyter and Markdown viewers with MathJax or KaTeX;
- :func:`to_text`: the maths turned into Unicode text (``√(d_k)``, ``α``, ``→``) by pylatexenc, a
  maintained LaTeX parser, and code without its backticks, for the terminal.

:func:`check` refuses what would render badly: an odd number of ``$``, a LaTeX command outside
:data:`MACROS` (the commands whose Unicode rendering has been checked), and maths left in the
text, such as ``d_k``, ``x^2``, ``sqrt(``, ``->`` or ``<=`` outside dollar signs and backticks.

>>> to_text(r"scale by $1/\sqrt{d_k}$, so $\mathrm{Var} \to 1$")
'scale by 1/√(d_k), so Var → 1'
>>> to_latex("100% of $x_i$ by `attention_params`")
'100\\% of $x_i$ by \\texttt{attention\\_params}'
"""

from __future__ import annotations

import re
from functools import lru_cache

# LaTeX commands allowed inside $...$: each renders in pdflatex (amsmath, amssymb), in MathJax,
# in matplotlib's mathtext (but \le and \ge: write \leq, \geq in figure labels), and as readable Unicode
# through to_text (tests/test_prose.py checks text, mathtext and pdflatex).
MACROS = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta lambda mu nu xi pi rho sigma tau phi "
    "varphi chi psi omega Gamma Delta Theta Lambda Sigma Phi Psi Omega ell "
    "sqrt frac mathrm text mathbb mathcal sum prod log exp sin cos max min lim "
    "to infty le ge leq geq ll gg ne neq approx sim propto equiv in notin mid times cdot cdots ldots dots "
    "pm mp partial nabla langle rangle lfloor rfloor lceil rceil left right "
    "quad qquad , ; ! | { } _ % # & mapsto subseteq cup cap emptyset".split()
)
_TEXT_MATHS = re.compile(r"\w_\w|\w\^|\^\(|sqrt\(|->|<=|>=|!=|\\[A-Za-z]+|-oo|\boo\b")
_SPACED = re.compile(r"\s*([→≤≥≠≈∈↦≪≫×∼])\s*")
_MACRO = re.compile(r"\\([A-Za-z]+|.)")
# pylatexenc's defaults either drop these or flatten their arguments; the Unicode is given here.
_TEXT_REPL = {"ne": "≠", "neq": "≠", "|": "‖", "mid": " | "}


def split(s: str) -> list[tuple[bool, str]]:
    """``s`` as ``(is_maths, piece)`` pairs in order; ``$`` delimits maths. Raises ValueError for an
    odd number of ``$``.

    >>> split("a $b$ c")
    [(False, 'a '), (True, 'b'), (False, ' c')]
    """
    parts = s.split("$")
    if len(parts) % 2 == 0:
        raise ValueError(f"prose: unbalanced '$' in {s!r}")
    return [(i % 2 == 1, p) for i, p in enumerate(parts) if p]


def _code_split(text: str) -> list[tuple[bool, str]]:
    """A text piece as ``(is_code, piece)`` pairs; backticks delimit code. ValueError when unbalanced."""
    parts = text.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"prose: unbalanced '`' in {text!r}")
    return [(i % 2 == 1, p) for i, p in enumerate(parts) if p]


def check(s: str) -> str:
    """Return ``s`` if it renders well everywhere, else raise ValueError naming the fault: unbalanced
    ``$``, a LaTeX command outside :data:`MACROS`, or maths written as text outside ``$...$``.

    >>> check("d_k is large")
    Traceback (most recent call last):
    ...
    ValueError: prose: maths outside $...$ ('d_k') in 'd_k is large'
    """
    for maths, piece in split(s):
        if maths:
            unknown = sorted({m for m in _MACRO.findall(piece) if m not in MACROS})
            if unknown:
                raise ValueError(f"prose: LaTeX command(s) {unknown} are not in derive.prose.MACROS, in {s!r}")
            continue
        for code, bit in _code_split(piece):
            if not code and (m := _TEXT_MATHS.search(bit)):
                raise ValueError(f"prose: maths outside $...$ ({m.group(0)!r}) in {s!r}")
    return s


_LATEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _escape(text: str) -> str:
    return "".join(_LATEX_ESCAPE.get(c, c) for c in text)


def to_latex(s: str) -> str:
    """``s`` for a LaTeX document: text escaped, maths kept between ``$``, code in ``\\texttt``."""
    out = []
    for maths, p in split(s):
        if maths:
            out.append(f"${p}$")
        else:
            out += [f"\\texttt{{{_escape(b)}}}" if code else _escape(b) for code, b in _code_split(p)]
    return "".join(out)


def to_markdown(s: str) -> str:
    """``s`` for Markdown with MathJax or KaTeX (Jupyter, GitHub): unchanged, maths between ``$``."""
    split(s)
    return s


@lru_cache(maxsize=1)
def _converter():
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    db = get_default_latex_context_db()
    db.add_context_category(
        "derive.prose", prepend=True, macros=[MacroTextSpec(k, simplify_repl=v) for k, v in _TEXT_REPL.items()]
    )
    return LatexNodes2Text(
        math_mode="text",
        keep_braced_groups=True,
        keep_braced_groups_minlen=2,
        strict_latex_spaces="based-on-source",
        latex_context=db,
    )


def maths_to_text(tex: str) -> str:
    r"""One piece of LaTeX maths as Unicode text; braces that group more than one character are kept
    so that ``R_{n-m}`` does not read as ``R_n - m``.

    >>> maths_to_text(r"R_m^T R_n = R_{n-m}")
    'R_m^T R_n = R_{n-m}'
    """
    out = _converter().latex_to_text(tex)
    out = _SPACED.sub(r" \1 ", out)  # a relation gets one space each side, however it was typed
    out = re.sub(r"\s*·\s*", "·", out)  # a product binds tight: q·k
    out = re.sub(r"‖\s*(.*?)\s*‖", r"‖\1‖", out)
    out = re.sub(r"⟨\s*(.*?)\s*⟩", r"⟨\1⟩", out)
    return re.sub(" {2,}", " ", out).strip()


def to_text(s: str) -> str:
    """``s`` for a terminal: text as written, maths as Unicode (see :func:`maths_to_text`), code
    without its backticks."""
    return "".join(maths_to_text(p) if maths else p.replace("`", "") for maths, p in split(s))

"""The derivation engine: an ordered list of steps, each checked by sympy when it is added.

Contract: a step is *proved* when the named sympy strategy reduces ``lhs - rhs`` to
exactly zero (or settles the limit); if it cannot, the step is evaluated at seeded
random points and marked *spot-checked*; if that also fails, :class:`StepFailed`
is raised naming the step. Nothing is ever reported as proved that sympy did not prove.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> d = Derivation("A square")
>>> d.eq((x + 1) ** 2, x**2 + 2 * x + 1, "expand the square", strategy="expand").status
'proved'
>>> d.all_proved
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import sympy as sp

PROVED = "proved"
SPOT_CHECKED = "spot-checked"
DEFINITION = "definition"  # a name given to an expression: states nothing, so needs no proof


class StepFailed(AssertionError):
    """A step that sympy disproved or that failed at a spot-check point."""


def _zero_expr(e) -> bool:
    """True when ``e`` is exactly zero (a scalar, or every entry of a matrix)."""
    if isinstance(e, sp.MatrixBase):
        return all(_zero_expr(v) for v in e)
    return e == 0 or e.is_zero is True


def _apply(fn, e):
    return e.applyfunc(fn) if isinstance(e, sp.MatrixBase) else fn(e)


STRATEGIES = {
    "expand": sp.expand,
    "trig": lambda e: sp.trigsimp(sp.expand(e, trig=True)),
    "expand_trig": lambda e: sp.expand(e, trig=True),
    "trigsimp": sp.trigsimp,
    "cancel": sp.cancel,
    "factor": sp.factor,
    "simplify": sp.simplify,
    "exact": lambda e: e,
}


@dataclass
class Step:
    """One checked statement ``lhs <relation> rhs`` with its reason and status."""

    lhs: object
    rhs: object
    reason: str
    status: str
    strategy: str
    relation: str = "="  # "=", "->" for a limit, or "<", "<=", ">", ">="
    var: object = None
    point: object = None
    note: str = ""

    def as_expr(self):
        if self.relation == "->":
            return sp.Eq(sp.Limit(self.lhs, self.var, self.point), self.rhs, evaluate=False)
        if self.status == DEFINITION:
            return sp.Eq(sp.Symbol(sp.sstr(self.lhs) + " :"), self.rhs, evaluate=False)
        if self.relation != "=":
            return sp.Rel(self.lhs, self.rhs, self.relation, evaluate=False)
        return sp.Eq(self.lhs, self.rhs, evaluate=False)

    def latex(self) -> str:
        return sp.latex(self.as_expr())

    def text(self) -> str:
        return sp.pretty(self.as_expr(), use_unicode=True)

    def to_dict(self) -> dict:
        return {
            "statement": sp.sstr(self.as_expr()),
            "latex": self.latex(),
            "reason": self.reason,
            "status": self.status,
            "strategy": self.strategy,
            "note": self.note,
        }


def _spot_check(diff, n_points: int, seed: int, tol: float = 1e-9) -> str:
    """Evaluate ``diff`` at seeded random points of its free symbols; return a note or raise."""
    syms = sorted(diff.free_symbols, key=lambda s: s.name)
    rng = random.Random(seed)
    for _ in range(n_points):
        sub = {}
        for s in syms:
            if s.is_integer:
                v = rng.randint(1, 40) if (s.is_positive or s.is_nonnegative) else rng.randint(-40, 40)
            else:
                v = rng.uniform(0.1, 3.0) if (s.is_positive or s.is_nonnegative) else rng.uniform(-3, 3)
            sub[s] = v
        val = _apply(lambda e, sub=sub: e.subs(sub).evalf(30), diff)
        vals = list(val) if isinstance(val, sp.MatrixBase) else [val]
        for v in vals:
            if not v.is_number or abs(complex(v)) > tol:
                raise StepFailed(f"differs by {v} at {sub}")
    names = ", ".join(s.name for s in syms) or "no free symbols"
    return f"equal at {n_points} seeded random points of ({names})"


@dataclass
class Derivation:
    """An ordered list of checked steps under stated assumptions."""

    title: str
    assumptions: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    spot_points: int = 20
    seed: int = 0

    # -- adding steps --------------------------------------------------------------
    def define(self, lhs, rhs, reason: str) -> Step:
        """Add a definition ``lhs := rhs`` (a name for an expression, or a model's formula as given):
        it asserts nothing, is shown as a definition and is never counted as proved."""
        return self._add(Step(sp.sympify(lhs), sp.sympify(rhs), reason, DEFINITION, "definition"))

    def eq(self, lhs, rhs, reason: str, strategy: str = "simplify", computed=None, rule: str | None = None) -> Step:
        """Add ``lhs = rhs``. If ``computed`` is given, the check is ``computed == rhs``:
        ``lhs`` is then only how the quantity is displayed (e.g. ``Var(q_i k_i)``) and
        ``computed`` is what sympy evaluated it to. ``rule`` names a premise applied in words (e.g.
        linearity of variance for a symbolic number of terms): sympy then checks only the arithmetic,
        so the step is marked spot-checked, never proved."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: unknown {strategy!r}; choose from {sorted(STRATEGIES)}")
        left = lhs if computed is None else computed
        lhs_s, rhs_s = sp.sympify(left), sp.sympify(rhs)
        if isinstance(lhs_s, sp.MatrixBase) != isinstance(rhs_s, sp.MatrixBase):
            raise StepFailed(f"step {len(self.steps) + 1} ({reason}): matrix compared with scalar")
        diff = lhs_s - rhs_s
        status, note = self._settle(diff, strategy, reason)
        if rule is not None:
            status, note = SPOT_CHECKED, f"applies {rule} in words; sympy checked the arithmetic only"
        return self._add(Step(sp.sympify(lhs), rhs_s, reason, status, strategy, note=note))

    def limit(self, expr, var, point, value, reason: str) -> Step:
        """Add ``lim_{var -> point} expr = value``, settled by ``sympy.limit``."""
        got = sp.limit(expr, var, point)
        if got != value and sp.simplify(got - value) != 0:  # got == value also covers oo
            raise StepFailed(f"step {len(self.steps) + 1} ({reason}): limit is {got}, not {value}")
        st = Step(expr, sp.sympify(value), reason, PROVED, "limit", relation="->", var=var, point=point)
        return self._add(st)

    def holds(self, lhs, op: str, rhs, reason: str) -> Step:
        """Add the inequality ``lhs op rhs`` (op one of < <= > >=); proved when sympy
        reduces it to True, else spot-checked at seeded random points of its symbols."""
        if op not in ("<", "<=", ">", ">="):
            raise ValueError(f"op: expected one of < <= > >=, got {op!r}")
        rel = sp.Rel(sp.sympify(lhs), sp.sympify(rhs), op, evaluate=False)
        gap = sp.simplify(rel.rhs - rel.lhs if op in ("<", "<=") else rel.lhs - rel.rhs)
        if gap.is_positive or (op in ("<=", ">=") and gap.is_nonnegative) or sp.simplify(rel) is sp.true:
            status, note = PROVED, ""
        else:
            syms = sorted(rel.free_symbols, key=lambda s: s.name)
            if not syms:  # two numbers sympy could not order exactly: the relation is simply false
                raise StepFailed(f"step {len(self.steps) + 1} ({reason}) fails: {sp.sstr(rel)} is false")
            rng = random.Random(self.seed + len(self.steps))
            for _ in range(self.spot_points):
                sub = {s: rng.randint(2, 4096) if s.is_integer else rng.uniform(0.1, 100.0) for s in syms}
                if not bool(rel.subs(sub)):
                    raise StepFailed(f"step {len(self.steps) + 1} ({reason}) fails at {sub}")
            status, note = SPOT_CHECKED, f"true at {self.spot_points} seeded random points"
        step = Step(rel.lhs, rel.rhs, reason, status, "simplify", relation=op, note=note)
        return self._add(step)

    def _settle(self, diff, strategy, reason):
        try:
            if _zero_expr(_apply(STRATEGIES[strategy], diff)):
                return PROVED, ""
            if strategy != "simplify" and _zero_expr(_apply(sp.simplify, diff)):
                return PROVED, "settled by simplify after " + strategy
        except (TypeError, NotImplementedError):
            pass
        try:
            note = _spot_check(diff, self.spot_points, self.seed + len(self.steps))
        except StepFailed as e:
            raise StepFailed(f"step {len(self.steps) + 1} ({reason}) fails: {e}") from None
        return SPOT_CHECKED, note

    def _add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    # -- status --------------------------------------------------------------------
    @property
    def all_proved(self) -> bool:
        """Every step that claims something is proved (definitions claim nothing)."""
        return all(s.status in (PROVED, DEFINITION) for s in self.steps)

    @property
    def status(self) -> str:
        return PROVED if self.all_proved else SPOT_CHECKED

    # -- rendering -----------------------------------------------------------------
    def text(self) -> str:
        out = [self.title, "=" * len(self.title)]
        if self.assumptions:
            out.append("Assumptions:")
            out += [f"  - {a}" for a in self.assumptions]
        for i, s in enumerate(self.steps, 1):
            out.append(f"Step {i} [{s.status}, {s.strategy}]: {s.reason}")
            out += ["    " + line for line in s.text().splitlines()]
            if s.note:
                out.append(f"    ({s.note})")
        return "\n".join(out)

    def latex(self) -> str:
        """A LaTeX fragment (an ``enumerate`` of steps) that compiles inside a document."""
        out = [f"\\subsection*{{{_tex_escape(self.title)}}}"]
        if self.assumptions:
            out.append("\\textbf{Assumptions.}\\begin{itemize}")
            out += [f"\\item {_tex_escape(a)}" for a in self.assumptions]
            out.append("\\end{itemize}")
        out.append("\\begin{enumerate}")
        for s in self.steps:
            out.append(f"\\item \\textit{{{_tex_escape(s.reason)}}} [{s.status}]")
            out.append(f"\\[ {s.latex()} \\]")
        out.append("\\end{enumerate}")
        return "\n".join(out)

    def latex_document(self) -> str:
        return (
            "\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n"
            + self.latex()
            + "\n\\end{document}\n"
        )

    def markdown(self) -> str:
        out = [f"### {self.title}", ""]
        if self.assumptions:
            out += ["Assumptions:", ""] + [f"- {a}" for a in self.assumptions] + [""]
        for i, s in enumerate(self.steps, 1):
            out.append(f"{i}. {s.reason} (**{s.status}**, `{s.strategy}`)")
            out.append(f"   $$ {s.latex()} $$")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "assumptions": list(self.assumptions),
            "status": self.status,
            "steps": [s.to_dict() for s in self.steps],
        }

    def _repr_latex_(self) -> str:
        body = " \\\\ ".join(f"\\text{{{i}. [{s.status}]}}\\; {s.latex()}" for i, s in enumerate(self.steps, 1))
        return f"$\\begin{{array}}{{l}} {body} \\end{{array}}$"

    def __str__(self) -> str:
        return self.text()


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex_escape(s: str) -> str:
    return "".join(_TEX.get(c, c) for c in s)

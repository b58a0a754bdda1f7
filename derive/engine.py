"""The derivation engine: an ordered list of steps, each checked by sympy when it is added.

Contract: a step is *proved* when the named sympy strategy reduces ``lhs - rhs`` to
exactly zero (or settles the limit); if it cannot, the step is evaluated at seeded
random points and marked *spot-checked*; if that also fails, :class:`StepFailed`
is raised naming the step. Nothing is ever reported as proved that sympy did not prove.

A step may rest on a *lemma*: a premise sympy does not prove in general (say, a counting rule
over a symbolic number of terms), stated by :meth:`Derivation.lemma` among the derivation's
assumptions and named by the step (``eq(..., lemma=name)``). Sympy must still reduce the step
to exactly zero given it; the step is then *proved from a stated lemma* (:data:`FROM_LEMMA`),
never plain *proved*. A derivation's status is :data:`PROVED` when every step is proved (or a
definition), :data:`FROM_LEMMA` when no step is spot-checked but some rest on a stated lemma,
and :data:`SPOT_CHECKED` when any step is spot-checked. A premise applied in words without being
stated as a lemma (``eq(..., rule=...)``) leaves its step spot-checked.

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

from derive import prose

PROVED = "proved"
SPOT_CHECKED = "spot-checked"
FROM_LEMMA = "proved from a stated lemma"  # sympy proved it given a lemma listed in the assumptions
DEFINITION = "definition"  # a name given to an expression: states nothing, so needs no proof


class StepFailed(AssertionError):
    """A step that sympy disproved or that failed at a spot-check point.

    Raised by :meth:`Derivation.eq`, :meth:`Derivation.limit` and :meth:`Derivation.holds` (and for
    a matrix compared with a scalar); the message names the step by number and reason and, for a
    spot check, the difference and the point where it failed. It subclasses ``AssertionError``, so
    a derivation built inside a test fails that test.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> Derivation("wrong").eq((x + 1) ** 2, x**2 + 1, "forgot 2x", strategy="expand")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    derive.engine.StepFailed: step 1 (forgot 2x) fails: differs by ... at {x: ...}
    """


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
    "piecewise": lambda e: sp.simplify(sp.piecewise_fold(e.rewrite(sp.Piecewise))),  # Min, Max, Abs by cases
    "exact": lambda e: e,
}


@dataclass
class Step:
    """One checked statement ``lhs <relation> rhs`` with its reason and status.

    Steps are made by the methods of :class:`Derivation`, not by hand. ``status`` is
    :data:`PROVED` (sympy reduced it exactly), :data:`FROM_LEMMA` (sympy reduced it exactly given
    a lemma stated in the derivation's assumptions; ``note`` names it), :data:`SPOT_CHECKED`
    (equal, or true, at seeded random points only; ``note`` says where) or :data:`DEFINITION`
    (a name, claiming nothing).
    ``relation`` is ``"="``, ``"->"`` for a limit of ``lhs`` as ``var -> point``, or one of
    ``< <= > >=``; ``strategy`` names the sympy function that settled it.

    Examples
    --------
    >>> a, b, c = sp.symbols("a b c")
    >>> step = Derivation("distributivity").eq(a * (b + c), a * b + a * c, "multiply out", strategy="expand")
    >>> step.status, step.strategy, step.relation
    ('proved', 'expand', '=')
    """

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
        """The statement as an unevaluated sympy relation (``Eq``, ``Rel``, or ``Eq`` of a ``Limit``).

        A definition's left side is shown as the symbol ``"lhs :"``, so it reads ``lhs : = rhs``.

        Examples
        --------
        >>> x = sp.Symbol("x")
        >>> Derivation("limit").limit(sp.sin(x) / x, x, 0, 1, "sin x ~ x").as_expr()
        Eq(Limit(sin(x)/x, x, 0, dir='+'), 1)
        """
        if self.relation == "->":
            return sp.Eq(sp.Limit(self.lhs, self.var, self.point), self.rhs, evaluate=False)
        if self.status == DEFINITION:
            return sp.Eq(sp.Symbol(sp.sstr(self.lhs) + " :"), self.rhs, evaluate=False)
        if self.relation != "=":
            return sp.Rel(self.lhs, self.rhs, self.relation, evaluate=False)
        return sp.Eq(self.lhs, self.rhs, evaluate=False)

    def latex(self) -> str:
        r"""The statement in LaTeX (math mode, without delimiters).

        Examples
        --------
        >>> x = sp.Symbol("x")
        >>> print(Derivation("d").eq((x**2 - 1) / (x - 1), x + 1, "cancel x - 1", strategy="cancel").latex())
        \frac{x^{2} - 1}{x - 1} = x + 1
        """
        return sp.latex(self.as_expr())

    def text(self) -> str:
        """The statement pretty-printed in Unicode (several lines for powers and fractions).

        Examples
        --------
        >>> a, b, c = sp.symbols("a b c")
        >>> print(Derivation("d").eq(a * (b + c), a * b + a * c, "multiply out", strategy="expand").text())
        a⋅(b + c) = a⋅b + a⋅c
        """
        return sp.pretty(self.as_expr(), use_unicode=True)

    def to_dict(self) -> dict:
        """The step as plain data for JSON: ``statement`` (``sympy.sstr``), ``latex``, ``reason``,
        ``status``, ``strategy`` and ``note``.

        Examples
        --------
        >>> a, b = sp.symbols("a b")
        >>> Derivation("d").eq(a + b, b + a, "commutes", strategy="exact").to_dict()["statement"]
        'Eq(a + b, a + b)'
        """
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
    r"""An ordered list of checked steps under stated assumptions.

    Each step is checked when it is added (:meth:`eq`, :meth:`limit`, :meth:`holds`;
    :meth:`define` only names an expression) and :class:`StepFailed` is raised at the first
    false one, so a ``Derivation`` that exists holds only steps that passed. ``assumptions``
    are stated in words for the reader; what sympy uses are the symbols' own assumptions
    (``positive=True`` and so on). Spot checks use ``spot_points`` points drawn from
    ``random.Random(seed + step index)``, so the same derivation gives the same notes.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> der = Derivation("Pythagoras", assumptions=["x real"])
    >>> der.eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1, r"$\sin^2 x + \cos^2 x = 1$", strategy="trigsimp").status
    'proved'
    """

    title: str
    assumptions: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    spot_points: int = 20
    seed: int = 0

    # -- adding steps --------------------------------------------------------------
    def lemma(self, name: str, statement: str) -> str:
        """State a lemma among the assumptions as ``"name: statement"`` (once) and return ``name``,
        for steps that rest on it (``eq(..., lemma=name)``). Stating it proves nothing: the steps
        that use it are :data:`FROM_LEMMA`, never :data:`PROVED`. Raises ValueError for an empty or
        colon-bearing ``name``, or for a second, different statement under the same name.

        Examples
        --------
        >>> der = Derivation("d", ["x real"])
        >>> der.lemma("Lemma 1", "a finite set of n things has n elements")
        'Lemma 1'
        >>> der.assumptions
        ['x real', 'Lemma 1: a finite set of n things has n elements']
        """
        if not name or ":" in name:
            raise ValueError(f"name: a lemma needs a non-empty name without ':', got {name!r}")
        text = prose.check(f"{name}: {statement}")
        stated = [a for a in self.assumptions if a.startswith(f"{name}: ")]
        if stated and stated != [text]:
            raise ValueError(f"name: {name!r} is already stated differently: {stated[0]!r}")
        if not stated:
            self.assumptions.append(text)
        return name

    def define(self, lhs, rhs, reason: str) -> Step:
        """Add a definition ``lhs := rhs`` (a name for an expression, or a model's formula as given):
        it asserts nothing, is shown as a definition and is never counted as proved.

        Examples
        --------
        >>> x, f = sp.symbols("x f")
        >>> Derivation("d").define(f, x**2 + 1, "the function studied").status
        'definition'
        """
        return self._add(Step(sp.sympify(lhs), sp.sympify(rhs), reason, DEFINITION, "definition"))

    def eq(
        self,
        lhs,
        rhs,
        reason: str,
        strategy: str = "simplify",
        computed=None,
        rule: str | None = None,
        lemma: str | None = None,
    ) -> Step:
        """Add ``lhs = rhs``. If ``computed`` is given, the check is ``computed == rhs``:
        ``lhs`` is then only how the quantity is displayed (e.g. ``Var(q_i k_i)``) and
        ``computed`` is what sympy evaluated it to. ``rule`` names a premise applied in words (e.g.
        linearity of variance for a symbolic number of terms): sympy then checks only the arithmetic,
        so the step is marked spot-checked, never proved. ``lemma`` instead names a lemma stated with
        :meth:`lemma` among the assumptions: a step sympy proves given it is marked
        :data:`FROM_LEMMA` (and spot-checked if sympy only spot-checks the arithmetic).

        The step is proved when ``STRATEGIES[strategy]`` (or, failing that, ``simplify``) reduces
        the difference to exactly zero (every entry, for matrices); otherwise it is evaluated at
        ``spot_points`` seeded random points of its free symbols (integers in 1..40 or -40..40,
        reals in (0.1, 3) or (-3, 3) by their sign assumptions) and marked spot-checked.

        Parameters
        ----------
        lhs, rhs : sympy expression or Matrix
            The two sides (both scalars or both matrices).
        reason : str
            Why the step holds, in words; shown with the step and in any error.
        strategy : str
            A key of ``STRATEGIES``: ``expand``, ``trig``, ``expand_trig``, ``trigsimp``,
            ``cancel``, ``factor``, ``simplify``, ``piecewise`` (Min, Max, Abs split into cases) or ``exact``.
        computed : sympy expression, optional
            What is checked against ``rhs`` in place of ``lhs``.
        rule : str, optional
            A premise sympy does not check; the step is then at most spot-checked.
        lemma : str, optional
            The name of a lemma stated by :meth:`lemma`; the step is then at most proved from it.

        Returns
        -------
        Step
            The step added.

        Raises
        ------
        ValueError
            For an unknown ``strategy``, for both ``rule`` and ``lemma``, or for a ``lemma`` not
            stated among the assumptions.
        StepFailed
            When a matrix is compared with a scalar, or the sides differ at a spot-check point.

        Examples
        --------
        >>> x, y = sp.symbols("x y", real=True)
        >>> der = Derivation("difference of squares")
        >>> der.eq((x - y) * (x + y), x**2 - y**2, "multiply out", strategy="expand").status
        'proved'
        >>> der.eq(sp.Symbol("S"), 3, "count the terms", computed=x - x + 3, rule="a premise in words").status
        'spot-checked'
        >>> name = der.lemma("Lemma C", "a set of three has 3 elements")
        >>> der.eq(sp.Symbol("S"), 3, "count the terms", computed=x - x + 3, lemma=name).status
        'proved from a stated lemma'
        >>> der.status
        'spot-checked'
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: unknown {strategy!r}; choose from {sorted(STRATEGIES)}")
        if rule is not None and lemma is not None:
            raise ValueError("lemma: give a rule (applied in words) or a stated lemma, not both")
        self._stated(lemma)
        left = lhs if computed is None else computed
        lhs_s, rhs_s = sp.sympify(left), sp.sympify(rhs)
        if isinstance(lhs_s, sp.MatrixBase) != isinstance(rhs_s, sp.MatrixBase):
            raise StepFailed(f"step {len(self.steps) + 1} ({reason}): matrix compared with scalar")
        diff = lhs_s - rhs_s
        status, note = self._settle(diff, strategy, reason)
        if rule is not None:
            status, note = SPOT_CHECKED, f"applies {rule} in words; sympy checked the arithmetic only"
        elif lemma is not None:
            if status == PROVED:
                status, note = FROM_LEMMA, f"sympy proved it given {lemma} (stated in the assumptions)"
            else:
                note = f"rests on {lemma} (stated in the assumptions); {note}"
        return self._add(Step(sp.sympify(lhs), rhs_s, reason, status, strategy, note=note))

    def limit(self, expr, var, point, value, reason: str) -> Step:
        """Add ``lim_{var -> point} expr = value``, settled by ``sympy.limit`` (one-sided from
        above at a finite ``point``, as ``sympy.limit``'s default). ``value`` may be ``sp.oo``.
        The step is always proved when it is added; raises :class:`StepFailed` when the limit
        is another value.

        Examples
        --------
        >>> x = sp.Symbol("x", real=True)
        >>> Derivation("d").limit((1 + 1 / x) ** x, x, sp.oo, sp.E, "the definition of e").status
        'proved'
        """
        got = sp.limit(expr, var, point)
        if got != value and sp.simplify(got - value) != 0:  # got == value also covers oo
            raise StepFailed(f"step {len(self.steps) + 1} ({reason}): limit is {got}, not {value}")
        st = Step(expr, sp.sympify(value), reason, PROVED, "limit", relation="->", var=var, point=point)
        return self._add(st)

    def holds(self, lhs, op: str, rhs, reason: str, lemma: str | None = None) -> Step:
        r"""Add the inequality ``lhs op rhs`` (op one of < <= > >=); proved when sympy
        reduces it to True, else spot-checked at seeded random points of its symbols.

        The proof is sympy's sign assumptions on the simplified gap (``rhs - lhs`` for ``<``,
        ``<=``); the spot check draws integers in 2..4096 and reals in (0.1, 100). ``lemma`` names a
        lemma stated with :meth:`lemma` that the symbols' assumptions encode (say, a symbol declared
        nonnegative because the lemma says so): a step sympy proves is then :data:`FROM_LEMMA`.
        Raises ValueError for another ``op`` or an unstated ``lemma``, and :class:`StepFailed` when
        it fails at a point (or, with no free symbols, when it is false).

        Examples
        --------
        >>> x = sp.Symbol("x", real=True)
        >>> n = sp.Symbol("n", positive=True, integer=True)
        >>> der = Derivation("inequalities")
        >>> der.holds(x**2 + 1, ">", 0, "a square plus one").status
        'proved'
        >>> der.holds(2**n, ">=", n + 1, "Bernoulli").status
        'spot-checked'
        >>> r = sp.Symbol("R", nonnegative=True)  # R >= 0 is what the lemma states
        >>> der.holds(n + r, ">", 0, "$n + R$", lemma=der.lemma("Lemma R", r"$R \ge 0$")).status
        'proved from a stated lemma'
        """
        if op not in ("<", "<=", ">", ">="):
            raise ValueError(f"op: expected one of < <= > >=, got {op!r}")
        self._stated(lemma)
        rel = sp.Rel(sp.sympify(lhs), sp.sympify(rhs), op, evaluate=False)
        gap = sp.simplify(rel.rhs - rel.lhs if op in ("<", "<=") else rel.lhs - rel.rhs)
        if gap.is_positive or (op in ("<=", ">=") and gap.is_nonnegative) or sp.simplify(rel) is sp.true:
            status, note = PROVED, ""
            if lemma is not None:
                status, note = FROM_LEMMA, f"sympy proved it given {lemma} (stated in the assumptions)"
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

    def _stated(self, lemma: str | None) -> None:
        """ValueError naming ``lemma`` unless it is None or stated among the assumptions."""
        if lemma is not None and not any(a.startswith(f"{lemma}: ") for a in self.assumptions):
            raise ValueError(f"lemma: {lemma!r} is not stated among the assumptions; state it with Derivation.lemma")

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

    def __post_init__(self):
        prose.check(self.title)
        for a in self.assumptions:
            prose.check(a)

    def _add(self, step: Step) -> Step:
        prose.check(step.reason)
        self.steps.append(step)
        return step

    # -- status --------------------------------------------------------------------
    @property
    def all_proved(self) -> bool:
        """Every step that claims something is proved (definitions claim nothing), none from a lemma.

        True for a derivation with no steps.

        Examples
        --------
        >>> x = sp.Symbol("x")
        >>> der = Derivation("d")
        >>> _ = der.define(sp.Symbol("f"), x**2, "a name")
        >>> der.all_proved
        True
        """
        return all(s.status in (PROVED, DEFINITION) for s in self.steps)

    @property
    def status(self) -> str:
        """:data:`PROVED` when :attr:`all_proved`; :data:`FROM_LEMMA` when no step is spot-checked
        but some are proved from a stated lemma; else :data:`SPOT_CHECKED`.

        Examples
        --------
        >>> n = sp.Symbol("n", positive=True, integer=True)
        >>> der = Derivation("d")
        >>> _ = der.eq(n + n, 2 * n, "add", strategy="expand")
        >>> der.status
        'proved'
        >>> count = der.lemma("Count", "{1..n} has n elements")
        >>> _ = der.eq(sp.Symbol("N"), n, "count them", strategy="expand", computed=n, lemma=count)
        >>> der.status
        'proved from a stated lemma'
        >>> _ = der.holds(2**n, ">=", n + 1, "Bernoulli")
        >>> der.status
        'spot-checked'
        """
        if self.all_proved:
            return PROVED
        if all(s.status in (PROVED, DEFINITION, FROM_LEMMA) for s in self.steps):
            return FROM_LEMMA
        return SPOT_CHECKED

    # -- rendering -----------------------------------------------------------------
    def text(self) -> str:
        """The derivation as plain text: title, assumptions, then each step's number, status,
        strategy, reason, pretty-printed statement and note. ``str(der)`` gives the same.

        Examples
        --------
        >>> a, b = sp.symbols("a b")
        >>> der = Derivation("Commutativity", ["a, b complex"])
        >>> _ = der.eq(a * b, b * a, "multiplication commutes", strategy="exact")
        >>> print(der.text())
        Commutativity
        =============
        Assumptions:
          - a, b complex
        Step 1 [proved, exact]: multiplication commutes
            a⋅b = a⋅b
        """
        title = prose.to_text(self.title)
        out = [title, "=" * len(title)]
        if self.assumptions:
            out.append("Assumptions:")
            out += [f"  - {prose.to_text(a)}" for a in self.assumptions]
        for i, s in enumerate(self.steps, 1):
            out.append(f"Step {i} [{s.status}, {s.strategy}]: {prose.to_text(s.reason)}")
            out += ["    " + line for line in s.text().splitlines()]
            if s.note:
                out.append(f"    ({s.note})")
        return "\n".join(out)

    def latex(self) -> str:
        r"""A LaTeX fragment (an ``enumerate`` of steps) that compiles inside :meth:`latex_document`.

        Title, assumptions and reasons are prose (:mod:`derive.prose`): text escaped, maths typeset.
        Each statement is a display: a long one is broken after its left side, and one still wider
        than the line is shrunk to fit (``\resizebox``, from graphicx).

        Examples
        --------
        >>> a, b = sp.symbols("a b")
        >>> der = Derivation("$a_1$ and 100%")
        >>> _ = der.eq(a + b, b + a, "commutes", strategy="exact")
        >>> print(der.latex())
        \subsection*{$a_1$ and 100\%}
        \begin{enumerate}
        \item \textit{commutes} [proved]
        \[ \resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{$\displaystyle a + b = a + b$} \]
        \end{enumerate}
        """
        out = [f"\\subsection*{{{prose.to_latex(self.title)}}}"]
        if self.assumptions:
            out.append("\\textbf{Assumptions.}\\begin{itemize}")
            out += [f"\\item {prose.to_latex(a)}" for a in self.assumptions]
            out.append("\\end{itemize}")
        if self.steps:  # an empty enumerate is a LaTeX error
            out.append("\\begin{enumerate}")
            for s in self.steps:
                out.append(f"\\item \\textit{{{prose.to_latex(s.reason)}}} [{s.status}]")
                out.append(f"\\[ {_fit(s)} \\]")
            out.append("\\end{enumerate}")
        return "\n".join(out)

    def latex_document(self) -> str:
        r""":meth:`latex` wrapped in a minimal ``article`` document for ``pdflatex``: amsmath, amssymb
        and graphicx, and T1 font encoding with Latin Modern, so that ``<``, ``>`` and ``|`` in the
        prose print as themselves (the default OT1 encoding prints ``<`` as an inverted exclamation
        mark).

        Examples
        --------
        >>> print("\n".join(Derivation("empty").latex_document().splitlines()[:3]))
        \documentclass{article}
        \usepackage[T1]{fontenc}
        \usepackage{lmodern}
        """
        return LATEX_PREAMBLE + "\\begin{document}\n" + self.latex() + "\n\\end{document}\n"

    def markdown(self) -> str:
        r"""The derivation as Markdown: a ``###`` heading, the assumptions as a list, and a numbered
        list of steps with status, strategy and the statement as display math (``$$ ... $$``).

        Examples
        --------
        >>> x = sp.Symbol("x")
        >>> der = Derivation("Square")
        >>> _ = der.eq((x + 1) ** 2, x**2 + 2 * x + 1, "expand", strategy="expand")
        >>> print(der.markdown())
        ### Square
        <BLANKLINE>
        1. expand (**proved**, `expand`)
           $$ \left(x + 1\right)^{2} = x^{2} + 2 x + 1 $$
        """
        out = [f"### {prose.to_markdown(self.title)}", ""]
        if self.assumptions:
            out += ["Assumptions:", ""] + [f"- {prose.to_markdown(a)}" for a in self.assumptions] + [""]
        for i, s in enumerate(self.steps, 1):
            out.append(f"{i}. {prose.to_markdown(s.reason)} (**{s.status}**, `{s.strategy}`)")
            out.append(f"   $$ {s.latex()} $$")
        return "\n".join(out)

    def to_dict(self) -> dict:
        """The derivation as plain data for JSON: ``title``, ``assumptions``, ``status`` and
        ``steps`` (each :meth:`Step.to_dict`).

        Examples
        --------
        >>> x = sp.Symbol("x")
        >>> der = Derivation("d")
        >>> _ = der.eq(2 * x, x + x, "add", strategy="exact")
        >>> der.to_dict()["status"], [s["statement"] for s in der.to_dict()["steps"]]
        ('proved', ['Eq(2*x, 2*x)'])
        """
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


LATEX_PREAMBLE = (
    "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{lmodern}\n"
    "\\usepackage{amsmath,amssymb,graphicx}\n\\setcounter{MaxMatrixCols}{20}\n"
    "\\setlength{\\emergencystretch}{3em}\n"  # prose dense with maths breaks lines rather than overflowing
)
_LONG = 110  # characters of LaTeX beyond which a statement is broken after its left side
_REL = {"=": "=", "<": "<", "<=": "\\leq", ">": ">", ">=": "\\geq", "->": "="}


def _fit(step: Step) -> str:
    """A step's statement as the body of a display: broken after the left side when its LaTeX is
    longer than ``_LONG`` characters and neither side is short, and shrunk to the line width only
    if still wider than it."""
    body, e = step.latex(), step.as_expr()
    if len(body) > _LONG and min(len(sp.latex(e.lhs)), len(sp.latex(e.rhs))) > _LONG // 3:
        body = f"\\begin{{aligned}} & {sp.latex(e.lhs)} \\\\ & {_REL[step.relation]} {sp.latex(e.rhs)} \\end{{aligned}}"
    return f"\\resizebox{{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}}{{!}}{{$\\displaystyle {body}$}}"

"""The result of an empirical check: Monte Carlo verdicts, deterministic comparisons,
negative controls, and a table of measurements, with the device and sample count.

A check *passes* when every claim agrees and every negative control is rejected.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field

from numeric.stats import Verdict


@dataclass(frozen=True)
class Bound:
    """A deterministic comparison: ``|measured - target| <= tol`` (tol stated in advance)."""

    claim: str
    measured: float
    target: float
    tol: float
    agrees: bool

    @staticmethod
    def of(claim: str, measured: float, target: float, tol: float) -> Bound:
        """The comparison of ``measured`` with ``target`` at absolute tolerance ``tol`` (same units).

        ``agrees`` is True when ``measured`` is finite and ``|measured - target| <= tol``, so a NaN or
        infinite measurement never agrees; the numbers are stored as Python floats. Raises nothing.

        Examples
        --------
        >>> Bound.of("sum of the softmax row", 1.0 + 1e-12, 1.0, 1e-9).agrees
        True
        >>> print(Bound.of("x", 2.0, 1.0, 0.5))
        x: measured 2 vs 1 (|diff| = 1, tol 0.5) -> REJECTED
        """
        ok = math.isfinite(measured) and abs(measured - target) <= tol
        return Bound(claim, float(measured), float(target), float(tol), bool(ok))

    def to_dict(self) -> dict:
        """The fields as a dict (``claim``, ``measured``, ``target``, ``tol``, ``agrees``) for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        word = "agrees" if self.agrees else "REJECTED"
        return (
            f"{self.claim}: measured {self.measured:.6g} vs {self.target:.6g} "
            f"(|diff| = {abs(self.measured - self.target):.3g}, tol {self.tol:.3g}) -> {word}"
        )


Finding = Verdict | Bound


@dataclass
class CheckResult:
    """Everything an empirical check measured, and whether it passed."""

    name: str
    device: str
    samples: int | None  # None: the check draws nothing at random
    seed: int
    claims: list[Finding] = field(default_factory=list)
    controls: list[Finding] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # not part of the record: the settings the check ran with, and extra series only its figure draws
    settings: object = field(default=None, repr=False, compare=False)
    series: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """True when there is at least one claim, every claim agrees and every negative control is
        rejected (a control that agrees means the check could not tell right from wrong).

        Examples
        --------
        >>> r = CheckResult("1 + 1", device="cpu", samples=None, seed=0)
        >>> r.claims.append(Bound.of("1 + 1 = 2", 1.0 + 1.0, 2.0, 0.0))
        >>> r.controls.append(Bound.of("1 + 1 = 3 (wrong)", 1.0 + 1.0, 3.0, 0.0))
        >>> r.passed, r.verdict
        (True, 'PASS')
        """
        return bool(self.claims) and all(c.agrees for c in self.claims) and all(not c.agrees for c in self.controls)

    @property
    def verdict(self) -> str:
        """``"PASS"`` when :attr:`passed`, else ``"FAIL"``."""
        return "PASS" if self.passed else "FAIL"

    def to_dict(self) -> dict:
        """Everything as plain data: name, device, samples, seed, verdict, passed, claims and controls
        (each finding's ``to_dict()`` plus ``kind``, its class name: ``Verdict``, ``Bound`` or
        ``OneSided``), table and notes. The table rows are passed through as they are."""
        return {
            "name": self.name,
            "device": self.device,
            "samples": self.samples,
            "seed": self.seed,
            "verdict": self.verdict,
            "passed": self.passed,
            "claims": [c.to_dict() | {"kind": type(c).__name__} for c in self.claims],
            "controls": [c.to_dict() | {"kind": type(c).__name__} for c in self.controls],
            "table": self.table,
            "notes": self.notes,
        }

    def text(self) -> str:
        """The report as plain text: name, device, samples and seed, the table (if any), each claim
        and negative control on its own line, the notes and the verdict.

        Examples
        --------
        >>> r = CheckResult("1 + 1", device="cpu", samples=None, seed=0)
        >>> r.claims.append(Bound.of("1 + 1 = 2", 1.0 + 1.0, 2.0, 0.0))
        >>> print(r.text())
        Check: 1 + 1
          device: cpu; nothing drawn at random; seed: 0
          Claims (each must agree):
            1 + 1 = 2: measured 2 vs 2 (|diff| = 0, tol 0) -> agrees
          Verdict: PASS
        """
        drawn = f"samples: {self.samples:,}" if self.samples is not None else "nothing drawn at random"
        out = [f"Check: {self.name}", f"  device: {self.device}; {drawn}; seed: {self.seed}"]
        if self.table:
            out.append(format_table(self.table))
        out.append("  Claims (each must agree):")
        out += [f"    {c}" for c in self.claims]
        if self.controls:
            out.append("  Negative controls (each must be rejected):")
            out += [f"    {c}" for c in self.controls]
        out += [f"  Note: {n}" for n in self.notes]
        out.append(f"  Verdict: {self.verdict}")
        return "\n".join(out)

    def __repr__(self) -> str:
        """One line: name, device, samples, verdict and the counts of claims and controls.

        Examples
        --------
        >>> r = CheckResult("1 + 1", device="cpu", samples=None, seed=0)
        >>> r.claims.append(Bound.of("1 + 1 = 2", 1.0 + 1.0, 2.0, 0.0))
        >>> r
        <CheckResult '1 + 1' on cpu, nothing drawn at random: PASS (1 claim, 0 controls)>
        """
        drawn = f"N = {self.samples:,}" if self.samples is not None else "nothing drawn at random"
        n, m = len(self.claims), len(self.controls)
        return (
            f"<CheckResult {self.name!r} on {self.device}, {drawn}: {self.verdict} "
            f"({n} claim{'' if n == 1 else 's'}, {m} control{'' if m == 1 else 's'})>"
        )

    def _repr_html_(self) -> str:
        """The report as HTML for Jupyter: the verdict, the table, each claim (agrees or REJECTED) and
        each negative control (rejected, as it must be, or AGREES), and the notes; all text escaped."""
        e = html.escape
        ok = "color:#1a7f37"
        bad = "color:#cf222e;font-weight:bold"
        drawn = f"samples: {self.samples:,}" if self.samples is not None else "nothing drawn at random"
        out = [
            f"<div><p><b>Check: {e(self.name)}</b> &mdash; "
            f"<span style='{ok if self.passed else bad}'>{self.verdict}</span><br>"
            f"<small>device: {e(str(self.device))}; {drawn}; seed: {self.seed}</small></p>"
        ]
        if self.table:
            cols = list(self.table[0])
            head = "".join(f"<th>{e(str(c))}</th>" for c in cols)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in self.table
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

        def findings(title: str, items: list[Finding], control: bool) -> str:
            lines = []
            for c in items:
                good = c.agrees != control
                word = ("AGREES" if c.agrees else "rejected") if control else ("agrees" if c.agrees else "REJECTED")
                said = e(str(c).rsplit(" -> ", 1)[0])
                lines.append(f"<li>{said} &rarr; <span style='{ok if good else bad}'>{word}</span></li>")
            return f"<p>{title}</p><ul>{''.join(lines)}</ul>"

        out.append(findings("Claims (each must agree):", self.claims, control=False))
        if self.controls:
            out.append(findings("Negative controls (each must be rejected):", self.controls, control=True))
        if self.notes:
            out.append("<p>Notes:</p><ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        out.append("</div>")
        return "\n".join(out)

    def json(self) -> str:
        """:meth:`to_dict` as indented JSON; a value JSON cannot hold (a numpy or torch scalar in the
        table) is written as ``float(value)``, and TypeError or ValueError is raised when it has none."""
        return json.dumps(self.to_dict(), indent=2, default=float)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as aligned text columns, the keys of the first row as the header."""
    cols = list(rows[0])
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  " + "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(cols)] + [line(r) for r in cells])

"""Exercise 13.15: the sinusoidal encoding's values PE(0, 0), PE(0, 1), PE(1, 0), PE(1, 1) for $d = 4$.

The encoding pairs dims $(2i, 2i+1)$ with the frequency $\\omega_i = b^{-2i/d}$ ($b = 10000$):
$\\mathrm{PE}(\\mathrm{pos}, 2i) = \\sin(\\mathrm{pos}\\,\\omega_i)$ and
$\\mathrm{PE}(\\mathrm{pos}, 2i+1) = \\cos(\\mathrm{pos}\\,\\omega_i)$. For $d = 4$ the frequencies are
$\\omega_0 = 1$ and $\\omega_1 = 10000^{-1/2} = 1/100$, so the rows at positions 0 and 1 are

$$\\mathrm{PE}(0) = (0, 1, 0, 1), \\qquad
\\mathrm{PE}(1) = (\\sin 1, \\cos 1, \\sin\\tfrac{1}{100}, \\cos\\tfrac{1}{100})
\\approx (0.84147, 0.54030, 0.0099998, 0.99995).$$

Reading $i$ in PE(pos, i) as the dimension (the column of the table), the four asked values are
$0, 1, \\sin 1 \\approx 0.8415, \\cos 1 \\approx 0.5403$. Reading it as the frequency index, PE(pos, i)
is the pair $(\\sin(\\mathrm{pos}\\,\\omega_i), \\cos(\\mathrm{pos}\\,\\omega_i))$; the full rows above
answer both readings, and the command line prints them for any width, positions and base.

The check compares ``models.positional.sinusoidal_table`` (float64, and the default float32) with the
exact values, evaluated to 30 digits, within a rounding bound stated before measuring. The same
comparison rejects the table with sin and cos swapped, the "all sines, then all cosines" layout, and
the frequencies $b^{-i/d}$ (the exponent's 2 forgotten).
"""

from __future__ import annotations

import sympy as sp
import torch

from derive.engine import Derivation
from derive.rotation import pe_vector
from derive.sinusoid import exact_frequencies as frequencies
from models.positional import sinusoidal_table
from models.utils.device import describe, pick_device
from numeric.check import Bound, CheckResult, format_table
from numeric.rotary import EPS, pow_angle_ulps
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.15"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"For $d_\mathrm{model} = 4$: $\mathrm{PE}(0) = (0, 1, 0, 1)$ and $\mathrm{PE}(1) = "
    r"(\sin 1, \cos 1, \sin(1/100), \cos(1/100))$."
)
DEFAULT_SAMPLES = None  # nothing random: one exact table
MAX_D, MAX_POS, MAX_ENTRIES = 512, 10000, 1024  # the exercise's range: at most 1,024 values to 30 digits
OPTIONS = [
    Option("--d-model", int, 4, "model width (even)", lo=2, hi=MAX_D, why="the exercise's range"),
    Option("--positions", str, "0,1", "comma-separated positions >= 0"),
    Option("--base", float, 10000.0, "the base b of the frequencies b^(-2i/d), in (1, 1e12]", lo=1, hi=1e12),
]
F64, F32 = torch.float64, torch.float32


def _positions(positions: str) -> list[int]:
    """The positions asked, as integers in [0, MAX_POS]; ValueError ``positions: ...`` if not."""
    try:
        pos = [int(p) for p in positions.split(",")]
    except ValueError:
        raise ValueError(f"positions: expected comma-separated integers, got {positions!r}") from None
    if not all(0 <= p <= MAX_POS for p in pos):
        raise ValueError(f"positions: each must lie in [0, {MAX_POS}], got {positions!r}")
    return pos


def validate(o) -> None:
    """An even width, a base above 1, and at most MAX_ENTRIES values (each evaluated to 30 digits)."""
    if o.d_model % 2:
        raise ValueError(f"d_model: must be even (dims pair up as sin, cos), got {o.d_model}")
    if o.base <= 1:
        raise ValueError(f"base: must be above 1, got {o.base:g}")
    pos = _positions(o.positions)
    if o.d_model * len(pos) > MAX_ENTRIES:
        raise ValueError(f"positions: d_model x count must be at most {MAX_ENTRIES}, got {o.d_model} x {len(pos)}")


def derivation() -> Derivation:
    """The frequencies and rows 0 and 1 for d_model = 4, the four asked values with decimals, PE(0) for any d."""
    ws = frequencies(4, 10000)
    d = Derivation(
        r"Exercise 13.15: the sinusoidal encoding for $d_\mathrm{model} = 4$ at positions 0 and 1",
        assumptions=[
            r"$\mathrm{PE}(\mathrm{pos}, 2i) = \sin(\mathrm{pos}\,\omega_i)$, "
            r"$\mathrm{PE}(\mathrm{pos}, 2i+1) = \cos(\mathrm{pos}\,\omega_i)$, "
            r"$\omega_i = 10000^{-2i/d_\mathrm{model}}$",
            r"$\mathrm{PE}(\mathrm{pos}, i)$ is read as dimension $i$ of the row $\mathrm{PE}(\mathrm{pos})$; the full "
            "rows also answer the reading '$i$ = frequency index' (the pair of dims $2i$, $2i+1$)",
        ],
    )
    w = sp.Function("omega")
    d.eq(w(0), 1, r"$\omega_0 = 10000^0$", strategy="exact", computed=ws[0])
    d.eq(w(1), sp.Rational(1, 100), r"$\omega_1 = 10000^{-2/4} = 10000^{-1/2}$", strategy="exact", computed=ws[1])
    rows = [pe_vector(p, ws).T for p in (0, 1)]
    d.eq(
        sp.MatrixSymbol("PE(0)", 1, 4),
        sp.Matrix([[0, 1, 0, 1]]),
        r"row 0: $\sin(0) = 0$, $\cos(0) = 1$",
        computed=rows[0],
    )
    row1 = sp.Matrix([[sp.sin(1), sp.cos(1), sp.sin(sp.Rational(1, 100)), sp.cos(sp.Rational(1, 100))]])
    d.eq(sp.MatrixSymbol("PE(1)", 1, 4), row1, "row 1: angles 1 and $1/100$", strategy="exact", computed=rows[1])
    asked, four = sp.Matrix([rows[0][:2], rows[1][:2]]), sp.Matrix([[0, 1], [sp.sin(1), sp.cos(1)]])
    d.eq(sp.MatrixSymbol("PE(p, i)", 2, 2), four, "the four asked values ($i$ = dimension)", computed=asked)
    for val, lo, hi in ((sp.sin(1), "0.84147", "0.84148"), (sp.cos(1), "0.54030", "0.54031")):
        d.holds(val, ">", sp.Float(lo, 5), "decimals")
        d.holds(val, "<", sp.Float(hi, 5), "decimals")
    row0 = pe_vector(0, sp.symbols("omega_0:3", positive=True)).T
    d.eq(
        sp.MatrixSymbol("PE(0)", 1, 6),
        sp.Matrix([[0, 1] * 3]),
        r"any width: $\mathrm{PE}(0) = (0, 1, 0, 1, \ldots)$",
        computed=row0,
    )
    return d


def exact_table(positions: list[int], ws: list) -> tuple[torch.Tensor, list[list]]:
    """(values as float64, each evaluated to 30 digits and rounded once; the sympy entries)."""
    exprs = [list(pe_vector(p, ws)) for p in positions]
    vals = torch.tensor([[float(sp.N(e, 30)) for e in row] for row in exprs], dtype=torch.float64)
    return vals, exprs


@with_options
def answer(o) -> list[str]:
    """The exact table PE(pos, i) for the options asked, with decimals (what ``--no-check`` prints)."""
    pos = _positions(o.positions)
    vals, exprs = exact_table(pos, frequencies(o.d_model, o.base))
    return format_table(table_rows(pos, vals, exprs)).splitlines()


def table_rows(pos: list[int], vals: torch.Tensor, exprs: list[list]) -> list[dict]:
    """One row per (position, dimension): the exact expression and its value."""
    return [
        {"pos": p, "dim": c, "pair i": c // 2, "exact": sp.sstr(exprs[r][c]), "value": float(vals[r, c])}
        for r, p in enumerate(pos)
        for c in range(len(exprs[r]))
    ]


def tolerance(max_pos: int, base: float) -> float:
    """w_i = b^(-2i/d) by pow in float64: the exponent's rounding scales by ln b, pow adds an ulp; the
    angle pos w_i one more rounding; sin/cos an ulp; the reference half an ulp. Doubled for safety."""
    return 2 * EPS * (1.5 + pow_angle_ulps(max_pos, base))


@with_options
def check(o) -> CheckResult:
    """sinusoidal_table in float64 and float32 against the exact values; controls: sin and cos swapped,
    all sines then all cosines, the frequencies b^(-i/d)."""
    pos, d_model, base, dev = _positions(o.positions), o.d_model, o.base, pick_device(o.device)
    res = CheckResult(
        f"sinusoidal PE, d_model = {d_model}, base {base:g}, positions {pos}", describe(dev), o.samples, o.seed
    )
    ws = frequencies(d_model, base)
    want, exprs = exact_table(pos, ws)
    got = {dt: sinusoidal_table(max(pos) + 1, d_model, base, dt, dev)[pos].double().cpu() for dt in (F64, F32)}
    res.table = table_rows(pos, want, exprs)
    tol = tolerance(max(pos), base)
    tols = {F64: tol, F32: tol + torch.finfo(F32).eps / 2}  # |entries| <= 1: float32 adds half an ulp
    for dt in (F64, F32):
        err = float((got[dt] - want).abs().max())
        res.claims.append(Bound.of(f"[{dt}] max |sinusoidal_table - exact|", err, 0.0, tols[dt]))
    wrong = {"sin and cos swapped": want[:, [c + 1 - 2 * (c % 2) for c in range(d_model)]]}
    if d_model > 2:
        wrong["all sines, then all cosines"] = want[:, list(range(0, d_model, 2)) + list(range(1, d_model, 2))]
        if max(pos) > 0:
            wrong["frequencies b^(-i/d)"] = exact_table(pos, frequencies(2 * d_model, base)[: d_model // 2])[0]
    for name, w in wrong.items():
        err = float((got[F64] - w).abs().max())
        res.controls.append(Bound.of(f"[float64] max |sinusoidal_table - table with {name}|", err, 0.0, tol))
    if len(wrong) < 3:
        res.notes.append("d_model = 2 or only position 0: the other controls equal the claim there; skipped")
    res.notes += [
        f"exact values evaluated to 30 digits; tolerances {tol:.3g} (float64), {tols[F32]:.3g} (float32) "
        "from tolerance(), stated before measuring",
        "PE(pos, i) read as dimension i (column 'dim'); 'pair i' is the frequency index: dims 2i, 2i+1",
    ]
    return res


def figure(res: CheckResult):
    r"""Each dimension of $\mathrm{PE}(pos)$ as a curve over $pos$ (closed form), through the exact values the check
    compared."""
    d_model, base = res.settings.d_model, res.settings.base
    pos = sorted({r["pos"] for r in res.table})
    x = torch.linspace(0, max(pos) + 1, 2000, dtype=torch.float64)
    ws = [float(w) for w in frequencies(d_model, base)]
    fig, ax = plotting.subplots(width=7, height=4)
    for c in range(min(d_model, 8)):
        fn = "sin" if c % 2 == 0 else "cos"
        line = ax.plot(
            x, getattr(torch, fn)(x * ws[c // 2]), lw=1, label=f"dim {c}: $\\{fn}(\\mathrm{{pos}}\\,\\omega_{c // 2})$"
        )[0]
        at = [(r["pos"], r["value"]) for r in res.table if r["dim"] == c]
        ax.plot(*zip(*at), "o", color=line.get_color())
    ax.set(
        xlabel="position",
        ylabel=r"$\mathrm{PE}(\mathrm{pos}, \mathrm{dim})$",
        title=f"Exercise 13.15: sinusoidal encoding, $d_\\mathrm{{model}} = {d_model}$",
    )
    ax.legend(fontsize=7, ncol=2)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

"""Exercise 13.16: the RoPE rotation applied to $(q_0, q_1)$ at position $m$ with $\\omega_0 = 1$.

RoPE turns pair $i$ of a query by the angle $m\\,\\omega_i$, $\\omega_i = b^{-2i/d}$; the first pair has
$\\omega_0 = b^0 = 1$ for every base $b$ and width $d$, so it is turned by $m$ radians:

$$R(m) = \\begin{pmatrix} \\cos m & -\\sin m \\\\ \\sin m & \\cos m \\end{pmatrix}, \\qquad
R(m)\\begin{pmatrix} q_0 \\\\ q_1 \\end{pmatrix} =
\\begin{pmatrix} q_0\\cos m - q_1 \\sin m \\\\ q_0 \\sin m + q_1 \\cos m \\end{pmatrix},$$

a counter-clockwise rotation ($R^\\top R = I$, $\\det R = 1$, $R(m)R(n) = R(m+n)$). That is the
"interleaved" layout of RoFormer, whose pairs are dims $(2i, 2i+1)$. In the "half" layout of Hugging
Face's ``rotate_half`` the pairs are $(i, i + d/2)$: $R(m)$ acts on $(q_0, q_{d/2})$, and $q_0, q_1$
belong to different pairs (turned by $m$ and $m\\,\\omega_1$). With $d = 4$, $b = 10000$ the second pair
turns by $m/100$. The two layouts are the same map up to a permutation of dims.

The check rotates random unit vectors (float64) with ``models.positional.apply_rope`` in both layouts
at the given positions and compares them with the pair formula above, its cos and sin evaluated
exactly to 30 digits, within a rounding bound stated before measuring. The same comparison rejects
the transpose $R(-m)$ (rotation the wrong way) and the other layout's formula.
"""

from __future__ import annotations

import math
import re

import mpmath
import sympy as sp
import torch

from derive.engine import Derivation
from derive.rotation import half_permutation, rope_matrix, rot2, sinusoidal_frequency
from derive.sinusoid import exact_base
from models.positional import CONVENTIONS, apply_rope
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.rotary import EPS, pair_index, pow_angle_ulps, unit_rows
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.16"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = r"RoPE turns $(q_0, q_1)$ at position $m$ by $R(m) = [[\cos m, -\sin m], [\sin m, \cos m]]$ ($\omega_0 = 1$)."
DEFAULT_SAMPLES = 8  # random unit vectors rotated at every m
MAX_DIM, MAX_M, MAX_COUNT, MAX_EXP = 256, 10**6, 32, 40
_M_HELP = "comma-separated positions m: integers, decimals, fractions (--m=-1,2 if the first is negative)"
_WHY_DIM = "the exercise's range: len(m) x d/2 cos and sin values at 40 digits, 4,096 at most"
OPTIONS = [
    Option("--m", str, "0,1,2,3", _M_HELP),
    Option("--dim", int, 4, "head dimension d (even)", lo=2, hi=MAX_DIM, why=_WHY_DIM),
    Option("--base", float, 10000.0, "the base b of the frequencies b^(-2i/d), in (1, 1e12]", lo=1, hi=1e12),
]
# Memory and time grow with samples x len(m) x dim float64 entries: measured 0.2 GB and 3.5 s for 1.6e6 of them
# (10^5 samples at the defaults) on 2 CPU cores, ~125 bytes and ~2 us each; MAX_ENTRIES = 2^24 needs ~2 GB.
MAX_ENTRIES = 1 << 24
MAX_SAMPLES = 10**6
SAMPLES_WHY = "samples x len(m) x dim float64 entries, up to ~125 bytes each: 10^6 at the defaults took 1.1 GB, 6 s"


def _position(s: str):
    """One position as an exact Rational; an exponent beyond MAX_EXP is refused before sympy expands it."""
    exps = re.findall(r"[eE]\s*([+-]?\d+)", s)
    if any(abs(int(e)) > MAX_EXP for e in exps):
        raise ValueError(
            f"m: exponents must be at most {MAX_EXP} in size (each m lies in [-{MAX_M}, {MAX_M}]), got {s!r}"
        )
    return sp.Rational(s.strip())


def positions(m: str) -> list:
    """The positions asked, as exact sympy Rationals; ValueError ``m: ...`` for more than MAX_COUNT of
    them, one that is not a number, or one outside [-MAX_M, MAX_M]."""
    parts = m.split(",")
    if len(parts) > MAX_COUNT:
        raise ValueError(
            f"m: at most {MAX_COUNT} values (each costs d/2 cosines and sines at 40 digits), got {len(parts):,}"
        )
    try:
        ms = [_position(s) for s in parts]
    except (TypeError, ValueError, ZeroDivisionError) as e:
        if str(e).startswith("m:"):
            raise
        raise ValueError(f"m: expected comma-separated numbers such as 0,1,1/2,2.5, got {m!r}") from None
    big = [x for x in ms if abs(x) > MAX_M]
    if big:
        raise ValueError(
            f"m: each must lie in [-{MAX_M:,}, {MAX_M:,}] (the float64 angle m w_i errs by ~|m| eps, and the "
            f"tolerance with it), got {sp.sstr(big[0]) if len(sp.sstr(big[0])) <= 40 else f'{float(big[0]):.3g}'}"
        )
    return ms


def validate(o) -> None:
    """The positions parse, the width is even, the base is above 1, and samples x len(m) x dim fits memory."""
    ms = positions(o.m)
    if o.dim % 2:
        raise ValueError(f"dim: must be even (dims are rotated in pairs), got {o.dim}")
    if o.base <= 1:
        raise ValueError(f"base: must be above 1, got {o.base:g}")
    if o.samples * len(ms) * o.dim > MAX_ENTRIES:
        raise ValueError(
            f"samples: samples x len(m) x dim must be at most {MAX_ENTRIES:,} (float64 entries, ~125 bytes each "
            f"with the copies: ~2 GB), got {o.samples:,} x {len(ms)} x {o.dim} = {o.samples * len(ms) * o.dim:,}"
        )


def derivation() -> Derivation:
    """omega_0 = 1, the block R(m) and its action, a rotation, and both layouts written out for d = 4."""
    m, n = sp.symbols("m n", real=True)
    b, dd = sp.symbols("b d", positive=True)
    q = sp.Matrix(sp.symbols("q_0:4", real=True))
    d = Derivation(
        r"Exercise 13.16: the RoPE rotation of $(q_0, q_1)$ at position $m$, $\omega_0 = 1$",
        assumptions=[r"pair $i$ turns by $m\,\omega_i$, $\omega_i = b^{-2i/d}$; $m$ real (integer positions in use)"],
    )
    w0 = sinusoidal_frequency(0, dd, b)
    d.eq(sp.Function("omega")(0), 1, r"$\omega_0 = b^0 = 1$ for any base $b$ and width $d$", computed=w0)
    Rm, Rn = sp.MatrixSymbol("R(m)", 2, 2), sp.MatrixSymbol("R(n)", 2, 2)
    d.eq(Rm, rot2(m), "the block on $(q_0, q_1)$", strategy="exact", computed=rope_matrix(m, [1]))
    q01 = sp.Matrix([q[0] * sp.cos(m) - q[1] * sp.sin(m), q[0] * sp.sin(m) + q[1] * sp.cos(m)])
    d.eq(Rm * sp.Matrix(q[:2]), q01, "applied to $(q_0, q_1)$", strategy="expand", computed=rot2(m) * sp.Matrix(q[:2]))
    d.eq(Rm.T * Rm, sp.eye(2), "orthogonal", strategy="trig", computed=rot2(m).T * rot2(m))
    d.eq(sp.Determinant(Rm), 1, "determinant 1: a rotation by $m$ radians", "trig", computed=rot2(m).det())
    d.eq(Rm * Rn, rot2(m + n), r"positions add: $R(m)\,R(n) = R(m + n)$", strategy="trig", computed=rot2(m) * rot2(n))
    th = [1, sinusoidal_frequency(1, 4, 10000)]
    c1, s1 = sp.cos(m / 100), sp.sin(m / 100)
    inter = sp.Matrix([q01[0], q01[1], q[2] * c1 - q[3] * s1, q[2] * s1 + q[3] * c1])
    Ri, Rh = sp.MatrixSymbol("R_interleaved(m)", 4, 4), sp.MatrixSymbol("R_half(m)", 4, 4)
    d.eq(Ri * q, inter, "$d = 4$, $b = 10000$, 'interleaved' (pairs 01, 23)", "expand", computed=rope_matrix(m, th) * q)
    half = sp.Matrix(
        [
            q[0] * sp.cos(m) - q[2] * sp.sin(m),
            q[1] * c1 - q[3] * s1,
            q[0] * sp.sin(m) + q[2] * sp.cos(m),
            q[1] * s1 + q[3] * c1,
        ]
    )
    d.eq(
        Rh * q,
        half,
        "$d = 4$, 'half' (pairs 02, 13): $R(m)$ acts on $(q_0, q_2)$",
        "expand",
        computed=rope_matrix(m, th, "half") * q,
    )
    P = half_permutation(4)
    shown = sp.MatrixSymbol("P", 4, 4).T * Ri * sp.MatrixSymbol("P", 4, 4)
    d.eq(
        shown,
        rope_matrix(m, th, "half"),
        r"the layouts differ by a permutation: $P\,(q_0, q_1, q_2, q_3) = (q_0, q_2, q_1, q_3)$",
        strategy="exact",
        computed=P.T * rope_matrix(m, th) * P,
    )
    return d


def exact_cos_sin(ms: list, dim: int, base) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the angles m w_i, w_i = b^(-2i/d), from the exact m and b at 40 digits, each
    rounded once to float64; two (len(ms), dim/2) tensors."""
    b = exact_base(base)
    with mpmath.workdps(40):
        th = [(mpmath.mpf(b.p) / b.q) ** (-mpmath.mpf(2 * i) / dim) for i in range(dim // 2)]
        ang = [[mpmath.mpf(x.p) / x.q * t for t in th] for x in ms]
        return tuple(
            torch.tensor([[float(f(a)) for a in row] for row in ang], dtype=torch.float64)
            for f in (mpmath.cos, mpmath.sin)
        )


def reference(q: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, convention: str) -> torch.Tensor:
    """R(m) q for q (S, dim) at every m by the pair formula (x_a, x_b) -> (x_a cos - x_b sin, x_a sin + x_b cos);
    (S, len(ms), dim) float64. Pass -sin for the transpose R(-m)."""
    a, c = pair_index(q.shape[-1], convention, q.device)
    cos, sin = cos.to(q.device), sin.to(q.device)
    out = torch.empty(q.shape[0], cos.shape[0], q.shape[-1], dtype=q.dtype, device=q.device)
    qa, qc = q[:, None, a], q[:, None, c]
    out[..., a], out[..., c] = qa * cos - qc * sin, qa * sin + qc * cos
    return out


def tolerance(m_max: float, base: float) -> float:
    """For unit q: the frequency b^(-2i/d) by pow carries (ln b / 2 + 1) eps relative error, the angle
    m w_i one more rounding, cos/sin and three operations a few eps; the reference 2.5 eps. Doubled."""
    return 2 * EPS * (6 + pow_angle_ulps(2 * m_max, base))


@with_options
def check(o) -> CheckResult:
    """apply_rope in both layouts against the pair formula with exact cos and sin; controls: the
    transpose R(-m) and the other layout's formula (where they differ from the claim)."""
    ms, dim, base, samples, dev = positions(o.m), o.dim, o.base, o.samples, pick_device(o.device)
    res = CheckResult(
        f"RoPE of random unit q, dim = {dim}, base {base:g}, m in {[str(x) for x in ms]}",
        describe(dev),
        samples,
        o.seed,
    )
    q = unit_rows((samples, dim), generator(dev, o.seed), dev)
    pos = torch.tensor([float(x) for x in ms], dtype=torch.float64, device=dev)
    got = {c: apply_rope(q[:, None, :].expand(-1, len(ms), -1), pos, base, c) for c in CONVENTIONS}  # (S, M, dim)
    cos, sin = exact_cos_sin(ms, dim, base)
    ref = {c: reference(q, cos, sin, c) for c in CONVENTIONS}
    tol = tolerance(float(max(abs(x) for x in ms)), base)
    errs = {c: (got[c] - ref[c]).abs().amax(dim=(0, 2)) for c in CONVENTIONS}  # (M,)
    for k, x in enumerate(ms):
        R = rope_matrix(x, [1])
        res.table.append(
            {
                "m": str(x),
                "exact cos m": sp.sstr(R[0, 0]),
                "cos m": float(sp.N(R[0, 0], 30)),
                "exact sin m": sp.sstr(R[1, 0]),
                "sin m": float(sp.N(R[1, 0], 30)),
            }
            | {f"err {c}": float(errs[c][k]) for c in CONVENTIONS}
        )
    for c in CONVENTIONS:
        pair = "(q_0, q_1)" if c == "interleaved" else f"(q_0, q_{dim // 2})"
        res.claims.append(
            Bound.of(f"[{c}] max |apply_rope - R(m) on each pair, {pair} first|", float(errs[c].max()), 0.0, tol)
        )
    wrong = {}
    for c, other in zip(CONVENTIONS, CONVENTIONS[::-1]):
        wrong[f"[{c}] max |apply_rope - R(-m) q| (the transpose)"] = (c, reference(q, cos, -sin, c))
        if dim > 2:  # at dim = 2 both layouts are the single pair (q_0, q_1)
            wrong[f"[{c}] max |apply_rope - the '{other}' formula|"] = (c, ref[other])
    for name, (c, w) in wrong.items():
        gap = float((ref[c] - w).abs().max())
        if gap > 10 * tol:
            res.controls.append(Bound.of(name, float((got[c] - w).abs().max()), 0.0, tol))
        else:
            res.notes.append(f"control '{name}' skipped: at these m it differs from the claim by only {gap:.2g}")
    if dim == 2:
        res.notes.append("dim = 2: both layouts are the single pair (q_0, q_1), so the mixed-layout control is skipped")
    res.notes.append(
        f"q: {samples} seeded N(0, I) draws scaled to unit length; tolerance {tol:.3g} from tolerance(), "
        "stated before measuring"
    )
    return res


def figure(res: CheckResult):
    r"""The first pair $(q_0, q_1) = (1, 0.5)$ turned by $R(m)$, from the check's $\cos m$ and $\sin m$: the circle it
    traces (closed form) and the asked $m$."""
    t = [2 * math.pi * j / 199 for j in range(200)]
    fig, ax = plotting.subplots(width=5, height=5)
    ax.plot([math.cos(a) - 0.5 * math.sin(a) for a in t], [math.sin(a) + 0.5 * math.cos(a) for a in t], "k-", lw=0.8)
    for r in res.table:
        p = (r["cos m"] - 0.5 * r["sin m"], r["sin m"] + 0.5 * r["cos m"])  # R(m) (1, 0.5)
        ax.annotate(f"$m = {r['m']}$", p, textcoords="offset points", xytext=(5, 5))
        ax.plot([0, p[0]], [0, p[1]], "-o", ms=4)
    ax.set(
        aspect="equal", xlabel="$q_0$", ylabel="$q_1$", title="Exercise 13.16: $R(m)$ turns $(q_0, q_1)$ by $m$ radians"
    )
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

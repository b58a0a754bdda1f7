"""Exercise 13.27: with RoPE the query-key score depends only on the relative position n - m.

RoPE turns each pair of query and key dims by an angle proportional to the position:
$q \\mapsto R_m q$ with $R_m = \\mathrm{diag}(R(m\\theta_0), \\dots, R(m\\theta_{d/2-1}))$ and
$R(\\phi) = \\begin{pmatrix}\\cos\\phi & -\\sin\\phi\\\\ \\sin\\phi & \\cos\\phi\\end{pmatrix}$.
For one block $R(m\\theta)^\\top R(n\\theta) = R(-m\\theta)R(n\\theta) = R((n-m)\\theta)$, and transposes and
products of block-diagonal matrices go block by block, so $R_m^\\top R_n = R_{n-m}$ and

$$\\langle R_m q, R_n k\\rangle = q^\\top R_m^\\top R_n k = q^\\top R_{n-m} k
= \\sum_i (q_i\\cdot k_i)\\cos((n-m)\\theta_i) - (q_i \\times k_i)\\sin((n-m)\\theta_i),$$

a function of $n - m$ alone (per pair $i$: the dot and the 2-d cross product of its two dims).
The "half" layout of Hugging Face pairs dims $(i, i + d/2)$ instead of $(2i, 2i+1)$; it is the
same rotation conjugated by a permutation, so the property holds for it too.

The check rotates random unit $q, k$ (float64) with ``models.positional.apply_rope`` in both layouts:
the score grid $s(m, n)$ equals $s(m+t, n+t)$ for shifts $t$ up to 4096 and equals $q^\\top R_{n-m}k$
built independently as a dense matrix, within a float64 rounding bound stated before measuring.
The same comparisons reject absolute sinusoidal addition $(q + \\mathrm{PE}(m))\\cdot(k + \\mathrm{PE}(n))$
(its cross terms carry absolute positions), the formula of the other layout, and $R_{m-n}$ for $R_{n-m}$.
"""

from __future__ import annotations

import sys

import sympy as sp
import torch

from derive.engine import Derivation
from derive.rotation import block_diag_rotation, generic_matrix, rope_matrix, rot2
from models.positional import CONVENTIONS, apply_rope, rope_frequencies, sinusoidal_table
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.cli import Option

NUMBER = "13.27"
CLAIM = "With RoPE, <R_m q, R_n k> = q^T R_(n-m) k depends only on the relative position n - m."
DEFAULT_SAMPLES = 128  # random unit (q, k) draws, each scored on the whole (m, n) grid
# Memory: the (samples, positions, positions) float64 score grids, about a dozen alive at once: measured 0.19 GB
# at 512 x 64 x 64 (~90 bytes per samples x positions^2); MAX_GRID = 2^24 of them needs ~1.5 GB. The dense
# rotations R_r are (2 positions - 1) x dim x dim float64: MAX_DENSE = 2^26 of them is 0.5 GB (1 GB with einsum's
# copy); R_(n-m) k for every sample and offset is samples x (2 positions - 1) x dim float64, MAX_ROWS = 2^25 of
# them 0.27 GB (a few copies: ~1 GB). Time: 4 s at 512 samples on 2 CPU cores; the bounds keep it near a minute.
MAX_DIM, MAX_POSITIONS, MAX_GRID, MAX_DENSE, MAX_ROWS = 1024, 4096, 1 << 24, 1 << 26, 1 << 25
MAX_SAMPLES = MAX_GRID // 64**2
SAMPLES_WHY = "samples x positions^2 float64 score grids, ~60-90 bytes each: 4,096 at 64 positions took 1 GB, 29 s"
OPTIONS = [
    Option(
        "--dim",
        int,
        64,
        "head dimension (even)",
        lo=2,
        hi=MAX_DIM,
        why="(2 positions - 1) x dim x dim float64 rotations: 1,024 at 32 positions is 0.5 GB",
    ),
    Option(
        "--positions",
        int,
        64,
        "grid size: m, n in [0, positions)",
        lo=2,
        hi=MAX_POSITIONS,
        why="samples x positions^2 float64 scores, ~90 bytes each: 4,096 at 1 sample is 1.5 GB",
    ),
]
SHIFTS = (1, 17, 1000, 4096)
EPS = torch.finfo(torch.float64).eps
BASE = 10000.0


def _validate(dim, positions, samples: int = 1) -> None:
    if not isinstance(dim, int) or dim <= 0 or dim % 2 or dim > MAX_DIM:
        raise ValueError(f"dim: must be a positive even integer at most {MAX_DIM:,}, got {dim!r}")
    if not isinstance(positions, int) or not 2 <= positions <= MAX_POSITIONS:
        raise ValueError(f"positions: must be an integer in [2, {MAX_POSITIONS:,}], got {positions!r}")
    if (2 * positions - 1) * dim * dim > MAX_DENSE:
        raise ValueError(
            f"dim: (2 positions - 1) x dim^2 must be at most {MAX_DENSE:,} (the dense float64 rotations, "
            f"0.5 GB), got {2 * positions - 1:,} x {dim:,}^2"
        )
    if samples * (2 * positions - 1) * dim > MAX_ROWS:
        raise ValueError(
            f"samples: samples x (2 positions - 1) x dim must be at most {MAX_ROWS:,} (R_(n-m) k for every offset, "
            f"float64, with rotated copies: ~1 GB), got {samples:,} x {2 * positions - 1:,} x {dim:,}"
        )
    if samples * positions * positions > MAX_GRID:
        raise ValueError(
            f"samples: samples x positions^2 must be at most {MAX_GRID:,} (float64 score grids, ~90 bytes each "
            f"with the copies: ~1.5 GB), got {samples:,} x {positions:,}^2"
        )


def validate(dim=64, positions=64, samples=DEFAULT_SAMPLES) -> None:
    """Refuse bad options before any work (the CLI calls this before the derivation)."""
    _validate(dim, positions, samples)


def derivation() -> Derivation:
    m, n, t = sp.symbols("m n t", real=True)
    th = sp.Symbol("theta", positive=True)
    q0, q1, k0, k1 = sp.symbols("q_0 q_1 k_0 k_1", real=True)
    q, k = sp.Matrix([q0, q1]), sp.Matrix([k0, k1])
    Rm, Rn = rot2(m * th), rot2(n * th)
    R = sp.Function("R")
    d = Derivation(
        "Exercise 13.27: the RoPE score depends only on n - m",
        assumptions=[
            "R_m = diag(R(m theta_0), ..., R(m theta_(d/2-1))), R(phi) the 2x2 rotation by phi; d even",
            "m, n, t real (integer positions in use); q, k real",
            "transposes and products of block-diagonal matrices go block by block (step 4), so the d-dim "
            "identity is the symbolic block of step 2 repeated with theta = theta_i; step 5 writes out 3 blocks",
        ],
    )
    d.eq(
        R(m),
        rot2(m),
        "Exercise 13.16: the block on (q_0, q_1) at position m with theta_0 = 1",
        strategy="exact",
        computed=rope_matrix(m, [1]),
    )
    d.eq(Rm.T * Rn, rot2((n - m) * th), "one block: R_m^T R_n = R_(n-m)", strategy="trig")
    d.eq(Rm.T * Rm, sp.eye(2), "R_m is orthogonal (the case n = m)", strategy="trig")
    A, B, C, D = (generic_matrix(s) for s in "ABCD")
    a, b, c, e = (sp.MatrixSymbol(s, 2, 2) for s in "ABCD")
    shown = sp.BlockDiagMatrix(a, b).T * sp.BlockDiagMatrix(c, e) - sp.BlockDiagMatrix(a.T * c, b.T * e)
    d.eq(
        shown,
        sp.zeros(4, 4),
        "block-diagonal matrices: transpose and product go block by block (any 2x2 blocks A, B, C, D)",
        strategy="expand",
        computed=sp.diag(A, B).T * sp.diag(C, D) - sp.diag(A.T * C, B.T * D),
    )
    ths = sp.symbols("theta_0:3", positive=True)
    RmT_Rn = sp.MatrixSymbol("R_m", 6, 6).T * sp.MatrixSymbol("R_n", 6, 6)
    Rm3, Rn3 = block_diag_rotation([m * x for x in ths]), block_diag_rotation([n * x for x in ths])
    d.eq(
        RmT_Rn,
        block_diag_rotation([(n - m) * x for x in ths]),
        "three blocks: R_m^T R_n = R_(n-m)",
        strategy="trig",
        computed=Rm3.T * Rn3,
    )
    score = ((Rm * q).T * (Rn * k))[0]
    rel = (q.T * rot2((n - m) * th) * k)[0]
    d.eq(score, rel, "so <R_m q, R_n k> = q^T R_(n-m) k (one block, symbolic q, k)", strategy="trig")
    d.eq(
        rel,
        (q0 * k0 + q1 * k1) * sp.cos((n - m) * th) + (q1 * k0 - q0 * k1) * sp.sin((n - m) * th),
        "written out: a function of n - m only",
        strategy="expand",
    )
    shifted = ((rot2((m + t) * th) * q).T * (rot2((n + t) * th) * k))[0]
    d.eq(shifted, score, "hence shifting both positions by t leaves the score unchanged", strategy="trig")
    d.eq(
        RmT_Rn,
        rope_matrix(n - m, ths, "half"),
        "the 'half' layout (pairs (i, i + d/2)), three blocks: R_m^T R_n = R_(n-m) as well",
        strategy="trig",
        computed=rope_matrix(m, ths, "half").T * rope_matrix(n, ths, "half"),
    )
    return d


# -- numerics ------------------------------------------------------------------------------------


def rope_dense(r: torch.Tensor, dim: int, convention: str) -> torch.Tensor:
    """Dense R_r (len(r), dim, dim) built entry by entry, independently of apply_rope."""
    theta = rope_frequencies(dim, BASE, r.device)  # (dim/2,)
    ang = r.to(torch.float64)[:, None] * theta  # (R, dim/2)
    i = torch.arange(dim // 2, device=r.device)
    a, b = (2 * i, 2 * i + 1) if convention == "interleaved" else (i, i + dim // 2)
    out = torch.zeros(len(r), dim, dim, dtype=torch.float64, device=r.device)
    c, s = ang.cos(), ang.sin()
    out[:, a, a], out[:, a, b], out[:, b, a], out[:, b, b] = c, -s, s, c
    return out


def scores(q, k, pos, convention: str) -> torch.Tensor:
    """s[b, m, n] = <R_pos[m] q_b, R_pos[n] k_b> for q, k (S, dim) and pos (P,); shape (S, P, P)."""
    S, P = q.shape[0], len(pos)
    qr = apply_rope(q[:, None, :].expand(S, P, -1), pos, BASE, convention)  # (S, P, dim)
    kr = apply_rope(k[:, None, :].expand(S, P, -1), pos, BASE, convention)  # (S, P, dim)
    return qr @ kr.transpose(1, 2)  # (S, P, P)


def relative_formula(q, k, P: int, convention: str, sign: int = 1) -> torch.Tensor:
    """f[b, m, n] = q_b^T R_(sign (n - m)) k_b from the dense matrices; shape (S, P, P)."""
    r = torch.arange(-(P - 1), P, device=q.device)  # (2P-1,) all offsets n - m
    Rk = torch.einsum("rde,se->srd", rope_dense(sign * r, q.shape[1], convention), k)  # (S, 2P-1, dim)
    f = torch.einsum("sd,srd->sr", q, Rk)  # (S, 2P-1)
    idx = torch.arange(P, device=q.device)
    return f[:, idx[None, :] - idx[:, None] + P - 1]  # (S, P, P): [m, n] -> offset n - m


def rotation_error(p: int) -> float:
    """Bound on |R_p x - fl(R_p x)| for unit x, relative: the angle p*theta (theta <= 1) is rounded
    once (eps/2 relative), cos and sin are within 2 ulp, and each output takes 3 roundings."""
    return EPS * (abs(p) / 2 + 6)


def tolerances(P: int, t_max: int, dim: int) -> tuple[float, float]:
    """(shift, formula) tolerances for unit q, k, stated before measuring: a score at positions up
    to M = P - 1 + t_max errs by at most 2 rotation_error(M) + dim eps / 2 (Cauchy-Schwarz over the
    pairs, and the dot product's rounding), the dense formula by rotation_error(P - 1) + dim eps."""
    s_hi = 2 * rotation_error(P - 1 + t_max) + dim * EPS / 2
    s_lo = 2 * rotation_error(P - 1) + dim * EPS / 2
    return s_hi + s_lo, s_hi + rotation_error(P - 1) + dim * EPS


def check(
    device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, dim: int = 64, positions: int = 64
) -> CheckResult:
    _validate(dim, positions, samples)
    dev = pick_device(device)
    gen = generator(dev, seed)
    P = positions
    q, k = torch.randn(2, samples, dim, generator=gen, device=dev, dtype=torch.float64)
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)  # unit: tolerances scale-free
    pos = torch.arange(P, device=dev)
    tol_shift, tol_formula = tolerances(P, max(SHIFTS), dim)
    res = CheckResult(
        f"RoPE scores s(m, n), m, n in [0, {P}), dim = {dim}, shifts t in {SHIFTS}", describe(dev), samples, seed
    )
    formulas = {c: relative_formula(q, k, P, c) for c in CONVENTIONS}
    for c in CONVENTIONS:
        s0 = scores(q, k, pos, c)
        shift = max(float((scores(q, k, pos + t, c) - s0).abs().max()) for t in SHIFTS)
        form = float((s0 - formulas[c]).abs().max())
        far = float((scores(q, k, pos + max(SHIFTS), c) - formulas[c]).abs().max())
        res.table.append(
            {
                "convention": c,
                "max|s(m+t,n+t) - s(m,n)|": shift,
                "/eps": shift / EPS,
                "max|s - q^T R_(n-m) k|": max(form, far),
                "/eps ": max(form, far) / EPS,
            }
        )
        res.claims.append(Bound.of(f"[{c}] max |s(m+t, n+t) - s(m, n)|", shift, 0.0, tol_shift))
        res.claims.append(
            Bound.of(
                f"[{c}] max |s(m+t, n+t) - q^T R_(n-m) k| (t = 0, {max(SHIFTS)})", max(form, far), 0.0, tol_formula
            )
        )
    pe = sinusoidal_table(P + max(SHIFTS), dim, BASE, torch.float64, dev)  # (P + t_max, dim)
    absolute = lambda t: (q[:, None] + pe[t : t + P]) @ (k[:, None] + pe[t : t + P]).transpose(1, 2)  # noqa: E731
    res.controls.append(
        Bound.of(
            "absolute PE: max |s(m+t, n+t) - s(m, n)| of (q + PE(m)).(k + PE(n))",
            max(float((absolute(t) - absolute(0)).abs().max()) for t in SHIFTS),
            0.0,
            tol_shift,
        )
    )
    if dim > 2:  # at dim = 2 both layouts are the same single pair
        res.controls.append(
            Bound.of(
                "'half' rotation vs the 'interleaved' formula",
                float((scores(q, k, pos, "half") - formulas["interleaved"]).abs().max()),
                0.0,
                tol_formula,
            )
        )
    else:
        res.notes.append("dim = 2: the layouts coincide, so the mixed-layout control is skipped")
    res.controls.append(
        Bound.of(
            "[interleaved] s(m, n) vs q^T R_(m-n) k (the sign flipped)",
            float((scores(q, k, pos, "interleaved") - relative_formula(q, k, P, "interleaved", -1)).abs().max()),
            0.0,
            tol_formula,
        )
    )
    res.notes.append(
        f"q, k: {samples} seeded N(0, I) draws scaled to unit length; tolerances "
        f"{tol_shift:.3g} (shift) and {tol_formula:.3g} (formula) from float64 rounding "
        f"(see tolerances()), eps = {EPS:.3g}"
    )
    return res


def figure(path, device=None, seed: int = 0, dim: int = 64, positions: int = 64):
    """The score s(m, n) of one random (q, k) for both layouts: constant along every diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    _validate(dim, positions)
    dev = pick_device(device)
    q, k = torch.randn(2, 1, dim, generator=generator(dev, seed), device=dev, dtype=torch.float64)
    pos = torch.arange(positions, device=dev)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, c in zip(axes, CONVENTIONS):
        s = scores(q, k, pos, c)[0].cpu().numpy()  # (P, P)
        lim = abs(s).max()
        im = ax.imshow(s, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=f"RoPE score <R_m q, R_n k>, '{c}'", xlabel="key position n", ylabel="query position m")
        fig.colorbar(im, ax=ax)
    fig.suptitle("constant along every diagonal n - m = const: the score depends on n - m only")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

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

import sympy as sp
import torch

from derive.blockdiag import transpose_product_blockwise
from derive.engine import Derivation
from derive.rotation import block_diag_rotation, rope_matrix, rot2
from models.positional import CONVENTIONS, apply_rope, rope_frequencies, sinusoidal_table
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.rotary import EPS, angle_error, pair_index, unit_rows
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.27"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = r"With RoPE, $\langle R_m q, R_n k \rangle = q^T R_{n-m} k$ depends only on the relative position $n - m$."
DEFAULT_SAMPLES = 128  # random unit (q, k) draws, each scored on the whole (m, n) grid
# Memory: the (samples, positions, positions) float64 score grids, about a dozen alive at once: measured 0.19 GB
# at 512 x 64 x 64 (~90 bytes per samples x positions^2); MAX_GRID = 2^24 of them needs ~1.5 GB. The dense
# rotations R_r are (2 positions - 1) x dim x dim float64: MAX_DENSE = 2^26 of them is 0.5 GB (1 GB with einsum's
# copy); R_(n-m) k for every sample and offset is samples x (2 positions - 1) x dim float64, MAX_ROWS = 2^25 of
# them 0.27 GB (a few copies: ~1 GB). Time: 4 s at 512 samples on 2 CPU cores; the bounds keep it near a minute.
MAX_DIM, MAX_POSITIONS, MAX_GRID, MAX_DENSE, MAX_ROWS = 1024, 4096, 1 << 24, 1 << 26, 1 << 25
MAX_SAMPLES = MAX_GRID // 64**2
SAMPLES_WHY = "samples x positions^2 float64 score grids, ~60-90 bytes each: 4,096 at 64 positions took 1 GB, 29 s"
_WHY_DIM = "(2 positions - 1) x dim x dim float64 rotations: 1,024 at 32 positions is 0.5 GB"
_WHY_POS = "samples x positions^2 float64 scores, ~90 bytes each: 4,096 at 1 sample is 1.5 GB"
OPTIONS = [
    Option("--dim", int, 64, "head dimension (even)", lo=2, hi=MAX_DIM, why=_WHY_DIM),
    Option("--positions", int, 64, "grid size: m, n in [0, positions)", lo=2, hi=MAX_POSITIONS, why=_WHY_POS),
]
SHIFTS = (1, 17, 1000, 4096)
BASE = 10000.0


def validate(o) -> None:
    """An even dim, and the memory of the dense rotations, of R_(n-m) k and of the score grids."""
    dim, positions, samples = o.dim, o.positions, o.samples
    if dim % 2:
        raise ValueError(f"dim: must be even (dims are rotated in pairs), got {dim}")
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


def derivation() -> Derivation:
    """One block, then all blocks (block-diagonal algebra), then the score and the other layout."""
    d = Derivation(
        "Exercise 13.27: the RoPE score depends only on $n - m$",
        assumptions=[
            r"$R_m = \mathrm{diag}(R(m\theta_0), \dots, R(m\theta_{d/2-1}))$, $R(\phi)$ the $2 \times 2$ rotation "
            r"by $\phi$; $d$ even",
            "$m$, $n$, $t$ real (integer positions in use); $q$, $k$ real",
            "transposes and products of block-diagonal matrices go block by block (step 4), so the $d$-dim "
            r"identity is the symbolic block of step 2 repeated with $\theta = \theta_i$; step 5 writes out 3 blocks",
        ],
    )
    m, n, t = sp.symbols("m n t", real=True)
    th = sp.Symbol("theta", positive=True)
    _one_block(d, m, n, th)
    transpose_product_blockwise(d)
    _three_blocks(d, m, n)
    _score(d, m, n, t, th)
    _half_layout(d, m, n)
    return d


def _one_block(d: Derivation, m, n, th) -> None:
    """Steps 1-3: the block of Exercise 13.16, and R_m^T R_n = R_(n-m) for one 2x2 block."""
    d.eq(
        sp.Function("R")(m),
        rot2(m),
        r"Exercise 13.16: the block on $(q_0, q_1)$ at position $m$ with $\theta_0 = 1$",
        strategy="exact",
        computed=rope_matrix(m, [1]),
    )
    Rm, Rn = rot2(m * th), rot2(n * th)
    d.eq(Rm.T * Rn, rot2((n - m) * th), "one block: $R_m^T R_n = R_{n-m}$", strategy="trig")
    d.eq(Rm.T * Rm, sp.eye(2), "$R_m$ is orthogonal (the case $n = m$)", strategy="trig")


def _three_blocks(d: Derivation, m, n) -> None:
    """Step 5: R_m^T R_n = R_(n-m) with three blocks written out."""
    ths = sp.symbols("theta_0:3", positive=True)
    Rm3, Rn3 = block_diag_rotation([m * x for x in ths]), block_diag_rotation([n * x for x in ths])
    d.eq(
        sp.MatrixSymbol("R_m", 6, 6).T * sp.MatrixSymbol("R_n", 6, 6),
        block_diag_rotation([(n - m) * x for x in ths]),
        "three blocks: $R_m^T R_n = R_{n-m}$",
        strategy="trig",
        computed=Rm3.T * Rn3,
    )


def _score(d: Derivation, m, n, t, th) -> None:
    """Steps 6-8: the score is q^T R_(n-m) k, a function of n - m written out, unchanged by a shift."""
    q0, q1, k0, k1 = sp.symbols("q_0 q_1 k_0 k_1", real=True)
    q, k = sp.Matrix([q0, q1]), sp.Matrix([k0, k1])
    score = ((rot2(m * th) * q).T * (rot2(n * th) * k))[0]
    rel = (q.T * rot2((n - m) * th) * k)[0]
    d.eq(
        score, rel, r"so $\langle R_m q, R_n k \rangle = q^T R_{n-m} k$ (one block, symbolic $q$, $k$)", strategy="trig"
    )
    d.eq(
        rel,
        (q0 * k0 + q1 * k1) * sp.cos((n - m) * th) + (q1 * k0 - q0 * k1) * sp.sin((n - m) * th),
        "written out: a function of $n - m$ only",
        strategy="expand",
    )
    shifted = ((rot2((m + t) * th) * q).T * (rot2((n + t) * th) * k))[0]
    d.eq(shifted, score, "hence shifting both positions by $t$ leaves the score unchanged", strategy="trig")


def _half_layout(d: Derivation, m, n) -> None:
    """Step 9: the same identity in Hugging Face's 'half' layout, three blocks."""
    ths = sp.symbols("theta_0:3", positive=True)
    d.eq(
        sp.MatrixSymbol("R_m", 6, 6).T * sp.MatrixSymbol("R_n", 6, 6),
        rope_matrix(n - m, ths, "half"),
        "the 'half' layout (pairs $(i, i + d/2)$), three blocks: $R_m^T R_n = R_{n-m}$ as well",
        strategy="trig",
        computed=rope_matrix(m, ths, "half").T * rope_matrix(n, ths, "half"),
    )


# -- numerics ------------------------------------------------------------------------------------


def rope_dense(r: torch.Tensor, dim: int, convention: str) -> torch.Tensor:
    """Dense R_r (len(r), dim, dim) built entry by entry, independently of apply_rope."""
    theta = rope_frequencies(dim, BASE, r.device)  # (dim/2,)
    ang = r.to(torch.float64)[:, None] * theta  # (R, dim/2)
    a, b = pair_index(dim, convention, r.device)
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
    return angle_error(abs(p), 6)


def tolerances(P: int, t_max: int, dim: int) -> tuple[float, float]:
    """(shift, formula) tolerances for unit q, k, stated before measuring: a score at positions up
    to M = P - 1 + t_max errs by at most 2 rotation_error(M) + dim eps / 2 (Cauchy-Schwarz over the
    pairs, and the dot product's rounding), the dense formula by rotation_error(P - 1) + dim eps."""
    s_hi = 2 * rotation_error(P - 1 + t_max) + dim * EPS / 2
    s_lo = 2 * rotation_error(P - 1) + dim * EPS / 2
    return s_hi + s_lo, s_hi + rotation_error(P - 1) + dim * EPS


@with_options
def check(o) -> CheckResult:
    """Scores s(m, n) of random unit q, k in both layouts: shift-invariant and equal to q^T R_(n-m) k;
    controls: absolute sinusoidal PE, the other layout's formula, and R_(m-n)."""
    samples, seed, dim, P, dev = o.samples, o.seed, o.dim, o.positions, pick_device(o.device)
    q, k = unit_rows((2, samples, dim), generator(dev, seed), dev)  # unit: tolerances scale-free
    pos = torch.arange(P, device=dev)
    tol_shift, tol_formula = tolerances(P, max(SHIFTS), dim)
    res = CheckResult(
        f"RoPE scores s(m, n), m, n in [0, {P}), dim = {dim}, shifts t in {SHIFTS}", describe(dev), samples, seed
    )
    formulas = {c: relative_formula(q, k, P, c) for c in CONVENTIONS}
    for c in CONVENTIONS:
        s0 = scores(q, k, pos, c)
        res.series[c] = s0[0].cpu()  # the first draw's score grid, for the figure
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
    wrong = {
        "absolute PE: max |s(m+t, n+t) - s(m, n)| of (q + PE(m)).(k + PE(n))": (
            max(float((absolute(t) - absolute(0)).abs().max()) for t in SHIFTS),
            tol_shift,
        )
    }
    if dim > 2:  # at dim = 2 both layouts are the same single pair
        mixed = scores(q, k, pos, "half") - formulas["interleaved"]
        wrong["'half' rotation vs the 'interleaved' formula"] = (float(mixed.abs().max()), tol_formula)
    else:
        res.notes.append("dim = 2: the layouts coincide, so the mixed-layout control is skipped")
    flipped = scores(q, k, pos, "interleaved") - relative_formula(q, k, P, "interleaved", -1)
    wrong["[interleaved] s(m, n) vs q^T R_(m-n) k (the sign flipped)"] = (float(flipped.abs().max()), tol_formula)
    res.controls += [Bound.of(name, err, 0.0, tol) for name, (err, tol) in wrong.items()]
    res.notes.append(
        f"q, k: {samples} seeded N(0, I) draws scaled to unit length; tolerances "
        f"{tol_shift:.3g} (shift) and {tol_formula:.3g} (formula) from float64 rounding "
        f"(see tolerances()), eps = {EPS:.3g}"
    )
    return res


def figure(res: CheckResult):
    """The score grid $s(m, n)$ of the check's first $(q, k)$ in both layouts: constant along every diagonal."""
    fig, axes = plotting.subplots(2, width=10, height=4.5, layout="constrained")
    fig.suptitle(r"constant along every diagonal $n - m = \mathrm{const}$: the score depends on $n - m$ only")
    for ax, c in zip(axes, CONVENTIONS):
        s = res.series[c].numpy()  # (P, P)
        lim = abs(s).max()
        im = ax.imshow(s, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(
            title=f"RoPE score $\\langle R_m q, R_n k \\rangle$, '{c}'",
            xlabel="key position $n$",
            ylabel="query position $m$",
        )
        fig.colorbar(im, ax=ax, label="score")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

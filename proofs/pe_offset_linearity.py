"""Exercise 13.26: the sinusoidal encoding at ``pos + k`` is a fixed linear map of the one at ``pos``.

The encoding stores, for each frequency $\\omega_i = b^{-2i/d}$, the pair
$(\\sin(\\mathrm{pos}\\,\\omega_i), \\cos(\\mathrm{pos}\\,\\omega_i))$. The angle-addition formulas give

$$\\begin{pmatrix}\\sin((p+k)\\omega)\\\\ \\cos((p+k)\\omega)\\end{pmatrix} =
\\underbrace{\\begin{pmatrix}\\cos k\\omega & \\sin k\\omega\\\\
-\\sin k\\omega & \\cos k\\omega\\end{pmatrix}}_{M_k(\\omega)}
\\begin{pmatrix}\\sin p\\omega\\\\ \\cos p\\omega\\end{pmatrix},$$

so $\\mathrm{PE}(p+k) = M_k\\,\\mathrm{PE}(p)$ with
$M_k = \\mathrm{diag}(M_k(\\omega_0), \\dots, M_k(\\omega_{d/2-1}))$:
a block-diagonal rotation (by $-k\\omega_i$ in each (sin, cos) plane) that involves $k$ and the
frequencies but not $p$. It is orthogonal, and $M_j M_k = M_{j+k}$: offsets compose like positions.
The derivation proves one symbolic block, the block with the actual frequencies $b^{-2i/d}$, that a
block-diagonal matrix acts block by block, and the whole map for three symbolic frequencies.

The check measures, in float64 with ``models.positional.sinusoidal_table``, the largest entry of
$M_k\\mathrm{PE}(p) - \\mathrm{PE}(p+k)$ over every position for edge-case offsets (negative ones too)
and over random $(p, k)$ draws, against a rounding bound stated before measuring. It fits each
2x2 block by least squares from a window of early positions and from a window of late ones: the two
fits agree with each other and with $M_k$, so the map does not depend on where it is applied.
The same comparisons reject a rotation the wrong way ($M_k^\\top$), the additive guess
$\\mathrm{PE}(p) + \\mathrm{PE}(k)$, wrong frequencies, and the non-linear map
$\\mathrm{PE}(p) \\mapsto \\mathrm{PE}(2p)$.
"""

from __future__ import annotations

import math
import sys

import sympy as sp
import torch

from derive.engine import Derivation
from derive.rotation import generic_matrix, pe_pair, pe_shift_matrix, pe_vector, rot2, sinusoidal_frequency
from models.positional import rope_frequencies, sinusoidal_table
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.cli import Option

NUMBER = "13.26"
CLAIM = "PE(pos + k) = M_k PE(pos) with M_k a block-diagonal rotation that depends on k and the frequencies only."
DEFAULT_SAMPLES = 8192  # random (pos, k) draws, on top of every position for the edge-case offsets
# Memory: the (2P + 1) x d float64 table and a few (P + 1) x d temporaries per edge-case offset, 40 to 86 bytes
# per max_pos x d_model (measured 0.18 GB at 4,096 x 512, 1.3 GB and 51 s at 65,536 x 512): MAX_AREA = 2^25.
# Time: 5 predictions (claim and 4 controls) of (8 (P + 1) + samples) rows of d values, measured 215 s for
# 10^6 samples at d = 512 on 2 busy CPU cores: ~4e-7 s per row x dim (12 s at 2.6 x 10^5 idle, ~1e-7); MAX_WORK = 2^30
# takes 2 to 7 minutes.
MAX_D, MAX_POS, MAX_AREA, MAX_WORK = 8192, 1 << 16, 1 << 25, 1 << 30
MAX_SAMPLES = 2 * 10**6
SAMPLES_WHY = "the check's time grows linearly: 46 s (idle) to 215 s (busy) per 10^6 at d-model 512 on 2 CPU cores"
OPTIONS = [
    Option(
        "--d-model",
        int,
        512,
        "model width (even)",
        lo=2,
        hi=MAX_D,
        why="chunks of 4,096 x d float64 rows, several at once: 8,192 needs ~2 GB",
    ),
    Option(
        "--max-pos",
        int,
        4096,
        "largest position pos; offsets k range over [-max_pos, max_pos]",
        lo=4,
        hi=MAX_POS,
        why="a (2 max-pos + 1) x d-model float64 table and its temporaries: 2^16 x 512 took 1.3 GB and 51 s",
    ),
]
EPS = torch.finfo(torch.float64).eps  # 2**-52
BASE = 10000.0


def _validate(d_model, max_pos) -> None:
    if not isinstance(d_model, int) or d_model <= 0 or d_model % 2:
        raise ValueError(f"d_model: must be a positive even integer, got {d_model!r}")
    if d_model > MAX_D:
        raise ValueError(f"d_model: must be at most {MAX_D:,} (4,096-row float64 chunks of width d), got {d_model:,}")
    if not isinstance(max_pos, int) or not 4 <= max_pos <= MAX_POS:
        raise ValueError(f"max_pos: must be an integer in [4, {MAX_POS:,}], got {max_pos!r}")
    if max_pos * d_model > MAX_AREA:
        raise ValueError(
            f"max_pos: max_pos x d_model must be at most {MAX_AREA:,} (a float64 table of 2 max_pos + 1 rows and "
            f"its temporaries, 40 to 86 bytes each: up to 3 GB), got {max_pos:,} x {d_model:,}"
        )


def validate(d_model=512, max_pos=4096, samples=DEFAULT_SAMPLES) -> None:
    """Refuse bad options before any work; the time grows like d_model x (8 max_pos + samples)."""
    _validate(d_model, max_pos)
    work = d_model * (8 * (max_pos + 1) + samples)
    if work > MAX_WORK:
        raise ValueError(
            f"samples: d_model x (8 (max_pos + 1) + samples) must be at most {MAX_WORK:,} (~4e-7 s each on 2 CPU "
            f"cores: ~7 minutes), got {d_model:,} x (8 x {max_pos + 1:,} + {samples:,}) = {work:,}"
        )


def offset_block(k, omega) -> sp.Matrix:
    """M_k(omega) written out, as the derivation states it."""
    return sp.Matrix([[sp.cos(k * omega), sp.sin(k * omega)], [-sp.sin(k * omega), sp.cos(k * omega)]])


def derivation() -> Derivation:
    pos, k, j = sp.symbols("pos k j", real=True)
    w = sp.Symbol("omega", positive=True)
    i, d, b = sp.Symbol("i", nonnegative=True), sp.Symbol("d", positive=True), sp.Symbol("b", positive=True)
    M = offset_block(k, w)
    d_ = Derivation(
        "Exercise 13.26: PE(pos + k) = M_k PE(pos), M_k independent of pos",
        assumptions=[
            "PE[pos, 2i] = sin(pos w_i), PE[pos, 2i+1] = cos(pos w_i), w_i = b^(-2i/d), d even",
            "pos, k real (integers in use); one 2x2 block per frequency",
            "a block-diagonal matrix acts block by block (step 11), so the map for any d/2 blocks is "
            "the symbolic block of steps 3-4 repeated with w = w_i; step 12 writes out d/2 = 3",
        ],
    )
    d_.eq(
        sp.sin(w * (pos + k)),
        sp.sin(pos * w) * sp.cos(k * w) + sp.cos(pos * w) * sp.sin(k * w),
        "angle addition for sin",
        strategy="expand_trig",
    )
    d_.eq(
        sp.cos(w * (pos + k)),
        sp.cos(pos * w) * sp.cos(k * w) - sp.sin(pos * w) * sp.sin(k * w),
        "angle addition for cos",
        strategy="expand_trig",
    )
    d_.eq(
        pe_pair(pos + k, w),
        M * pe_pair(pos, w),
        "so one (sin, cos) pair at pos + k is M_k(w) times the pair at pos",
        strategy="expand_trig",
    )
    wi = sinusoidal_frequency(i, d, b)
    d_.eq(
        pe_pair(pos + k, wi),
        offset_block(k, wi) * pe_pair(pos, wi),
        "the same with the actual frequency w_i = b^(-2i/d): M_k depends on k, i, d, b only",
        strategy="expand_trig",
    )
    d_.eq(
        sp.Derivative(sp.MatrixSymbol("M_k", 2, 2), pos),
        sp.zeros(2, 2),
        "M_k does not depend on pos",
        strategy="exact",
        computed=sp.diff(M, pos),
    )
    d_.eq(
        sp.Function("R")(-k * w),
        M,
        "M_k is R(-k w), the rotation by -k w in the (sin, cos) plane",
        strategy="exact",
        computed=rot2(-k * w),
    )
    d_.eq(M.T * M, sp.eye(2), "M_k is orthogonal", strategy="trig")
    d_.eq(M.det(), 1, "with determinant 1 (a rotation, not a reflection)", strategy="trig")
    d_.eq(offset_block(j, w) * M, offset_block(j + k, w), "offsets compose: M_j M_k = M_(j+k)", strategy="trig")
    d_.eq(offset_block(0, w), sp.eye(2), "M_0 = I", strategy="exact")
    A, B, x, y = generic_matrix("A"), generic_matrix("B"), generic_matrix("x", 2, 1), generic_matrix("y", 2, 1)
    a, b_ = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    u, v = sp.MatrixSymbol("x", 2, 1), sp.MatrixSymbol("y", 2, 1)
    shown = sp.BlockDiagMatrix(a, b_) * sp.BlockMatrix([[u], [v]]) - sp.BlockMatrix([[a * u], [b_ * v]])
    d_.eq(
        shown,
        sp.zeros(4, 1),
        "a block-diagonal matrix acts block by block (any 2x2 blocks A, B)",
        strategy="expand",
        computed=sp.diag(A, B) * sp.Matrix.vstack(x, y) - sp.Matrix.vstack(A * x, B * y),
    )
    ws = sp.symbols("omega_0:3", positive=True)
    d_.eq(
        pe_vector(pos + k, ws),
        pe_shift_matrix(k, ws) * pe_vector(pos, ws),
        "the whole map for three frequencies: PE(pos + k) = diag(M_k(w_0), M_k(w_1), M_k(w_2)) PE(pos)",
        strategy="expand_trig",
    )
    return d_


# -- numerics ------------------------------------------------------------------------------------


def rotate_pairs(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Apply diag(M(angle_i)) to x (n, d) in the (sin, cos) layout; angle (n, d/2) or (1, d/2)."""
    c, s = angle.cos(), angle.sin()  # (n or 1, d/2)
    xs, xc = x[:, 0::2], x[:, 1::2]  # (n, d/2)
    return torch.stack((xs * c + xc * s, xc * c - xs * s), dim=-1).flatten(-2)  # (n, d)


def offset_blocks(k, w: torch.Tensor) -> torch.Tensor:
    """The blocks of M_k, [[cos kw, sin kw], [-sin kw, cos kw]] per frequency; shape (d/2, 2, 2)."""
    c, s = (k * w).cos(), (k * w).sin()
    return torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2)


def pe_at(positions: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """PE rows at integer positions (n, 1), also negative ones, from the same float64 frequencies."""
    ang = positions * w  # (n, d/2)
    return torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(-2)  # (n, d)


def pair_errors(table, pos, k, predict, chunk: int = 4096) -> torch.Tensor:
    """max_j |predict(PE(pos), k)_j - PE(pos + k)_j| for each (pos, k) pair, in chunks.
    ``predict(x (n, d), k (n, 1) float64) -> (n, d)``; an int ``k`` means every pos, one offset."""
    if isinstance(k, int):  # one offset: contiguous slices, and M_k's cos/sin once
        kk = torch.tensor([[float(k)]], dtype=torch.float64, device=table.device)  # (1, 1)
        shifted = slice(pos.start + k, pos.stop + k) if isinstance(pos, slice) else pos + k
        return (predict(table[pos], kk) - table[shifted]).abs().amax(-1)
    out = [
        (predict(table[p], kk[:, None].double()) - table[p + kk]).abs().amax(-1)
        for p, kk in zip(pos.split(chunk), k.split(chunk))
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def offset_tolerance(max_pos: int, max_k: int, omega_max: float = 1.0) -> float:
    """Bound on |M_k PE(pos) - PE(pos + k)| in float64, stated before measuring: each angle
    x*w is rounded once (relative error eps/2; a rotation moves a unit pair by at most its angle
    error), for the angles of pos, k and pos + k; plus 14 eps for five cos/sin values within 2 ulp
    (CUDA's documented double bound; CPU libraries are tighter) and four roundings in the rotation."""
    angles = (max_pos + max_k + (max_pos + max_k)) * omega_max
    return EPS * (angles / 2 + 14)


def _pairs(P: int, samples: int, gen, dev):
    """Edge-case offsets at every valid position 0..P, and random (pos, k) draws, k in [-P, P]."""
    edge = sorted({0, 1, -1, P // 2, -(P // 2), P - 1, P, -P})
    grid = [(slice(max(0, -k), P + 1), k) for k in edge]
    k = torch.randint(-P, P + 1, (samples,), generator=gen, device=dev)
    lo = (-k).clamp(min=0)
    u = torch.rand(samples, generator=gen, device=dev, dtype=torch.float64)
    pos = lo + (u * (P + 1 - lo)).long().clamp(max=P - lo)
    return grid, (pos, k)


def fit_blocks(table, start: int, n: int, target: torch.Tensor):
    """Least-squares 2x2 map per block from rows table[start:start+n] to target rows (n, d).
    Returns the fitted blocks (d/2, 2, 2) in the M layout and each block's smallest singular value."""
    X = table[start : start + n].view(n, -1, 2).transpose(0, 1)  # (d/2, n, 2)
    Y = target.view(n, -1, 2).transpose(0, 1)  # (d/2, n, 2)
    B = torch.linalg.lstsq(X, Y).solution  # (d/2, 2, 2), X B = Y so M = B^T
    return B.transpose(1, 2), torch.linalg.svdvals(X)[:, -1]


def fit_tolerance(n: int, e_x: float, e_y: float, sigma_min: torch.Tensor) -> float:
    """First-order least-squares bound: |dM| <= (|dY|_F + |dX|_F |M|_2 + n eps |X|_F) / sigma_min,
    with |M|_2 = 1, |dX|_F <= sqrt(2n) e_x, |dY|_F <= sqrt(2n) e_y, |X|_F = sqrt(n) (unit pairs);
    the last term is the QR solver's backward error. Worst block (smallest sigma_min)."""
    return float((math.sqrt(2 * n) * (e_x + e_y) + n * EPS * math.sqrt(n)) / sigma_min.min())


def check(
    device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, d_model: int = 512, max_pos: int = 4096
) -> CheckResult:
    validate(d_model, max_pos, samples)
    dev = pick_device(device)
    gen = generator(dev, seed)
    P = max_pos
    table = sinusoidal_table(2 * P + 1, d_model, BASE, torch.float64, dev)  # (2P+1, d), positions 0..2P
    w = rope_frequencies(d_model, BASE, dev)  # (d/2,) the table's own float64 frequencies
    tol = offset_tolerance(P, P, float(w.max()))
    res = CheckResult(
        f"PE(pos + k) = M_k PE(pos), d_model = {d_model}, pos in [0, {P}], k in [-{P}, {P}]",
        describe(dev),
        samples,
        seed,
    )
    grid, (rpos, rk) = _pairs(P, samples, gen, dev)
    claim = lambda x, k: rotate_pairs(x, k * w)  # noqa: E731

    def worst(predict, with_rows=False):
        errs = []
        for pos, k in grid:
            e = float(pair_errors(table, pos, k, predict).max())
            errs.append(e)
            if with_rows:
                res.table.append({"k": k, "positions": P + 1 - pos.start, "max |err|": e, "err / eps": e / EPS})
        e = float(pair_errors(table, rpos, rk, predict).max()) if samples else 0.0
        if with_rows:
            res.table.append({"k": "random", "positions": samples, "max |err|": e, "err / eps": e / EPS})
        return max(errs + [e])

    res.claims.append(Bound.of("max |M_k PE(pos) - PE(pos + k)|", worst(claim, True), 0.0, tol))
    wrong_w = torch.tensor(BASE, dtype=torch.float64, device=dev) ** (-torch.arange(d_model // 2, device=dev) / d_model)
    controls = {
        "M_k transposed (rotation the wrong way)": lambda x, k: rotate_pairs(x, -k * w),
        "PE(pos) + PE(k) (additive guess)": lambda x, k: x + pe_at(k, w),
        "M_k with w_i = b^(-i/d) (the 2 forgotten)": lambda x, k: rotate_pairs(x, k * wrong_w),
        "M_k with w_i off by 1e-9 (relative)": lambda x, k: rotate_pairs(x, k * w * (1 + 1e-9)),
    }
    if d_model == 2:  # one frequency, w_0 = 1 either way: that control cannot differ from the claim
        del controls["M_k with w_i = b^(-i/d) (the 2 forgotten)"]
        res.notes.append("d_model = 2: the 'forgotten 2' control is skipped (w_0 = 1 in both)")
    for name, predict in controls.items():
        res.controls.append(Bound.of(f"max |err| of {name}", worst(predict), 0.0, tol))
    _fits(res, table, w, P)
    res.notes.append(
        f"tolerance eps * (angles/2 + 14) = {tol:.3g} for eps = {EPS:.3g} (see offset_tolerance); "
        f"{sum(P + 1 - p.start for p, _ in grid) + samples:,} (pos, k) pairs checked"
    )
    return res


def _fits(res: CheckResult, table, w, P: int) -> None:
    """Blockwise least-squares fits from an early and a late window agree with each other and M_k."""
    nA, nB = min(100, P // 2), min(96, P // 2)
    a0, b0 = 0, P - nB
    e_tab = lambda top: EPS * (top * float(w.max()) / 2 + 2)  # noqa: E731  one table entry
    fits, worst = {}, {"A": 0.0, "B": 0.0, "AB": 0.0, "tA": 0.0, "tB": 0.0, "tAB": 0.0}
    for k in sorted({1, min(37, P // 2), P // 2}):
        M = offset_blocks(k, w)  # (d/2, 2, 2)
        MA, sA = fit_blocks(table, a0, nA, table[a0 + k : a0 + k + nA])
        MB, sB = fit_blocks(table, b0, nB, table[b0 + k : b0 + k + nB])
        tA = fit_tolerance(nA, e_tab(a0 + nA), e_tab(a0 + nA + k), sA) + e_tab(k)
        tB = fit_tolerance(nB, e_tab(P), e_tab(P + k), sB) + e_tab(k)
        fits[k] = (MA, MB)
        for key, val, t in (("A", MA - M, tA), ("B", MB - M, tB), ("AB", MA - MB, tA + tB)):
            worst[key] = max(worst[key], float(val.abs().max()))
            worst["t" + key] = max(worst["t" + key], t)
    wa, wb = f"[{a0}, {a0 + nA})", f"[{b0}, {b0 + nB})"
    ks = ", ".join(map(str, sorted({1, min(37, P // 2), P // 2})))
    res.claims.append(Bound.of(f"LS fit from pos in {wa} vs M_k (k = {ks})", worst["A"], 0.0, worst["tA"]))
    res.claims.append(Bound.of(f"LS fit from pos in {wb} vs M_k", worst["B"], 0.0, worst["tB"]))
    res.claims.append(Bound.of(f"LS fits from {wa} and {wb} agree", worst["AB"], 0.0, worst["tAB"]))
    # controls: the same agreement test between fits for k and k + 1, and for the map PE(pos) -> PE(2 pos)
    MA1, _ = fit_blocks(table, a0, nA, table[a0 + 2 : a0 + 2 + nA])
    res.controls.append(
        Bound.of(
            f"LS fits for k = 1 ({wa}) and k = 2 ({wa}) agree", float((fits[1][0] - MA1).abs().max()), 0.0, worst["tAB"]
        )
    )
    DA, sDA = fit_blocks(table, a0, nA, table[2 * a0 : 2 * (a0 + nA) : 2])
    DB, sDB = fit_blocks(table, b0, nB, table[2 * b0 : 2 * (b0 + nB) : 2])
    tD = fit_tolerance(nA, e_tab(nA), e_tab(2 * nA), sDA) + fit_tolerance(nB, e_tab(P), e_tab(2 * P), sDB)
    res.controls.append(
        Bound.of(f"LS fits of PE(pos) -> PE(2 pos) from {wa} and {wb} agree", float((DA - DB).abs().max()), 0.0, tD)
    )


def figure(path, device=None, seed: int = 0, d_model: int = 512, max_pos: int = 4096):
    """Left: log10 of the error in units of eps over (pos, k). Right: M_k for k = 5 (16 dims)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.utils.files import save_figure

    _validate(d_model, max_pos)
    dev = pick_device(device)
    P = max_pos
    table = sinusoidal_table(2 * P + 1, d_model, BASE, torch.float64, dev)
    w = rope_frequencies(d_model, BASE, dev)
    ps, ks = torch.linspace(0, P, 129, device=dev).round().long(), torch.linspace(-P, P, 129, device=dev).round().long()
    pp, kk = torch.meshgrid(ps, ks, indexing="ij")  # (129, 129)
    ok = (pp + kk) >= 0
    err = torch.full(pp.shape, float("nan"), dtype=torch.float64, device=dev)
    err[ok] = pair_errors(table, pp[ok], kk[ok], lambda x, k: rotate_pairs(x, k * w))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    im = a.imshow(torch.log10(err / EPS + 1).cpu().numpy(), origin="lower", aspect="auto", extent=(-P, P, 0, P))
    a.set(xlabel="offset k", ylabel="position pos", title="log10(1 + max|M_k PE(pos) - PE(pos+k)| / eps)")
    fig.colorbar(im, ax=a)
    n = min(16, d_model)
    Mk = torch.block_diag(*offset_blocks(5, w[: n // 2])).cpu()  # (n, n): the top-left corner of M_5
    im2 = b.imshow(Mk.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    b.set(title=f"M_k for k = 5, first {n} of {d_model} dims", xlabel="input dim", ylabel="output dim")
    fig.colorbar(im2, ax=b)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

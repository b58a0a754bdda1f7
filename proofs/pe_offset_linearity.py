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

import sympy as sp
import torch

from derive.blockdiag import acts_blockwise
from derive.engine import Derivation
from derive.rotation import pe_pair, pe_shift_matrix, pe_vector, rot2, sinusoidal_frequency
from models.positional import rope_frequencies, sinusoidal_table
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.rotary import EPS, angle_error, offset_blocks, pe_at, rotate_pairs
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.26"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"$\mathrm{PE}(pos + k) = M_k \mathrm{PE}(pos)$ with $M_k$ a block-diagonal rotation "
    r"that depends on $k$ and the frequencies only."
)
DEFAULT_SAMPLES = 8192  # random (pos, k) draws, on top of every position for the edge-case offsets
# Memory: the (2P + 1) x d float64 table and a few (P + 1) x d temporaries per edge-case offset, 40 to 86 bytes
# per max_pos x d_model (measured 0.18 GB at 4,096 x 512, 1.3 GB and 51 s at 65,536 x 512): MAX_AREA = 2^25.
# Time: 5 predictions (claim and 4 controls) of (8 (P + 1) + samples) rows of d values, measured 215 s for
# 10^6 samples at d = 512 on 2 busy CPU cores: ~4e-7 s per row x dim (12 s at 2.6 x 10^5 idle, ~1e-7); MAX_WORK = 2^30
# takes 2 to 7 minutes.
MAX_D, MAX_POS, MAX_AREA, MAX_WORK = 8192, 1 << 16, 1 << 25, 1 << 30
MAX_SAMPLES = 2 * 10**6
SAMPLES_WHY = "the check's time grows linearly: 46 s (idle) to 215 s (busy) per 10^6 at d-model 512 on 2 CPU cores"
_WHY_D = "chunks of 4,096 x d float64 rows, several at once: 8,192 needs ~2 GB"
_POS_HELP = "largest position pos; offsets k range over [-max_pos, max_pos]"
_WHY_POS = "a (2 max-pos + 1) x d-model float64 table and its temporaries: 2^16 x 512 took 1.3 GB and 51 s"
OPTIONS = [
    Option("--d-model", int, 512, "model width (even)", lo=2, hi=MAX_D, why=_WHY_D),
    Option("--max-pos", int, 4096, _POS_HELP, lo=4, hi=MAX_POS, why=_WHY_POS),
]
BASE = 10000.0


def validate(o) -> None:
    """An even width; the table's memory grows like max_pos x d_model, the time like d_model x (8 max_pos + samples)."""
    d_model, max_pos, samples = o.d_model, o.max_pos, o.samples
    if d_model % 2:
        raise ValueError(f"d_model: must be even (dims pair up as sin, cos), got {d_model}")
    if max_pos * d_model > MAX_AREA:
        raise ValueError(
            f"max_pos: max_pos x d_model must be at most {MAX_AREA:,} (a float64 table of 2 max_pos + 1 rows and "
            f"its temporaries, 40 to 86 bytes each: up to 3 GB), got {max_pos:,} x {d_model:,}"
        )
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
    """One (sin, cos) pair by angle addition, the properties of M_k, then all d/2 pairs at once."""
    d_ = Derivation(
        r"Exercise 13.26: $\mathrm{PE}(pos + k) = M_k\,\mathrm{PE}(pos)$, $M_k$ independent of $pos$",
        assumptions=[
            r"$\mathrm{PE}[pos, 2i] = \sin(pos\,\omega_i)$, $\mathrm{PE}[pos, 2i+1] = \cos(pos\,\omega_i)$, "
            r"$\omega_i = b^{-2i/d}$, $d$ even",
            r"$pos$, $k$ real (integers in use); one $2 \times 2$ block per frequency",
            "a block-diagonal matrix acts block by block (step 11), so the map for any $d/2$ blocks is "
            r"the symbolic block of steps 3-4 repeated with $\omega = \omega_i$; step 12 writes out $d/2 = 3$",
        ],
    )
    pos, k = sp.symbols("pos k", real=True)
    w = sp.Symbol("omega", positive=True)
    _one_pair(d_, pos, k, w)
    _offset_map(d_, pos, k, w)
    acts_blockwise(d_)
    ws = sp.symbols("omega_0:3", positive=True)
    d_.eq(
        pe_vector(pos + k, ws),
        pe_shift_matrix(k, ws) * pe_vector(pos, ws),
        r"the whole map for three frequencies: $\mathrm{PE}(pos + k) = M_k\,\mathrm{PE}(pos)$ with "
        r"$M_k = \mathrm{diag}(M_k(\omega_0), M_k(\omega_1), M_k(\omega_2))$",
        strategy="expand_trig",
    )
    return d_


def _one_pair(d_: Derivation, pos, k, w) -> None:
    """Steps 1-4: angle addition, so one (sin, cos) pair at pos + k is M_k(w) times the pair at pos, also
    with the actual frequency w_i = b^(-2i/d)."""
    d_.eq(
        sp.sin(w * (pos + k)),
        sp.sin(pos * w) * sp.cos(k * w) + sp.cos(pos * w) * sp.sin(k * w),
        r"angle addition for $\sin$",
        strategy="expand_trig",
    )
    d_.eq(
        sp.cos(w * (pos + k)),
        sp.cos(pos * w) * sp.cos(k * w) - sp.sin(pos * w) * sp.sin(k * w),
        r"angle addition for $\cos$",
        strategy="expand_trig",
    )
    d_.eq(
        pe_pair(pos + k, w),
        offset_block(k, w) * pe_pair(pos, w),
        r"so one $(\sin, \cos)$ pair at $pos + k$ is $M_k(\omega)$ times the pair at $pos$",
        strategy="expand_trig",
    )
    i, d, b = sp.Symbol("i", nonnegative=True), sp.Symbol("d", positive=True), sp.Symbol("b", positive=True)
    wi = sinusoidal_frequency(i, d, b)
    d_.eq(
        pe_pair(pos + k, wi),
        offset_block(k, wi) * pe_pair(pos, wi),
        r"the same with the actual frequency $\omega_i = b^{-2i/d}$: $M_k$ depends on $k$, $i$, $d$, $b$ only",
        strategy="expand_trig",
    )


def _offset_map(d_: Derivation, pos, k, w) -> None:
    """Steps 5-10: M_k does not depend on pos, is the rotation R(-k w), and offsets compose like positions."""
    M, j = offset_block(k, w), sp.Symbol("j", real=True)
    d_.eq(
        sp.Derivative(sp.MatrixSymbol("M_k", 2, 2), pos),
        sp.zeros(2, 2),
        "$M_k$ does not depend on $pos$",
        strategy="exact",
        computed=sp.diff(M, pos),
    )
    d_.eq(
        sp.Function("R")(-k * w),
        M,
        r"$M_k$ is $R(-k\omega)$, the rotation by $-k\omega$ in the $(\sin, \cos)$ plane",
        strategy="exact",
        computed=rot2(-k * w),
    )
    d_.eq(M.T * M, sp.eye(2), "$M_k$ is orthogonal", strategy="trig")
    d_.eq(M.det(), 1, "with determinant 1 (a rotation, not a reflection)", strategy="trig")
    d_.eq(offset_block(j, w) * M, offset_block(j + k, w), "offsets compose: $M_j M_k = M_{j+k}$", strategy="trig")
    d_.eq(offset_block(0, w), sp.eye(2), "$M_0 = I$", strategy="exact")


# -- numerics ------------------------------------------------------------------------------------


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
    return angle_error((max_pos + max_k + (max_pos + max_k)) * omega_max, 14)


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


@with_options
def check(o) -> CheckResult:
    """M_k PE(pos) against PE(pos + k) at edge-case and random (pos, k), and least-squares fits of M_k from two
    windows; controls: M_k transposed, PE(pos) + PE(k), wrong frequencies, PE(pos) -> PE(2 pos)."""
    samples, seed, d_model, P, dev = o.samples, o.seed, o.d_model, o.max_pos, pick_device(o.device)
    gen = generator(dev, seed)
    table = sinusoidal_table(2 * P + 1, d_model, BASE, torch.float64, dev)  # (2P+1, d), positions 0..2P
    w = rope_frequencies(d_model, BASE, dev)  # (d/2,) the table's own float64 frequencies
    tol = offset_tolerance(P, P, float(w.max()))
    title = f"PE(pos + k) = M_k PE(pos), d_model = {d_model}, pos in [0, {P}], k in [-{P}, {P}]"
    res = CheckResult(title, describe(dev), samples, seed)
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
    res.series["errors"] = _error_grid(table, w, P)
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
    DA, sDA = fit_blocks(table, a0, nA, table[2 * a0 : 2 * (a0 + nA) : 2])
    DB, sDB = fit_blocks(table, b0, nB, table[2 * b0 : 2 * (b0 + nB) : 2])
    tD = fit_tolerance(nA, e_tab(nA), e_tab(2 * nA), sDA) + fit_tolerance(nB, e_tab(P), e_tab(2 * P), sDB)
    res.controls += [
        Bound.of(
            f"LS fits for k = 1 ({wa}) and k = 2 ({wa}) agree", float((fits[1][0] - MA1).abs().max()), 0, worst["tAB"]
        ),
        Bound.of(f"LS fits of PE(pos) -> PE(2 pos) from {wa} and {wb} agree", float((DA - DB).abs().max()), 0, tD),
    ]


def _error_grid(table, w, P: int) -> torch.Tensor:
    """max |M_k PE(pos) - PE(pos + k)| on a 129 x 129 grid of pos in [0, P] (rows) and k in [-P, P]
    (columns), NaN where pos + k < 0; float64 on the CPU, for the figure."""
    dev = table.device
    ps, ks = torch.linspace(0, P, 129, device=dev).round().long(), torch.linspace(-P, P, 129, device=dev).round().long()
    pp, kk = torch.meshgrid(ps, ks, indexing="ij")  # (129, 129)
    ok = (pp + kk) >= 0
    err = torch.full(pp.shape, float("nan"), dtype=torch.float64, device=dev)
    err[ok] = pair_errors(table, pp[ok], kk[ok], lambda x, k: rotate_pairs(x, k * w))
    return err.cpu()


def figure(res: CheckResult):
    r"""The check's error over $(pos, k)$, as $\log_{10}$ in units of $\epsilon$ (left), and $M_k$ for $k = 5$
    over 16 dimensions (right)."""
    d_model, P = res.settings.d_model, res.settings.max_pos
    fig, (a, b) = plotting.subplots(2, width=11, height=4.5, layout="constrained")
    log_err = torch.log10(res.series["errors"] / EPS + 1).numpy()
    im = a.imshow(log_err, origin="lower", aspect="auto", extent=(-P, P, 0, P))
    a.set(
        xlabel="offset $k$",
        ylabel="position $pos$",
        title=r"$\log_{10}(1 + \max|M_k\,\mathrm{PE}(pos) - \mathrm{PE}(pos+k)| / \epsilon)$",
    )
    fig.colorbar(im, ax=a)
    n = min(16, d_model)
    Mk = torch.block_diag(*offset_blocks(5, rope_frequencies(d_model, BASE)[: n // 2]))  # the top-left corner of M_5
    fig.colorbar(b.imshow(Mk.numpy(), cmap="RdBu", vmin=-1, vmax=1), ax=b)
    b.set(title=f"$M_k$ for $k = 5$, first {n} of {d_model} dims", xlabel="input dim", ylabel="output dim")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

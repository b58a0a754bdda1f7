"""Exercise 13.11: attention by hand for $Q = K = V = I_2$, $d_k = 2$.

The scores are $S = QK^\\top/\\sqrt{d_k} = I_2/\\sqrt2$: each query matches its own key with score
$1/\\sqrt2$ and the other with $0$. A row-wise softmax of $(1/\\sqrt2, 0)$ is
$(e^{1/\\sqrt2}, 1)/(e^{1/\\sqrt2} + 1)$, and $V = I$ copies the weights to the output:

$$\\mathrm{Attention}(I, I, I) = \\frac{1}{e^{1/\\sqrt2} + 1}
\\begin{pmatrix} e^{1/\\sqrt2} & 1 \\\\ 1 & e^{1/\\sqrt2} \\end{pmatrix}
\\approx \\begin{pmatrix} 0.6698 & 0.3302 \\\\ 0.3302 & 0.6698 \\end{pmatrix},$$

the diagonal being the logistic $\\sigma(1/\\sqrt2)$. For the command line's sizes, $n$ tokens with
$Q = K = [I_n \\mid 0] \\in \\mathbb{R}^{n \\times d_k}$ ($I_n$ padded with zero columns to the key
width $d_k \\ge n$) and $V = I_n$, the same steps give $e^{1/\\sqrt{d_k}}/(e^{1/\\sqrt{d_k}} + n - 1)$ on
the diagonal and $1/(e^{1/\\sqrt{d_k}} + n - 1)$ off it.

The check runs ``torch.nn.functional.scaled_dot_product_attention`` and the project's
``models.attention`` on those matrices in float64 (and float32) and compares every entry with the
exact value, within a rounding bound stated before measuring. The same comparison rejects the answer
without the $1/\\sqrt{d_k}$ scaling ($e/(e+1) \\approx 0.7311$), with $1/d_k$ instead, and with a causal mask.
"""

from __future__ import annotations

import sympy as sp
import torch
import torch.nn.functional as F

from derive.engine import Derivation
from models.attention import scaled_dot_product_attention as by_hand
from models.utils.device import describe, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import Option, with_options

NUMBER = "13.11"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"For $Q = K = V = I_2$, $d_k = 2$: "
    r"attention $= [[e^{1/\sqrt{2}}, 1], [1, e^{1/\sqrt{2}}]] / (e^{1/\sqrt{2}} + 1)$."
)
DEFAULT_SAMPLES = None  # nothing random: one exact evaluation per size
MAX_N, MAX_DK = 512, 4096  # at both, n x n and n x d_k float64 matrices of 2 and 16 MB, 1.5 s on 2 CPU cores
_WHY = "the exercise's range; at n = 512, d_k = 4,096 the check takes 1.5 s and 16 MB"
OPTIONS = [
    Option("--n", int, 2, "tokens n: Q = K = [I_n | 0], V = I_n", lo=2, hi=MAX_N, why=_WHY),
    Option("--dk", int, 2, "key width d_k >= n", lo=2, hi=MAX_DK, why=_WHY),
]


def validate(o) -> None:
    """The key width must hold the queries' identity block: d_k >= n."""
    if o.dk < o.n:
        raise ValueError(f"dk: must be at least n = {o.n} (Q holds I_n), got {o.dk}")


def softmax_rows(s: sp.Matrix) -> sp.Matrix:
    """The row-wise softmax of a sympy matrix, exact: entry (r, c) is e^(s_rc) / sum_c' e^(s_rc')."""
    e = s.applyfunc(sp.exp)
    return sp.Matrix(s.rows, s.cols, lambda r, c: e[r, c] / sum(e.row(r)))


def weights(n, dk, scale=None):
    """(diagonal, off-diagonal) of softmax(I_n * scale); scale 1/sqrt(dk) by default; exact."""
    z = sp.exp(1 / sp.sqrt(dk) if scale is None else scale)
    return z / (z + n - 1), 1 / (z + n - 1)


def derivation() -> Derivation:
    """Scores, row softmax and output for Q = K = V = I_2, the logistic diagonal, and any n and d_k."""
    I2, r2 = sp.eye(2), sp.sqrt(2)
    z, (a, b) = sp.exp(1 / r2), weights(2, 2)
    d = Derivation(
        r"Exercise 13.11: $\mathrm{softmax}(Q K^T/\sqrt{d_k})\,V$ for $Q = K = V = I_2$, $d_k = 2$",
        assumptions=[
            "softmax acts on each row of the scores",
            r"general sizes: $Q = K = [I_n \mid 0]$, $V = I_n$, $d_k \ge n$",
        ],
    )
    S = sp.MatrixSymbol("S", 2, 2)
    d.eq(S, I2 / r2, r"scores: $Q K^T/\sqrt{d_k} = I/\sqrt{2}$", strategy="exact", computed=I2 * I2.T / r2)
    A = softmax_rows(I2 / r2)
    d.eq(sp.MatrixSymbol("A", 2, 2), sp.Matrix([[z, 1], [1, z]]) / (z + 1), "row softmax", "cancel", computed=A)
    d.eq(sp.MatrixSymbol("O", 2, 2), sp.Matrix([[a, b], [b, a]]), "output $A V = A$, as $V = I$", computed=A * I2)
    d.eq(a, 1 / (1 + sp.exp(-1 / r2)), r"the diagonal is the logistic $\sigma(1/\sqrt{2})$", strategy="simplify")
    d.eq(a + b, 1, "each row sums to 1", strategy="cancel")
    lo, hi = sp.Float("0.66976", 5), sp.Float("0.66977", 5)
    d.holds(a, ">", lo, "diagonal, decimals")
    d.holds(a, "<", hi, "diagonal, decimals; so the off-diagonal $1 - a$ lies in $(0.33023, 0.33024)$")
    d.holds(weights(2, 2, 1)[0], ">", sp.Float("0.731", 3), r"without $1/\sqrt{d_k}$ the diagonal would be $e/(e + 1)$")
    dk = sp.Symbol("d_k", positive=True)
    zk, (ak, bk) = sp.exp(1 / sp.sqrt(dk)), weights(3, dk)
    A3 = softmax_rows(sp.eye(3) / sp.sqrt(dk))
    d.eq(
        sp.MatrixSymbol("A_3", 3, 3),
        ak * sp.eye(3) + bk * (sp.ones(3, 3) - sp.eye(3)),
        "$n = 3$, any $d_k$",
        computed=A3,
    )
    n = sp.Symbol("n", positive=True, integer=True)
    d.eq(
        zk / (zk + n - 1) + (n - 1) / (zk + n - 1),
        1,
        r"any $n$: rows $e^{1/\sqrt{d_k}}, 1, \dots, 1$ sum to 1",
        "cancel",
    )
    return d


def exact_matrix(n: int, dk: int, scale=None, causal=False) -> torch.Tensor:
    """The weights as float64: each entry evaluated to 30 digits and rounded once. Causal (a control
    only): row i sees keys <= i, weights z/(z + i) and 1/(z + i), computed in float64."""
    if causal:
        z, e = float(sp.N(sp.exp(1 / sp.sqrt(dk)), 30)), torch.eye(n, dtype=torch.float64)
        return (e.new_ones(n, n).tril() + (z - 1) * e) / (z + torch.arange(n, dtype=torch.float64))[:, None]
    a, b = (float(sp.N(w, 30)) for w in weights(n, dk, scale))
    return torch.full((n, n), b, dtype=torch.float64).fill_diagonal_(a)


def tolerance(n: int, dk: int, dtype) -> float:
    """Each weight w = exp(s_ij)/sum_j exp(s_ij) carries relative error at most (n + 6) eps: n - 1
    roundings in the sum, the scale 1/sqrt(d_k) (|s| <= 1), exp, max-subtraction, division, the
    reference; doubled for safety and scaled by the largest weight (the diagonal)."""
    return 2 * (n + 6) * torch.finfo(dtype).eps * float(sp.N(weights(n, dk)[0]))


@with_options
def check(o) -> CheckResult:
    """Both attention implementations on Q = K = [I_n | 0], V = I_n, in float64 and float32, against the
    exact weights; controls: no scaling, 1/d_k, a causal mask."""
    n, dk, dev = o.n, o.dk, pick_device(o.device)
    res = CheckResult(f"attention of Q = K = [I_{n} | 0] (d_k = {dk}), V = I_{n}", describe(dev), o.samples, o.seed)
    want = exact_matrix(n, dk).to(dev)
    for name, val in zip(("diagonal", "off-diagonal"), weights(n, dk)):
        res.table.append({"entry": name, "exact": sp.sstr(val), "value": float(sp.N(val, 30))})
    impls = {"F.scaled_dot_product_attention": F.scaled_dot_product_attention, "models.attention": by_hand}
    out64 = {}
    for dtype in (torch.float64, torch.float32):
        q, v = torch.eye(n, dk, dtype=dtype, device=dev), torch.eye(n, dtype=dtype, device=dev)  # [I_n | 0], I_n
        for impl, fn in impls.items():
            got = fn(q, q, v).double()
            out64.setdefault(impl, got)
            err = float((got - want).abs().max())
            res.claims.append(Bound.of(f"[{dtype}] max |{impl} - exact|", err, 0.0, tolerance(n, dk, dtype)))
    tol = tolerance(n, dk, torch.float64)
    wrong = {
        "no 1/sqrt(d_k) scaling": exact_matrix(n, dk, scale=1),
        "1/d_k instead of 1/sqrt(d_k)": exact_matrix(n, dk, scale=sp.Rational(1, dk)),
        "a causal mask": exact_matrix(n, dk, causal=True),
    }
    for impl, got in out64.items():
        for name, w in wrong.items():
            err = float((got - w.to(dev)).abs().max())
            res.controls.append(Bound.of(f"[float64] max |{impl} - answer with {name}|", err, 0.0, tol))
    res.notes.append(
        f"exact values evaluated to 30 digits, then rounded to float64; tolerances {tol:.3g} (float64), "
        f"{tolerance(n, dk, torch.float32):.3g} (float32) from tolerance(), stated before measuring"
    )
    return res


def figure(res: CheckResult):
    """The exact attention weights the check compared with, and the unscaled ones for contrast."""
    n, dk = res.settings.n, res.settings.dk
    fig, axes = plotting.subplots(2, width=9, height=4)
    fig.suptitle(f"Exercise 13.11: attention weights for $Q = K = [I_{{{n}}} \\mid 0]$, $V = I_{{{n}}}$, $d_k = {dk}$")
    panels = {
        f"$\\mathrm{{softmax}}(Q K^T/\\sqrt{{{dk}}})$": exact_matrix(n, dk),
        "without the scaling": exact_matrix(n, dk, 1),
    }
    for ax, (title, w) in zip(axes, panels.items()):
        im = ax.imshow(w.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set(title=title, xlabel="key", ylabel="query")
        if n <= 8:
            ax.set(xticks=range(n), yticks=range(n))
            for r, c in ((r, c) for r in range(n) for c in range(n)):
                ax.text(c, r, f"{w[r, c]:.4f}", ha="center", va="center", color="w" if w[r, c] < 0.5 else "k")
    fig.colorbar(im, ax=axes)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

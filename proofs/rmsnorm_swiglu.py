r"""Exercise 13.22: RMSNorm and SwiGLU in place of LayerNorm and the GELU MLP; does it train, and faster?

RMSNorm (Zhang & Sennrich 2019) drops LayerNorm's centring: $\mathrm{RMSNorm}(x) = x /
\sqrt{\overline{x^2} + \epsilon} \odot \gamma$ against $\mathrm{LN}(x) = (x - \bar x) /
\sqrt{\overline{x^2} - \bar x^2 + \epsilon} \odot \gamma + \beta$, so the two agree exactly on
zero-mean inputs with $\beta = 0$, and RMSNorm saves the mean and the bias. SwiGLU (Shazeer 2020)
replaces $\mathrm{GELU}(x W_1) W_2$ by $(\mathrm{silu}(x W) \odot x V) W_2$: three $d \times d_{ff}$
matrices, so $d_{ff} = 8d/3$ keeps the $8 d^2$ weights of a $4d$ GELU MLP (the GPT rounds $d_{ff}$ up
to a multiple of 32).

The derivation proves both identities (RMSNorm = LayerNorm on a zero-mean 4-vector, and
$3 \cdot d \cdot 8d/3 = 2 \cdot d \cdot 4d$) and the loss $\log V$ of a model that learned nothing. The
check measures the GPT's own modules (``models.gpt``) in float64: RMSNorm against its formula and
against LayerNorm on zero-mean inputs (control: on inputs with a mean they differ), and the weights of
the two MLPs at $d = 96$, where $8d/3 = 256$ needs no rounding: SwiGLU's equal GELU's exactly
(control: SwiGLU at $d_{ff} = 4d$ has 1.5 times as many). It then trains both variants for a few
hundred steps on the same batches (``proofs.kit.trained``): each must get below the loss of a model
that knows only the character frequencies (controls: at that loss; still at $\log V$).
"Does it converge faster" is the full run's question: its saved result
(``docs/experiments/norm_ffn``: 3 seeds of 5000 steps; RMSNorm + SwiGLU ends $0.058 \pm 0.006$ lower and
reaches the mid-run loss 500-750 steps sooner in every seed) is read and drawn beside the small run.
"""

from __future__ import annotations

import sympy as sp

from derive.engine import Derivation
from derive.losses import uniform_loss_steps
from numeric.check import Bound, CheckResult
from proofs.kit import trained
from proofs.kit.cli import main_for
from proofs.kit.options import with_options
from proofs.kit.trained import DEFAULT_SAMPLES, MAX_SAMPLES, OPTIONS, SAMPLES_WHY, figure, validate  # noqa: F401

NUMBER = "13.22"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"RMSNorm equals LayerNorm on zero-mean inputs, SwiGLU at $d_\mathrm{ff} = 8d/3$ has the GELU MLP's weights, "
    "and both train."
)
TOL = 1e-12  # float64 agreement of two normalisations of O(1) numbers


def derivation() -> Derivation:
    """RMSNorm = LayerNorm on a zero-mean vector, SwiGLU's weights at 8d/3, and log V."""
    x1, x2, x3 = sp.symbols("x_1 x_2 x_3", real=True)
    d = sp.Symbol("d", positive=True)
    der = Derivation(
        "Exercise 13.22: RMSNorm and SwiGLU",
        assumptions=[
            r"$x \in \mathbb{R}^4$ with mean 0 ($x_4 = -x_1 - x_2 - x_3$), not all zero; "
            r"$\epsilon = 0$, $\gamma = 1$, $\beta = 0$"
        ],
    )
    x = [x1, x2, x3, -x1 - x2 - x3]
    mean, sq = sum(x) / 4, sum(v**2 for v in x) / 4
    der.eq(sp.Symbol("mean(x)"), 0, "the input is centred", "expand", computed=mean)
    ln, rms = (x1 - mean) / sp.sqrt(sq - mean**2), x1 / sp.sqrt(sq)
    der.eq(
        sp.Symbol("LN(x)_1"),
        rms,
        "LayerNorm subtracts a zero mean and divides by the same second moment",
        "simplify",
        computed=ln,
    )
    der.eq(
        sp.Symbol("N_GELU(d_ff=4d)"),
        8 * d**2,
        r"GELU MLP: $W_1$ ($d \times 4d$) and $W_2$ ($4d \times d$)",
        "expand",
        computed=2 * d * (4 * d),
    )
    der.eq(
        sp.Symbol("N_SwiGLU(d_ff=8d/3)"),
        8 * d**2,
        r"SwiGLU: $W, V$ ($d \times d_\mathrm{ff}$) and $W_2$ ($d_\mathrm{ff} \times d$) at $d_\mathrm{ff} = 8d/3$",
        "expand",
        computed=3 * d * (sp.Rational(8, 3) * d),
    )
    uniform_loss_steps(der, 65)
    return der


@with_options
def check(o) -> CheckResult:
    """The GPT's RMSNorm and SwiGLU MLP measured in float64, then the small training run of both."""
    import torch

    from models.gpt import MLP, GPTConfig, RMSNorm, swiglu_hidden

    res = trained.check_variants(o, "norm_ffn", f"Exercise {NUMBER}: LayerNorm + GELU vs RMSNorm + SwiGLU")
    d = trained.SMALL["n_embd"]
    g = torch.Generator().manual_seed(o.seed)
    x = torch.randn(64, d, generator=g, dtype=torch.float64) + 0.5  # (64, d), mean 0.5 per row on average
    centred = x - x.mean(-1, keepdim=True)
    rms, ln = RMSNorm(d, eps=0.0).double(), torch.nn.LayerNorm(d, eps=0.0, elementwise_affine=False).double()
    with torch.no_grad():
        formula = x / x.pow(2).mean(-1, keepdim=True).sqrt()
        res.claims.append(Bound.of("RMSNorm(x) = x / sqrt(mean x^2), max |diff|", _gap(rms(x), formula), 0.0, TOL))
        res.claims.append(Bound.of("RMSNorm = LayerNorm on zero-mean rows", _gap(rms(centred), ln(centred)), 0.0, TOL))
        res.controls.append(Bound.of("RMSNorm = LayerNorm on rows with a mean", _gap(rms(x), ln(x)), 0.0, TOL))

    def weights(width: int, mlp: str, hidden: int | None = None) -> int:  # the GPT's own MLP, no biases
        cfg = GPTConfig(n_embd=width, n_head=4, vocab_size=65, mlp=mlp, mlp_hidden=hidden, bias=False)
        return sum(p.numel() for p in MLP(cfg).parameters())

    w = 96  # 8w/3 = 256, a multiple of 32: models.gpt.swiglu_hidden does not round it
    gelu = weights(w, "gelu")
    res.claims.append(
        Bound.of(f"d = {w}: SwiGLU MLP weights (d_ff = 8d/3) = GELU MLP's (d_ff = 4d)", weights(w, "swiglu"), gelu, 0)
    )
    res.controls.append(
        Bound.of(f"d = {w}: SwiGLU MLP at d_ff = 4d = GELU MLP's", weights(w, "swiglu", 4 * w), gelu, 0)
    )
    res.notes.append(
        f"at the small run's d = {d}, d_ff = {swiglu_hidden(d)} (8d/3 = {8 * d / 3:.1f} rounded up to a multiple of "
        f"32): SwiGLU's MLP has {weights(d, 'swiglu') / weights(d, 'gelu'):.4g} times GELU's weights"
    )
    return res


def _gap(a, b) -> float:
    return float((a - b).abs().max())


if __name__ == "__main__":
    raise SystemExit(main())

r"""Exercise 13.21: learned position embeddings in place of the sinusoidal encoding, trained on tiny Shakespeare.

The sinusoidal encoding (Vaswani et al. 2017, §3.5) is a fixed table,
$PE(pos, 2i) = \sin(pos/10000^{2i/d})$, $PE(pos, 2i+1) = \cos(pos/10000^{2i/d})$, with no parameters
and a norm that does not depend on the position: each of the $d/2$ pairs contributes
$\sin^2 + \cos^2 = 1$, so $\lVert PE(pos) \rVert^2 = d/2$. Learned embeddings (GPT-2) replace it by
a trained $T \times d$ table: $T d$ more parameters, and no built-in structure. The exercise trains
both for 5000 steps and compares their validation loss.

The derivation proves the constant norm, the $T d$ extra parameters and the loss $\log V$ a model
that learned nothing stays at. The check builds both GPTs (``models.gpt``, ``pos="sinusoidal"`` and
``pos="learned"``) and counts their parameters exactly (control: $V d$ extra), measures the norm of
the model's sinusoidal table (control: $d$), and trains both variants for a few hundred steps on
the same batches (``proofs.kit.trained``): each must get below the loss of a model that knows only the
character frequencies, by more than $z$ standard errors (controls: at that loss; still at $\log V$).
Which one ends lower is the full run's question: its saved
result (``docs/experiments/positional``: 3 seeds of 5000 steps; the two end level, paired
difference $-0.003 \pm 0.006$) is read and drawn beside the small run.
"""

from __future__ import annotations

import sympy as sp

from derive import counts
from derive.engine import Derivation
from derive.losses import uniform_loss_steps
from numeric.check import Bound, CheckResult
from proofs.kit import trained
from proofs.kit.cli import main_for
from proofs.kit.options import with_options
from proofs.kit.trained import DEFAULT_SAMPLES, MAX_SAMPLES, OPTIONS, SAMPLES_WHY, figure, validate  # noqa: F401

NUMBER = "13.21"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = (
    r"Sinusoidal positions have no parameters and $\|\mathrm{PE}(pos)\|^2 = d/2$; learned ones add $T \times d$; "
    "both GPTs learn context."
)


def derivation() -> Derivation:
    """||PE(pos)||^2 = d/2 for every pos, the T d parameters of a learned table, and log V."""
    pos, w = sp.symbols("pos omega_i", real=True)
    i, half = sp.symbols("i d_2", positive=True, integer=True)  # d_2 = d/2 pairs
    der = Derivation(
        "Exercise 13.21: sinusoidal and learned positions",
        assumptions=[
            r"$d = 2 d_2$ even; pair $i$ holds $\sin(\omega_i pos)$ and $\cos(\omega_i pos)$",
            "$T$ positions, $V$ tokens",
        ],
    )
    der.eq(
        sp.Symbol("pair_i"),
        1,
        r"one pair's squared norm: $\sin^2 + \cos^2$",
        "trigsimp",
        computed=sp.sin(w * pos) ** 2 + sp.cos(w * pos) ** 2,
    )
    der.eq(
        sp.Symbol("|PE(pos)|^2"),
        half,
        "sum over the $d/2$ pairs: $d/2$, the same at every position",
        "simplify",
        computed=sp.Sum(1, (i, 1, half)).doit(),
    )
    learned = counts.embedding_params(pos="learned") - counts.embedding_params(pos="sinusoidal")
    der.eq(
        sp.Symbol("N_learned") - sp.Symbol("N_sinusoidal"),
        counts.n_ctx * counts.d,
        r"the learned $T \times d$ table",
        "expand",
        computed=learned,
    )
    uniform_loss_steps(der, 65)
    return der


@with_options
def check(o) -> CheckResult:
    """The exact counts and norms of the two GPTs, then the small training run of both."""
    import torch

    from models.gpt import GPT, GPTConfig

    res = trained.check_variants(o, "positional", f"Exercise {NUMBER}: sinusoidal vs learned positions")
    cfg = {**trained.SMALL, "vocab_size": 65}
    sin, lrn = (GPT(GPTConfig(**cfg, pos=p)) for p in ("sinusoidal", "learned"))
    extra, T, d, V = lrn.num_params() - sin.num_params(), cfg["block_size"], cfg["n_embd"], cfg["vocab_size"]
    res.claims.append(Bound.of(f"learned - sinusoidal parameters = T d = {T} x {d}", extra, T * d, 0))
    res.controls.append(Bound.of(f"learned - sinusoidal parameters = V d = {V} x {d}", extra, V * d, 0))
    norms = sin.pe.double().pow(2).sum(-1)  # (T,): the model's own float32 table
    worst = float((norms - d / 2).abs().max())
    tol = 4 * d * float(torch.finfo(torch.float32).eps)  # d rounded squares of float32 numbers in [-1, 1]
    res.claims.append(Bound.of(f"max over {T} positions of | ||PE||^2 - d/2 |", worst, 0.0, tol))
    res.controls.append(
        Bound.of(
            "max over positions of | ||PE||^2 - d | (one unit per component)", float((norms - d).abs().max()), 0.0, tol
        )
    )
    return res


if __name__ == "__main__":
    raise SystemExit(main())

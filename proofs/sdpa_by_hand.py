"""Exercise 13.19: scaled dot-product attention in fewer than ten lines equals PyTorch's.

``models.attention.scaled_dot_product_attention`` computes
$\\mathrm{softmax}(QK^\\top/\\sqrt{d_k} + M)V$ in eight lines. A boolean mask sets the scores of
forbidden keys to $-\\infty$, and softmax then renormalises over the allowed keys alone:
$$\\lim_{m\\to-\\infty} \\frac{e^{s_1}}{e^{s_1} + e^{s_2} + e^{s_3 + m}} = \\frac{e^{s_1}}{e^{s_1} + e^{s_2}},$$
which the derivation proves, with the facts that an all-zero additive mask changes nothing and
that softmax is unchanged by a shift of all scores (why implementations may subtract the max).

The check compares it with ``torch.nn.functional.scaled_dot_product_attention`` over shapes with
extra batch dimensions, unequal query/key lengths (more keys than queries, and fewer) and value
widths, boolean, additive and causal masks, in float32 and float64: the largest absolute difference
must lie within a tolerance set in advance, 64 machine epsilons of the dtype times the largest |output|
(a softmax-weighted sum of d_k products, each rounded once); a NaN anywhere counts as an infinite
difference. Every boolean and additive case has fully masked query rows (a row of False, or a row of
-inf), for which torch returns zeros (torch 2.13) and a plain softmax gives 0/0 = NaN. Negative
controls: the same comparison rejects the formula without the 1/sqrt(d_k) scaling, the mask turned
the wrong way (query i sees keys j >= i, the future), and a plain softmax without the guard for
fully masked rows (the implementation before that guard).
"""

from __future__ import annotations

import inspect
import math

import sympy as sp
import torch
import torch.nn.functional as F

from derive.engine import Derivation
from models.attention import scaled_dot_product_attention as by_hand
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import with_options

NUMBER = "13.19"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = "Scaled dot-product attention written in under 10 lines matches torch's `scaled_dot_product_attention`."
DEFAULT_SAMPLES = 3  # random draws per (shape, mask, dtype) case
MAX_SAMPLES = 1000  # measured on 2 CPU cores: 2.6 s at 300 idle, 21 s at 48 when busy: 9 ms to 0.4 s per draw
SAMPLES_WHY = "the check's time grows linearly: 9 ms (idle) to 0.4 s (busy) per sample on 2 CPU cores: up to 7 minutes"
# (batch dims, L queries, S keys, d_k, d_v)
SHAPES = [((2,), 5, 5, 8, 8), ((2, 3), 4, 7, 16, 5), ((1, 2, 2), 6, 3, 4, 12), ((), 9, 9, 32, 32)]
MASKS = ("none", "bool", "additive", "causal")


def derivation() -> Derivation:
    """A key masked to -oo drops out of the softmax; a zero mask and a common shift change nothing."""
    s1, s2, s3, c = sp.symbols("s_1 s_2 s_3 c", real=True)
    m = sp.Symbol("m", negative=True)
    e = sp.exp
    d = Derivation(
        "Exercise 13.19: masking and shifting scores before the softmax",
        [r"scores $s_i$ real; a mask adds $m \to -\infty$ to forbidden scores and 0 to the others"],
    )
    d.limit(
        e(s1) / (e(s1) + e(s2) + e(s3 + m)),
        m,
        -sp.oo,
        e(s1) / (e(s1) + e(s2)),
        r"a key whose score tends to $-\infty$ drops out: softmax renormalises over the allowed keys",
    )
    d.eq(
        e(s1 + 0) / (e(s1 + 0) + e(s2 + 0)),
        e(s1) / (e(s1) + e(s2)),
        "an all-zero additive mask changes nothing",
        "exact",
    )
    d.eq(
        e(s1 + c) / (e(s1 + c) + e(s2 + c) + e(s3 + c)),
        e(s1) / (e(s1) + e(s2) + e(s3)),
        "softmax is unchanged by a common shift $c$ (so the max may be subtracted)",
        "simplify",
    )
    return d


def line_count() -> int:
    """Lines of the hand-written function's body, its docstring, comments and blank lines excluded."""
    src = inspect.getsource(by_hand).splitlines()[1:]
    src = src[len(by_hand.__doc__.splitlines()) :] if by_hand.__doc__ else src  # the docstring opens the body
    return sum(1 for ln in src if ln.strip() and not ln.strip().startswith(("#", '"""')))


def _dead_rows(batch, L, gen, dev):
    """Queries to mask out entirely: each with probability 1/4, and always the middle one; never
    query 0 (it keeps key 0, see _case), so that no case is all zeros, which every control would match."""
    dead = torch.rand(*batch, L, 1, generator=gen, device=dev) < 0.25
    dead[..., L // 2, :] = L > 1
    dead[..., 0, :] = False
    return dead


def _case(shape, mask, dtype, gen, dev):
    batch, L, S, dk, dv = shape
    rnd = lambda *sz: torch.randn(*sz, generator=gen, device=dev, dtype=torch.float64).to(dtype)  # noqa: E731
    q, k, v = rnd(*batch, L, dk), rnd(*batch, S, dk), rnd(*batch, S, dv)
    kw = {}
    if mask == "bool":
        keep = torch.rand(*batch, L, S, generator=gen, device=dev) < 0.7
        keep[..., 0, 0] = True
        kw["attn_mask"] = keep & ~_dead_rows(batch, L, gen, dev)  # some queries keep no key at all
    elif mask == "additive":
        off = (torch.rand(L, S, generator=gen, device=dev) < 0.3) | _dead_rows((), L, gen, dev)
        off[0, 0] = False
        kw["attn_mask"] = rnd(L, S).masked_fill(off, float("-inf"))  # broadcasts over the batch dims
    elif mask == "causal":
        kw["is_causal"] = True  # top-left aligned, also for L != S
    return q, k, v, kw


def _fully_masked(q, k, kw) -> int:
    """How many query rows of the case have every key masked."""
    m = kw.get("attn_mask")
    if m is None:
        return 0
    off = ~m if m.dtype == torch.bool else m == float("-inf")
    return int(off.expand(*q.shape[:-1], k.size(-2)).all(dim=-1).sum())


def _unguarded(q, k, v, attn_mask=None, is_causal=False):
    """Control: the same formula with a plain softmax, which is 0/0 = NaN on a fully masked row."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if is_causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril(), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return s.softmax(dim=-1) @ v


def _miss(out, ref) -> float:
    """max |out - ref|, with a NaN anywhere counted as an infinite miss."""
    d = (out - ref).abs()
    return math.inf if bool(d.isnan().any()) else d.max().item()


@with_options
def check(o) -> CheckResult:
    """Hand-written attention against torch's over every (shape, mask, dtype) case, ``samples`` draws each;
    controls: no 1/sqrt(d_k), the mask turned to the future, no guard for fully masked rows."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples * len(SHAPES) * len(MASKS) * 2, o.seed)
    n = line_count()
    res.claims.append(Bound.of("lines in the hand-written body lie in [0, 9], i.e. fewer than 10", n, 4.5, 4.5))
    controls = ("unscaled", "anti-causal", "no guard")
    for dtype in (torch.float32, torch.float64):
        worst = {"claim": (0.0, 0.0)}  # the largest miss of the claim; the smallest of each control
        dead_rows = 0
        for shape in SHAPES:
            for mask in MASKS:
                for _ in range(o.samples):
                    q, k, v, kw = _case(shape, mask, dtype, gen, dev)
                    ref = F.scaled_dot_product_attention(q, k, v, **kw)
                    tol = 64 * torch.finfo(dtype).eps * max(1.0, ref.abs().max().item())
                    dead = _fully_masked(q, k, kw)
                    dead_rows += dead
                    diffs = {"claim": _miss(by_hand(q, k, v, **kw), ref)}
                    diffs["unscaled"] = _miss(by_hand(q * math.sqrt(q.size(-1)), k, v, **kw), ref)
                    if mask == "causal" and shape[1] > 1:
                        future = torch.ones(shape[1], shape[2], dtype=torch.bool, device=dev).triu()
                        diffs["anti-causal"] = _miss(by_hand(q, k, v, attn_mask=future), ref)
                    if dead:  # the guard only matters where a whole row is masked
                        diffs["no guard"] = _miss(_unguarded(q, k, v, **kw), ref)
                    worst["claim"] = max(worst["claim"], (diffs.pop("claim"), tol))
                    for key, dv in diffs.items():  # the first of equal smallest misses
                        worst[key] = min(worst.get(key, (dv, tol)), (dv, tol), key=lambda t: t[0])
        (miss, tol), name = worst["claim"], str(dtype).replace("torch.", "")
        res.table.append({"dtype": name, "max |hand - torch|": miss, "tolerance": tol, "fully masked rows": dead_rows})
        res.claims.append(Bound.of(f"{name}: max |hand - torch| over all cases", miss, 0, tol))
        for key in controls:
            dv, tol = worst.get(key, (0.0, 0.0))
            res.controls.append(Bound.of(f"{name}: {key} formula matches torch (smallest miss)", dv, 0, tol))
    res.notes.append(f"function body: {n} lines; cases: shapes {SHAPES} x masks {MASKS} x {o.samples} draws")
    res.notes.append("fully masked rows: torch gives zeros there; a NaN counts as an infinite miss")
    return res


def figure(res: CheckResult):
    """The largest difference between the hand-written attention and torch's, per dtype, beside its tolerance."""
    fig = plotting.errors_against_tolerances(
        res,
        ("dtype",),
        "max |hand - torch|",
        "tolerance",
        f"Exercise {NUMBER}: by hand vs F.scaled_dot_product_attention",
    )
    ax = fig.axes[0]
    ax.containers[0].set_label(r"measured $\max|\mathrm{hand} - \mathrm{torch}|$")  # the table's column, typeset
    ax.legend(fontsize=8)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

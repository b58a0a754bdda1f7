"""Exercise 13.19: scaled dot-product attention in fewer than ten lines equals PyTorch's.

``models.attention.scaled_dot_product_attention`` computes
$\\mathrm{softmax}(QK^\\top/\\sqrt{d_k} + M)V$ in seven lines. A boolean mask sets the scores of
forbidden keys to $-\\infty$, and softmax then renormalises over the allowed keys alone:
$$\\lim_{m\\to-\\infty} \\frac{e^{s_1}}{e^{s_1} + e^{s_2} + e^{s_3 + m}} = \\frac{e^{s_1}}{e^{s_1} + e^{s_2}},$$
which the derivation proves, with the facts that an all-zero additive mask changes nothing and
that softmax is unchanged by a shift of all scores (why implementations may subtract the max).

The check compares it with ``torch.nn.functional.scaled_dot_product_attention`` over shapes with
extra batch dimensions, unequal query/key lengths and value widths, boolean, additive and causal
masks, in float32 and float64: the largest absolute difference must lie within a tolerance set in
advance, 64 machine epsilons of the dtype times the largest |output| (a softmax-weighted sum of d_k
products, each rounded once). Negative controls: the same comparison rejects the formula without the
1/sqrt(d_k) scaling and the mask turned the wrong way (query i sees keys j >= i, the future).
"""

from __future__ import annotations

import inspect
import math
import sys

import sympy as sp
import torch
import torch.nn.functional as F

from derive.engine import Derivation
from models.attention import scaled_dot_product_attention as by_hand
from numeric.check import Bound, CheckResult
from numeric.device import describe, generator, pick_device

NUMBER = "13.19"
CLAIM = "Scaled dot-product attention written in under 10 lines matches torch's scaled_dot_product_attention."
DEFAULT_SAMPLES = 3  # random draws per (shape, mask, dtype) case
# (batch dims, L queries, S keys, d_k, d_v)
SHAPES = [((2,), 5, 5, 8, 8), ((2, 3), 4, 7, 16, 5), ((1, 2, 2), 6, 3, 4, 12), ((), 9, 9, 32, 32)]
MASKS = ("none", "bool", "additive", "causal")


def derivation() -> Derivation:
    s1, s2, s3, c = sp.symbols("s_1 s_2 s_3 c", real=True)
    m = sp.Symbol("m", negative=True)
    e = sp.exp
    d = Derivation(
        "Exercise 13.19: masking and shifting scores before the softmax",
        ["scores s_i real; a mask adds m -> -oo to forbidden scores and 0 to the others"],
    )
    d.limit(
        e(s1) / (e(s1) + e(s2) + e(s3 + m)),
        m,
        -sp.oo,
        e(s1) / (e(s1) + e(s2)),
        "a key whose score tends to -oo drops out: softmax renormalises over the allowed keys",
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
        "softmax is unchanged by a common shift c (so the max may be subtracted)",
        "simplify",
    )
    return d


def line_count() -> int:
    """Lines of the function body, docstring and blank lines excluded."""
    src = inspect.getsource(by_hand).splitlines()[1:]
    return sum(1 for ln in src if ln.strip() and not ln.strip().startswith(("#", '"""')))


def _case(shape, mask, dtype, gen, dev):
    batch, L, S, dk, dv = shape
    if mask == "causal":
        S = L
    rnd = lambda *sz: torch.randn(*sz, generator=gen, device=dev, dtype=torch.float64).to(dtype)  # noqa: E731
    q, k, v = rnd(*batch, L, dk), rnd(*batch, S, dk), rnd(*batch, S, dv)
    kw = {}
    if mask == "bool":
        keep = torch.rand(*batch, L, S, generator=gen, device=dev) < 0.7
        keep[..., 0] = True  # every query keeps a key (a fully masked row is NaN in both)
        kw["attn_mask"] = keep
    elif mask == "additive":
        kw["attn_mask"] = rnd(L, S)  # broadcasts over the batch dims
    elif mask == "causal":
        kw["is_causal"] = True
    return q, k, v, kw


def check(device=None, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> CheckResult:
    if samples <= 0:
        raise ValueError(f"samples: must be positive, got {samples}")
    dev = pick_device(device)
    gen = generator(dev, seed)
    res = CheckResult(CLAIM, describe(dev), samples * len(SHAPES) * len(MASKS) * 2, seed)
    n = line_count()
    res.claims.append(Bound.of("lines in the hand-written body lie in [0, 9], i.e. fewer than 10", n, 4.5, 4.5))
    for dtype in (torch.float32, torch.float64):
        worst = {"claim": (0.0, 0.0), "unscaled": (0.0, 0.0), "anti-causal": (0.0, 0.0)}
        for shape in SHAPES:
            for mask in MASKS:
                for _ in range(samples):
                    q, k, v, kw = _case(shape, mask, dtype, gen, dev)
                    ref = F.scaled_dot_product_attention(q, k, v, **kw)
                    tol = 64 * torch.finfo(dtype).eps * max(1.0, ref.abs().max().item())
                    diffs = {"claim": (by_hand(q, k, v, **kw) - ref).abs().max().item()}
                    diffs["unscaled"] = (by_hand(q * math.sqrt(q.size(-1)), k, v, **kw) - ref).abs().max().item()
                    if mask == "causal" and shape[1] > 1:
                        future = torch.ones(shape[1], shape[1], dtype=torch.bool, device=dev).triu()
                        diffs["anti-causal"] = (by_hand(q, k, v, attn_mask=future) - ref).abs().max().item()
                    for key, dv in diffs.items():
                        if key == "claim":
                            worst[key] = max(worst[key], (dv, tol))
                        else:  # controls: the smallest miss is the one that must still be rejected
                            prev = worst[key]
                            worst[key] = (dv, tol) if prev == (0.0, 0.0) or dv < prev[0] else prev
        name = str(dtype).replace("torch.", "")
        res.table.append({"dtype": name, "max |hand - torch|": worst["claim"][0], "tolerance": worst["claim"][1]})
        res.claims.append(
            Bound.of(f"{name}: max |hand - torch| over all cases", worst["claim"][0], 0, worst["claim"][1])
        )
        for key in ("unscaled", "anti-causal"):
            dv, tol = worst[key]
            res.controls.append(Bound.of(f"{name}: {key} formula matches torch (smallest miss)", dv, 0, tol))
    res.notes.append(f"function body: {n} lines; cases: shapes {SHAPES} x masks {MASKS} x {samples} draws")
    return res


def main(argv=None) -> int:
    from proofs.cli import run

    return run(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())

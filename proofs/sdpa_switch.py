"""Exercise 13.20: the GPT's attention through ``F.scaled_dot_product_attention`` equals the manual
softmax(QKᵀ/√d_k)V, with and without a KV cache.

``models.gpt.CausalSelfAttention`` has one switch, ``GPTConfig.attn = "sdpa" | "manual"``; both
paths share every weight. Decoding with a KV cache rests on one fact, which the derivation proves
for three positions: under the causal mask, row $i$ of the full attention (keys after $i$ pushed to
$-\\infty$) equals attention of query $i$ over the cached keys $0..i$ alone,
$$\\lim_{m\\to-\\infty}\\frac{e^{q_1k_0}v_0 + e^{q_1k_1}v_1 + e^{q_1k_2+m}v_2}{e^{q_1k_0} + e^{q_1k_1} + e^{q_1k_2+m}}
= \\frac{e^{q_1k_0}v_0 + e^{q_1k_1}v_1}{e^{q_1k_0} + e^{q_1k_1}}.$$

The check builds one attention layer per configuration (MHA, GQA and MQA, learned or rotary
positions), copies its weights into the other path, and measures in float32 and float64 the largest
difference between (a) the two paths on a full sequence and (b) a prefill of half the sequence plus
one token at a time through the KV cache against the full pass, for both paths. Each must lie within
64 machine epsilons times the largest |output|, set in advance. Negative control: the full pass
without the causal mask (bidirectional attention) against the cached decode is rejected.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp
import torch

from derive.engine import Derivation
from models.gpt import CausalSelfAttention, GPTConfig, KVCache
from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from proofs.kit import plotting
from proofs.kit.cli import main_for
from proofs.kit.options import with_options

NUMBER = "13.20"
main = main_for(__name__)  # python -m proofs.<name>: the shared command line (proofs.kit.cli)
CLAIM = "CausalSelfAttention gives the same outputs through `F.scaled_dot_product_attention` as written out by hand."
DEFAULT_SAMPLES = 2  # random inputs per configuration and dtype
MAX_SAMPLES = 200  # measured on 2 CPU cores: 4.6 s at 100 idle, 16 s at 8 when busy: 46 ms to 2 s per draw
SAMPLES_WHY = "the check's time grows linearly: 46 ms (idle) to 2 s (busy) per sample on 2 CPU cores: up to 7 minutes"
CONFIGS = [dict(n_kv_head=None, pos="learned"), dict(n_kv_head=2, pos="rope"), dict(n_kv_head=1, pos="rope")]
B, T = 2, 12


def derivation() -> Derivation:
    """Under the causal mask, row i of the full attention equals query i over the cached keys 0..i alone."""
    q1, k0, k1, k2, v0, v1, v2 = sp.symbols("q_1 k_0 k_1 k_2 v_0 v_1 v_2", real=True)
    m = sp.Symbol("m", negative=True)
    e = sp.exp
    d = Derivation(
        "Exercise 13.20: causal attention of row $i$ needs only the keys and values up to $i$",
        [
            r"one head, $d_k = 1$ for brevity (the scale $1/\sqrt{d_k}$ multiplies every score alike)",
            r"the causal mask adds $m \to -\infty$ to the score of every key after the query",
        ],
    )
    full = (e(q1 * k0) * v0 + e(q1 * k1) * v1 + e(q1 * k2 + m) * v2) / (e(q1 * k0) + e(q1 * k1) + e(q1 * k2 + m))
    cached = (e(q1 * k0) * v0 + e(q1 * k1) * v1) / (e(q1 * k0) + e(q1 * k1))
    d.limit(full, m, -sp.oo, cached, "row 1 of the masked full pass = query 1 over the cached keys 0, 1")
    d.eq(
        sp.diff(cached, k2) + sp.diff(cached, v2),
        0,
        "so it does not depend on $k_2$, $v_2$ (what comes later)",
        "exact",
    )
    return d


def _pair(cfg_kw: dict, dtype, dev, gen):
    """A manual-attention layer with seeded weights and an SDPA layer holding the same weights."""
    cfg = GPTConfig(block_size=T, vocab_size=2, n_layer=1, n_head=4, n_embd=64, attn="manual", **cfg_kw)
    manual = CausalSelfAttention(cfg).to(dev, dtype).eval()
    for p in manual.parameters():  # seeded weights, larger than the GPT init so attention is not flat
        p.data.copy_(torch.randn(p.shape, generator=gen, device=dev, dtype=torch.float64) * 0.2)
    sdpa_cfg = GPTConfig(**{**cfg.__dict__, "attn": "sdpa"})
    sdpa = CausalSelfAttention(sdpa_cfg).to(dev, dtype).eval()
    sdpa.load_state_dict(manual.state_dict())
    return cfg, manual, sdpa


@torch.no_grad()
def _decode(layer, cfg, x):
    """Prefill T/2 positions, then one position at a time through the KV cache."""
    cache = KVCache(cfg, x.size(0), x.size(1), device=x.device, dtype=x.dtype)
    outs, t = [], x.size(1) // 2
    for lo, hi in [(0, t)] + [(i, i + 1) for i in range(t, x.size(1))]:
        outs.append(layer(x[:, lo:hi], cache))
        cache.length = hi
    return torch.cat(outs, dim=1)


@with_options
def check(o) -> CheckResult:
    """SDPA vs manual attention and cached decode vs full pass, per configuration and dtype; control: no causal mask."""
    dev = pick_device(o.device)
    gen = generator(dev, o.seed)
    res = CheckResult(CLAIM, describe(dev), o.samples * len(CONFIGS) * 2, o.seed)
    for dtype in (torch.float32, torch.float64):
        worst: dict[str, tuple[float, float]] = {}
        for kw in CONFIGS:
            for _ in range(o.samples):
                cfg, manual, sdpa = _pair(kw, dtype, dev, gen)
                x = torch.randn(B, T, cfg.n_embd, generator=gen, device=dev, dtype=torch.float64).to(dtype)
                with torch.no_grad():
                    ym, ys = manual(x), sdpa(x)
                    no_mask = _bidirectional(manual, x)  # control: no causal mask
                tol = 64 * torch.finfo(dtype).eps * max(1.0, ym.abs().max().item())
                decoded = _decode(sdpa, cfg, x)
                diffs = {
                    "sdpa vs manual, full sequence": (ys - ym).abs().max().item(),
                    "manual: cached decode vs full": (_decode(manual, cfg, x) - ym).abs().max().item(),
                    "sdpa: cached decode vs full": (decoded - ys).abs().max().item(),
                }
                for key, v in diffs.items():
                    worst[key] = max(worst.get(key, (0.0, tol)), (v, tol))
                ctl = (no_mask - decoded).abs().max().item()
                worst["control"] = min(worst.get("control", (float("inf"), tol)), (ctl, tol))
        name, (v, tol) = str(dtype).replace("torch.", ""), worst.pop("control")
        res.controls.append(Bound.of(f"{name}: bidirectional full pass = cached decode (smallest miss)", v, 0, tol))
        for key, (v, tol) in worst.items():
            res.claims.append(Bound.of(f"{name}: {key} (max |diff|)", v, 0, tol))
            res.table.append({"dtype": name, "comparison": key, "max |diff|": v, "tolerance": tol})
    res.notes.append(f"configurations: {CONFIGS}; batch {B}, length {T}, width 64, 4 heads; {o.samples} draws each")
    return res


def _bidirectional(layer, x):
    """The layer's computation with no mask at all (every query sees every key): the model's own
    attention module built with ``causal=False``, given the layer's weights, through SDPA."""
    free = CausalSelfAttention(replace(layer.cfg, attn="sdpa"), causal=False).to(x.device, x.dtype).eval()
    free.load_state_dict(layer.state_dict())
    return free(x)


def figure(res: CheckResult):
    """The largest difference between the GPT's attention paths, per comparison and dtype, beside its tolerance."""
    fig = plotting.errors_against_tolerances(
        res, ("dtype", "comparison"), "max |diff|", "tolerance", f"Exercise {NUMBER}: SDPA vs manual attention"
    )
    ax = fig.axes[0]
    ax.containers[0].set_label(r"measured $\max|\mathrm{diff}|$")  # the table's column, typeset
    ax.legend(fontsize=8)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())

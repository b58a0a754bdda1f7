"""Two families of decoder-only Transformer and their exact parameter counts (no torch here).

- GPT-2 style: biases, LayerNorm, a GELU MLP (4d wide by default), learned positions, an output
  layer tied to the token table.
- LLaMA style: no biases, RMSNorm, a SwiGLU MLP (LLaMA's width 256 ceil(8d/3/256) by default),
  rotary positions (no weights), an untied output layer.

A *shape* is a dict of the sizes ``L`` (layers), ``d`` (width), ``V`` (vocabulary), ``h`` (query
heads) and ``n`` (positions), and optionally ``ff`` (SwiGLU width), ``kv`` (key/value heads),
``dh`` (head size), ``gff`` (GELU width), ``tie`` and ``bias``; an optional size that is absent,
None or 0 takes its default, and a switch that is absent or None the style's own.
:func:`complete` fills them in; :func:`style_params` counts the model with :mod:`derive.counts`.

>>> style_params("llama", dict(L=32, d=4096, V=32000, h=32, n=2048))  # LLaMA-7B
6738415616
>>> gpt2_params() - llama_params()  # GELU vs SwiGLU, biases and LayerNorm bias, tying, positions
8*L*d**2 - 3*L*d*d_ff + 11*L*d - V*d + d*n_ctx + d
"""

from __future__ import annotations

import math

from derive import counts
from derive.counts import L, V, d, d_ff, h, n_ctx

STYLE_DEFAULTS = {"gpt2": dict(tie=True, bias=True), "llama": dict(tie=False, bias=False)}
STYLE_NAMES = {"gpt2": "GPT-2 style", "llama": "LLaMA style"}


def gpt2_params(L=L, d=d, V=V, h=h, n_ctx=n_ctx, n_kv=None, d_head=None, d_ff=None, tie=True, bias=True):
    """Parameters of a GPT-2-style model (sizes as symbols or integers; ``d_ff=None``: 4d).

    >>> gpt2_params(24, 1024, 50257, 16, 1024)  # GPT-2 medium
    354823168
    """
    return counts.model_params(L, d, h, V, n_ctx, bias, "gelu", "layernorm", n_kv, d_ff, True, tie, "learned", d_head)


def llama_params(L=L, d=d, V=V, h=h, d_ff=d_ff, n_kv=None, d_head=None, tie=False, bias=False):
    """Parameters of a LLaMA-style model with SwiGLU width ``d_ff`` (RoPE: no position weights).

    >>> llama_params(80, 8192, 32000, 64, 28672, n_kv=8)  # Llama-2-70B
    68976648192
    """
    return counts.model_params(L, d, h, V, n_ctx, bias, "swiglu", "rmsnorm", n_kv, d_ff, True, tie, "rope", d_head)


def llama_width(d: int) -> int:
    """LLaMA's SwiGLU width: 8d/3 rounded up to a multiple of 256 (the same rounding as
    ``models.gpt.swiglu_hidden(d, 256)``).

    >>> llama_width(4096), llama_width(1024)
    (11008, 2816)
    """
    return 256 * math.ceil(8 * d / 3 / 256)


def complete(style: str, s: dict) -> dict:
    """Every size and switch of one model of ``style`` ("gpt2" or "llama"): the shape ``s`` with
    multi-head attention (kv = h), head size d // h, a 4d GELU MLP, LLaMA's SwiGLU width and the
    style's own tying and biases wherever ``s`` gives none.

    >>> complete("llama", dict(L=1, d=64, V=10, h=4, n=8, tie=True))
    {'L': 1, 'd': 64, 'V': 10, 'h': 4, 'n': 8, 'kv': 4, 'dh': 16, 'ff': 256, 'gff': 256, 'tie': True, 'bias': False}
    """
    dd, hh = s["d"], s["h"]
    out = dict(L=s["L"], d=dd, V=s["V"], h=hh, n=s["n"])
    out |= dict(kv=s.get("kv") or hh, dh=s.get("dh") or dd // hh, ff=s.get("ff") or llama_width(dd))
    out["gff"] = s.get("gff") or 4 * dd
    for k, v in STYLE_DEFAULTS[style].items():
        out[k] = v if s.get(k) is None else bool(s[k])
    return out


def style_params(style: str, s: dict) -> int:
    """The exact parameter count of the ``style`` model of shape ``s`` (see :func:`complete`).

    >>> style_params("gpt2", dict(L=12, d=768, V=50257, h=12, n=1024))  # GPT-2 small
    124439808
    """
    a = complete(style, s)
    dh = None if a["dh"] * a["h"] == a["d"] else a["dh"]  # a head size other than d/h is passed on
    if style == "gpt2":
        return int(gpt2_params(a["L"], a["d"], a["V"], a["h"], a["n"], a["kv"], dh, a["gff"], a["tie"], a["bias"]))
    return int(llama_params(a["L"], a["d"], a["V"], a["h"], a["ff"], a["kv"], dh, a["tie"], a["bias"]))

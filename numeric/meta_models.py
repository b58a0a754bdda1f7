"""Models built on the meta device (shapes only, no memory, no initialisation) and their exact
parameter counts: the project's GPT and the same architectures from ``torch.nn`` parts, in the
GPT-2 and LLaMA styles of :mod:`derive.model_styles` (each builder takes one shape dict).

>>> torch_llama(dict(L=32, d=4096, V=32000, h=32, n=2048))  # LLaMA-7B, in well under a second
6738415616
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from derive.model_styles import complete
from models.gpt import GPT, GPTConfig


class _SkipInit(TorchFunctionMode):
    """Skip in-place initialisers: a meta tensor has no values to fill, and on meta torch routes
    each of them through its Python decompositions (about 1 ms each, 1 s to import the first time)."""

    NAMES = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "fill_", "zero_", "ones_", "zeros_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.NAMES:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


@contextlib.contextmanager
def shapes_only():
    """Build modules on the meta device, without initialising them: shapes and counts only.

    >>> with shapes_only():
    ...     n_params(nn.Linear(3, 4))
    16
    """
    with torch.device("meta"), _SkipInit():
        yield


def n_params(module: nn.Module) -> int:
    """Parameters, each shared tensor once (``parameters()`` deduplicates tied weights).

    >>> n_params(nn.Linear(3, 4, bias=False))
    12
    """
    return sum(p.numel() for p in module.parameters())


def _gpt(s: dict, **kw) -> GPT:
    with shapes_only():
        return GPT(GPTConfig(block_size=s["n"], vocab_size=s["V"], n_layer=s["L"], n_head=s["h"], n_embd=s["d"], **kw))


def gpt_rule_shaped(s: dict) -> tuple[int, int]:
    """(weights of the Linear and Embedding layers, all parameters) of the project's GPT of shape ``s``
    without biases, positions or tying, so that RMSNorm gains are all it has beyond 12Ld^2 + 2Vd.

    >>> gpt_rule_shaped(dict(L=2, d=8, V=10, h=2, n=1))
    (1696, 1736)
    """
    m = _gpt(s | dict(n=1), bias=False, pos="none", norm="rmsnorm", tie_weights=False)
    mats = sum(x.weight.numel() for x in m.modules() if isinstance(x, nn.Linear | nn.Embedding))
    return mats, m.num_params()


def gpt_gpt2(s: dict) -> int | None:
    """The project's GPT in GPT-2 style; None for a head size other than d/h, which it cannot build.

    >>> gpt_gpt2(dict(L=12, d=768, V=50257, h=12, n=1024))  # GPT-2 small
    124439808
    """
    a = complete("gpt2", s)
    if a["dh"] * a["h"] != a["d"]:
        return None
    return _gpt(a, n_kv_head=a["kv"], mlp_hidden=a["gff"], tie_weights=a["tie"], bias=a["bias"]).num_params()


def gpt_llama(s: dict) -> int | None:
    """The project's GPT in LLaMA style; None for a head size other than d/h, which it cannot build.

    >>> gpt_llama(dict(L=32, d=4096, V=32000, h=32, n=2048))  # LLaMA-7B
    6738415616
    """
    a = complete("llama", s)
    if a["dh"] * a["h"] != a["d"]:
        return None
    kw = dict(pos="rope", norm="rmsnorm", mlp="swiglu", mlp_hidden=a["ff"], tie_weights=a["tie"], bias=a["bias"])
    return _gpt(a, n_kv_head=a["kv"], **kw).num_params()


def _attention_linears(a: dict) -> dict:
    """q (d -> h d_head), k and v (d -> kv d_head), o (h d_head -> d), as Hugging Face lays them out."""
    lin = lambda i, o: nn.Linear(i, o, bias=a["bias"])
    d, q, kv = a["d"], a["h"] * a["dh"], a["kv"] * a["dh"]
    return dict(q=lin(d, q), k=lin(d, kv), v=lin(d, kv), o=lin(q, d))


def _with_tables(a: dict, wte: nn.Embedding, *parts: nn.Module) -> int:
    """Parameters of ``parts`` with the token table ``wte`` and an output layer tied to it or not."""
    head = nn.Linear(a["d"], a["V"], bias=False)
    if a["tie"]:
        head.weight = wte.weight
    return n_params(nn.ModuleList([wte, *parts, head]))


def torch_gpt2(s: dict) -> int:
    """GPT-2 from torch.nn parts: pre-norm nn.TransformerEncoderLayer blocks (MultiheadAttention, GELU
    MLP, two LayerNorms) for multi-head attention with head size d/h, else the same block from
    nn.Linear (q, k, v, o with kv key/value heads of size dh) and nn.LayerNorm; token and position
    tables, a final LayerNorm, an output layer tied to the token table or not.

    >>> torch_gpt2(dict(L=12, d=768, V=50257, h=12, n=1024))  # GPT-2 small
    124439808
    """
    a = complete("gpt2", s)
    L, d, h, b, gff = a["L"], a["d"], a["h"], a["bias"], a["gff"]
    with shapes_only():
        if a["kv"] == h and a["dh"] * h == d:
            layer = lambda: nn.TransformerEncoderLayer(d, h, gff, 0.0, norm_first=True, batch_first=True, bias=b)
        else:
            lin = lambda i, o: nn.Linear(i, o, bias=b)
            mlp = lambda: dict(fc=lin(d, gff), proj=lin(gff, d))
            norms = lambda: dict(ln1=nn.LayerNorm(d, bias=b), ln2=nn.LayerNorm(d, bias=b))
            layer = lambda: nn.ModuleDict(_attention_linears(a) | mlp() | norms())
        blocks = [layer() for _ in range(L)]
        return _with_tables(a, nn.Embedding(a["V"], d), nn.Embedding(a["n"], d), *blocks, nn.LayerNorm(d, bias=b))


def torch_llama(s: dict) -> int:
    """LLaMA from torch.nn parts, laid out like Hugging Face's LlamaForCausalLM (q/k/v/o_proj with
    kv key/value heads of size dh, gate/up/down_proj, two RMSNorms per layer, final norm, lm_head
    untied unless ``tie``; RoPE has no weights).

    >>> torch_llama(dict(L=1, d=8, V=10, h=2, n=1, ff=16))  # 4 d^2 + 3 d ff + 2d, final d, 2 V d
    824
    """
    a = complete("llama", s)
    d, ff = a["d"], a["ff"]
    with shapes_only():
        lin = lambda i, o: nn.Linear(i, o, bias=a["bias"])
        mlp = lambda: dict(gate=lin(d, ff), up=lin(d, ff), down=lin(ff, d))
        norms = lambda: dict(norm1=nn.RMSNorm(d, eps=1e-5), norm2=nn.RMSNorm(d, eps=1e-5))
        blocks = [nn.ModuleDict(_attention_linears(a) | mlp() | norms()) for _ in range(a["L"])]
        return _with_tables(a, nn.Embedding(a["V"], d), *blocks, nn.RMSNorm(d, eps=1e-5))

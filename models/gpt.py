"""The chapter's decoder-only GPT: one nanoGPT-sized model whose variants are switches in
:class:`GPTConfig` (positional encoding, norm, MLP, KV heads, pre/post norm, attention kernel).

Generation uses a KV cache and gives the same tokens as re-running the full sequence; the cache is
indexed by position, so dropping the last positions (rejected draft tokens in speculative decoding)
is :meth:`KVCache.rollback`, a change of its length. The blocks take ``causal=False`` for a
bidirectional encoder, with an optional key padding mask, so every model reuses the same layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.attention import scaled_dot_product_attention as attention_by_hand
from models.positional import apply_rope, sinusoidal_table
from models.sampling import check_sampling, processed_logits

CHOICES = {
    "pos": ("learned", "sinusoidal", "rope", "none"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu", "none"),  # none: attention-only blocks (Elhage et al. 2021)
    "attn": ("sdpa", "manual"),
}


@dataclass
class GPTConfig:
    """Sizes and switches of the GPT (defaults: nanoGPT's Shakespeare-character model);
    ``__post_init__`` raises ValueError naming the first bad field."""

    # each field's "help" is its line in ``python -m models.training --help`` ("default": its default, in words)
    block_size: int = field(default=256, metadata={"help": "context length: the most tokens the model attends over"})
    vocab_size: int = field(default=65, metadata={"help": "number of token ids (on the command line: --data's)"})
    n_layer: int = field(default=6, metadata={"help": "number of transformer blocks"})
    n_head: int = field(default=6, metadata={"help": "query heads per attention layer; must divide --n-embd"})
    n_embd: int = field(default=384, metadata={"help": "model width d (embedding size)"})
    n_kv_head: int | None = field(
        default=None,  # None = n_head (MHA); 1 = MQA; in between = GQA
        metadata={
            "help": "key/value heads: --n-head is MHA, 1 MQA, between GQA; must divide --n-head",
            "default": "--n-head (MHA)",
        },
    )
    dropout: float = field(default=0.0, metadata={"help": "dropout probability in training, in [0, 1)"})
    bias: bool = field(default=True, metadata={"help": "biases in Linear layers and LayerNorms"})
    pos: str = field(default="learned", metadata={"help": "positional encoding"})
    norm: str = field(default="layernorm", metadata={"help": "normalisation layer"})
    mlp: str = field(default="gelu", metadata={"help": "feed-forward network's activation"})
    mlp_hidden: int | None = field(
        default=None,  # None = 4d for gelu, swiglu_hidden(d) for swiglu
        metadata={
            "help": "hidden width of the MLP",
            "default": "4 x --n-embd for gelu, 8/3 x --n-embd rounded up to 32 for swiglu",
        },
    )
    prenorm: bool = field(  # False: post-norm, as in the original Transformer
        default=True, metadata={"help": "pre-norm blocks (--no-prenorm: post-norm, as in the original Transformer)"}
    )
    attn: str = field(  # "manual" writes softmax(QK^T/sqrt(d_k))V out by hand
        default="sdpa", metadata={"help": "attention kernel: torch's sdpa, or manual softmax(QK^T/sqrt(d_k))V"}
    )
    tie_weights: bool = field(default=True, metadata={"help": "share the token embedding with the output layer"})
    rope_base: float = field(
        default=10000.0, metadata={"help": "rotary base b (--pos rope): frequencies b^(-2i/head size)"}
    )

    def __post_init__(self):
        for f in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, f) <= 0:
                raise ValueError(f"{f}: must be positive, got {getattr(self, f)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head: must divide n_embd={self.n_embd}, got {self.n_head}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.n_kv_head <= 0 or self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head: must divide n_head={self.n_head}, got {self.n_kv_head}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"n_embd: head size n_embd/n_head must be even for rope, got {self.head_dim}")
        if self.pos == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"n_embd: must be even for sinusoidal positions, got {self.n_embd}")
        if self.mlp_hidden is not None and self.mlp_hidden <= 0:
            raise ValueError(f"mlp_hidden: must be positive, got {self.mlp_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must lie in [0, 1), got {self.dropout}")
        if not (math.isfinite(self.rope_base) and self.rope_base > 0):  # frequencies base^(-2i/d_head)
            raise ValueError(f"rope_base: must be a positive finite number, got {self.rope_base}")
        for f, ok in CHOICES.items():
            if getattr(self, f) not in ok:
                raise ValueError(f"{f}: unknown {getattr(self, f)!r}; choose from {ok}")

    @property
    def head_dim(self) -> int:
        """Size of one attention head, n_embd / n_head."""
        return self.n_embd // self.n_head

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the config's fields, in declaration order."""
        return [f.name for f in fields(cls)]


def swiglu_hidden(d: int, multiple: int = 32) -> int:
    """SwiGLU hidden size: 2/3 of 4d (same parameters as a 4d GELU MLP), rounded up to ``multiple``."""
    return multiple * math.ceil(8 * d / 3 / multiple)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich, 2019); no mean subtraction, no bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        """x (..., dim) -> normalised x of the same shape."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg: GPTConfig) -> nn.Module:
    """The normalisation ``cfg.norm`` names over n_embd: RMSNorm, or LayerNorm (Ba et al., 2016) with ``cfg.bias``."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd)
    return nn.LayerNorm(cfg.n_embd, bias=cfg.bias)


class KVCache:
    """Keys and values of past positions, indexed by position as in gpt-fast: per layer one preallocated
    (B, n_kv_head, capacity, hd) pair, of which positions [0, length) are valid (``length`` is shared by
    all layers). Positions past ``length`` are never read and are overwritten by the next :meth:`update`,
    so :meth:`rollback` only lowers ``length`` (no copy)."""

    def __init__(self, cfg: GPTConfig, batch: int, capacity: int, device=None, dtype=torch.float32):
        shape = (batch, cfg.n_kv_head, capacity, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0  # positions filled; GPT.forward advances it once every layer has written
        self.capacity = capacity

    def update(self, layer: int, k, v):
        """Store k, v (B, n_kv_head, T, hd) at positions [length, length+T) of ``layer`` and return its keys
        and values so far, (B, n_kv_head, length+T, hd) each; ValueError past ``capacity``."""
        t0, t1 = self.length, self.length + k.size(2)
        if t1 > self.capacity:
            raise ValueError(f"capacity: cache holds {self.capacity} positions, asked for {t1}")
        self.k[layer][:, :, t0:t1] = k
        self.v[layer][:, :, t0:t1] = v
        return self.k[layer][:, :, :t1], self.v[layer][:, :, :t1]  # (B, nkv, t1, hd)

    def rollback(self, length: int) -> None:
        """Keep positions [0, length) and forget the later ones (e.g. rejected draft tokens); ValueError
        naming ``length`` unless it is an integer in [0, self.length]."""
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= self.length:
            raise ValueError(f"length: must be an integer in [0, {self.length}] (the positions held), got {length!r}")
        self.length = length

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values: 2 L B n_kv_head capacity hd element_size."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


def _causal_mask(T: int, Tk: int, t0: int, device) -> torch.Tensor:
    """(T, Tk) boolean mask: query i, at absolute position t0 + i, sees keys j <= t0 + i."""
    return torch.ones(T, Tk, dtype=torch.bool, device=device).tril(diagonal=t0)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention softmax(QK^T/sqrt(hd) + M)V (Vaswani et al. 2017, eq. 1), with n_kv_head
    shared K/V heads (GQA, Ainslie et al. 2023; MQA, Shazeer 2019). ``causal=True`` (the GPT) masks keys
    after each query; ``causal=False`` is the bidirectional attention of an encoder, with the same weights."""

    def __init__(self, cfg: GPTConfig, layer: int = 0, causal: bool = True):
        super().__init__()
        self.cfg, self.layer, self.causal = cfg, layer, causal
        hd, nkv = cfg.head_dim, cfg.n_kv_head
        self.c_attn = nn.Linear(cfg.n_embd, cfg.n_embd + 2 * nkv * hd, bias=cfg.bias)  # q, k, v
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, cache: KVCache | None = None, key_padding_mask=None):
        """x (B, T, C) -> (B, T, C). With ``cache`` the queries sit at positions cache.length.. and also see
        the cached keys. ``key_padding_mask`` (B, Tk) bool, True = keep, Tk = cached + T keys, hides keys
        from every query (a query left with none gets zeros); a wrong one raises ValueError."""
        cfg = self.cfg
        B, T, C = x.size()
        hd, nh, nkv = cfg.head_dim, cfg.n_head, cfg.n_kv_head
        t0 = cache.length if cache is not None else 0  # absolute position of x[:, 0]
        if key_padding_mask is not None and (
            key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (B, t0 + T)
        ):
            raise ValueError(
                f"key_padding_mask: must be a bool tensor of shape {(B, t0 + T)}, "
                f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            )
        q, k, v = self.c_attn(x).split([C, nkv * hd, nkv * hd], dim=2)
        q = q.view(B, T, nh, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, nkv, hd).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, nkv, hd).transpose(1, 2)  # (B, nkv, T, hd)
        if cfg.pos == "rope":
            pos = torch.arange(t0, t0 + T, device=x.device)  # (T,)
            q, k = apply_rope(q, pos, cfg.rope_base), apply_rope(k, pos, cfg.rope_base)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nkv, t0+T, hd)
        if nkv != nh:  # GQA / MQA: each K/V head serves nh/nkv query heads
            k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)  # (B, nh, Tk, hd)
        Tk = k.size(2)
        p = cfg.dropout if self.training else 0.0
        if cfg.attn == "sdpa" and key_padding_mask is None and (not self.causal or t0 == 0 or T == 1):
            # no mask tensor needed: plain causal, bidirectional, or one new query that sees every key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal and T > 1)
        else:
            mask = _causal_mask(T, Tk, t0, x.device) if self.causal else None  # (T, Tk)
            if key_padding_mask is not None:
                keep = key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
                mask = keep if mask is None else keep & mask  # (B, 1, T, Tk)
            attend = F.scaled_dot_product_attention if cfg.attn == "sdpa" else attention_by_hand  # (ex. 13.19)
            y = attend(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward layer: GELU(x W1) W2 (GPT-2), or SwiGLU (Shazeer, 2020) with ``cfg.mlp``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        hidden = cfg.mlp_hidden or (swiglu_hidden(cfg.n_embd) if self.swiglu else 4 * cfg.n_embd)
        self.c_fc = nn.Linear(cfg.n_embd, (2 if self.swiglu else 1) * hidden, bias=cfg.bias)
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        """x (B, T, C) -> (B, T, C), each position on its own."""
        h = self.c_fc(x)  # (B, T, hidden), or (B, T, 2 hidden) for SwiGLU
        if self.swiglu:  # SwiGLU(x) = (silu(x W) * x V) W2 (Shazeer, 2020)
            a, b = h.chunk(2, dim=-1)  # (B, T, hidden) each
            h = F.silu(a) * b
        else:
            h = F.gelu(h)
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """One transformer layer, attention then MLP, each a residual branch: pre-norm x + f(LN(x)) (GPT-2) or
    post-norm LN(x + f(x)) (Vaswani et al. 2017). ``causal=False`` makes it an encoder layer (BERT);
    ``cfg.mlp == "none"`` drops the MLP and its norm (attention only, Elhage et al. 2021)."""

    def __init__(self, cfg: GPTConfig, layer: int = 0, causal: bool = True):
        super().__init__()
        self.prenorm = cfg.prenorm
        self.ln_1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer, causal)
        has_mlp = cfg.mlp != "none"
        self.ln_2, self.mlp = (make_norm(cfg), MLP(cfg)) if has_mlp else (None, None)

    def forward(self, x, cache: KVCache | None = None, key_padding_mask=None):
        """x (B, T, C) -> (B, T, C); ``cache`` and ``key_padding_mask`` as in :class:`CausalSelfAttention`."""
        if self.prenorm:  # x + f(LN(x))
            x = x + self.attn(self.ln_1(x), cache, key_padding_mask)
            return x if self.mlp is None else x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x, cache, key_padding_mask))  # LN(x + f(x))
        return x if self.mlp is None else self.ln_2(x + self.mlp(x))


def init_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: Linear and Embedding weights N(0, 0.02²), biases 0, and the residual
    projections (``c_proj``) N(0, (0.02/√(2 n_layer))²) so the residual stream's variance does not grow
    with depth (Radford et al. 2019, section 2.3)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


class GPT(nn.Module):
    """Decoder-only language model (GPT-2, Radford et al. 2019): token (+ position) embeddings, n_layer causal
    blocks, a final norm and a linear head to vocab logits, tied to the embedding by default."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        if cfg.pos == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(cfg.block_size, cfg.n_embd), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        self.ln_f = make_norm(cfg) if cfg.prenorm else nn.Identity()
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        init_weights(self, cfg.n_layer)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters (shared ones once); ``non_embedding`` leaves out the token and position tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + (self.wpe.weight.numel() if self.wpe is not None else 0)
        return n

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy against ``targets`` (B, T), -1 ignored,
        or None). With ``cache`` idx continues the cached positions, and cache.length grows by T. ValueError when
        learned or sinusoidal positions would run past block_size."""
        B, T = idx.size()
        t0 = cache.length if cache is not None else 0  # absolute position of idx[:, 0]
        if t0 + T > self.config.block_size and self.config.pos in ("learned", "sinusoidal"):
            raise ValueError(f"idx: sequence of {t0 + T} exceeds block_size {self.config.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(t0, t0 + T, device=idx.device))  # (B, T, C) + (T, C)
        elif self.config.pos == "sinusoidal":  # as Vaswani et al.: embeddings scaled by sqrt(d), so the
            # fixed unit-amplitude table does not drown tokens initialised with std 0.02
            x = x * math.sqrt(self.config.n_embd) + self.pe[t0 : t0 + T].to(x.dtype)  # (B, T, C) + (T, C)
        x = self.drop(x)
        for block in self.h:
            x = block(x, cache)  # (B, T, C)
        if cache is not None:
            cache.length += T  # every layer has written positions [t0, t0 + T)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)  # ()
        return logits, loss

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences of ``capacity`` positions, on the model's device/dtype."""
        p = next(self.parameters())
        return KVCache(self.config, batch, capacity, device=p.device, dtype=p.dtype)

    @torch.no_grad()
    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        cache: KVCache | None = None,
    ):
        """Append ``max_new_tokens`` sampled tokens (greedy when ``temperature == 0``). With
        ``use_cache`` a KV cache of room for prompt + new tokens is allocated, or ``cache`` is used
        (it must be empty and large enough), so the caller can inspect it afterwards."""
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: must be non-negative, got {max_new_tokens}")
        check_sampling(temperature, top_k)
        bs = self.config.block_size
        if use_cache and idx.size(1) + max_new_tokens > bs and self.config.pos in ("learned", "sinusoidal"):
            raise ValueError(f"max_new_tokens: prompt + new tokens must fit block_size={bs} with the cache")
        if cache is not None and (cache.length or cache.capacity < idx.size(1) + max_new_tokens):
            raise ValueError("cache: must be empty and hold prompt + max_new_tokens positions")
        if use_cache and cache is None:
            cache = self.new_cache(idx.size(0), idx.size(1) + max_new_tokens)
        x = idx
        for _ in range(max_new_tokens):
            if use_cache:
                logits, _ = self(x, cache=cache)
            else:
                logits, _ = self(idx[:, -bs:])
            logits = logits[:, -1, :]  # (B, vocab)
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
            else:
                probs = F.softmax(processed_logits(logits, temperature, top_k), dim=-1)  # (B, vocab)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)  # (B, T + 1)
            x = nxt
        return idx

"""An encoder-only Transformer (BERT, Devlin et al. 2019) built from the GPT's blocks: token and learned
position embeddings, ``n_layer`` bidirectional :class:`models.gpt.Block` layers (``causal=False``) that
never attend to padding, a final norm, and two heads:

- masked-language-model logits, tied to the token embedding (``h @ E^T + b``, as BERT);
- a classifier over the **mean of the non-padding positions**. Not the ``[CLS]`` position: masked-LM
  pretraining never trains that position's output (nothing is predicted there), so its vector would
  start as arbitrary in a pretrained model as in a fresh one, while the mean pools representations
  pretraining did shape; it also uses every token of a long review.

BERT as published (Devlin et al. 2019, section 3 and figure 2; the pooler's tanh and the MLM transform are in
Google's released ``modeling.py`` and ``run_pretraining.py``) has four more parts, each an opt-in switch of
:class:`Encoder`; off (the default), the model is the one above, unchanged:

- ``n_types``: token-type (segment) embeddings added to the token and position embeddings (BERT: 2, sentence A/B);
- ``emb_norm``: a LayerNorm on that sum (BERT's post-norm blocks normalise only their outputs);
- ``mlm_transform``: the MLM head's dense + GELU + LayerNorm before the tied output layer;
- ``pooler``: dense + tanh on the ``[CLS]`` (position 0) features, which the classifier then reads in place of
  the mean (BERT trains it by next-sentence prediction).

With ``prenorm=False`` and all four, ``cfg`` of BERT-base's sizes gives BERT-base's 109,482,240 parameters
outside the task heads (exercise 13.7). LayerNorm's eps stays the GPT's 1e-5 (BERT: 1e-12).

Shapes: ``idx`` (B, T) int64 token ids, ``[PAD]`` = 0 marking padding; ``token_type`` (B, T) ids below
``n_types`` (None: all 0); features (B, T, C); MLM logits (B, T, vocab); class logits (B, n_classes). A sequence
longer than ``block_size`` or a token type the encoder lacks raises ValueError.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.gpt import Block, GPTConfig, init_weights, make_norm

PAD = 0


class Encoder(nn.Module):
    """See the module docstring; ``cfg`` as for the GPT (``pos`` must be ``learned``), ``n_classes`` outputs;
    ``n_types``, ``emb_norm``, ``mlm_transform`` and ``pooler`` switch on BERT's extra parts (off by default)."""

    def __init__(
        self, cfg: GPTConfig, n_classes: int = 2, n_types: int = 0, emb_norm=False, mlm_transform=False, pooler=False
    ):
        super().__init__()
        if cfg.pos != "learned":
            raise ValueError(f"pos: the encoder uses learned positions, got {cfg.pos!r}")
        if isinstance(n_types, bool) or not isinstance(n_types, int) or n_types < 0:
            raise ValueError(f"n_types: must be a non-negative integer, got {n_types!r}")
        self.config, d = cfg, cfg.n_embd
        self.wte = nn.Embedding(cfg.vocab_size, d)
        self.wpe = nn.Embedding(cfg.block_size, d)
        self.wtt = nn.Embedding(n_types, d) if n_types else None  # BERT's segment (token-type) embeddings
        self.emb_ln = make_norm(cfg) if emb_norm else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg, i, causal=False) for i in range(cfg.n_layer)])
        self.ln_f = make_norm(cfg) if cfg.prenorm else nn.Identity()
        dense = lambda: nn.Linear(d, d, bias=cfg.bias)  # noqa: E731
        self.mlm_transform = nn.Sequential(dense(), nn.GELU(), make_norm(cfg)) if mlm_transform else nn.Identity()
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.pooler = nn.Sequential(dense(), nn.Tanh()) if pooler else None  # BERT: tanh(W h_[CLS] + b)
        self.head = nn.Linear(d, n_classes)
        init_weights(self, cfg.n_layer)

    def features(self, idx: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids (and token types) -> (B, T, C) contextual vectors; padding keys are hidden from every query."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"idx: {T} positions exceed block_size {self.config.block_size}")
        keep = idx != PAD  # (B, T)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        if token_type is not None:
            n = self.wtt.num_embeddings if self.wtt is not None else 0
            if token_type.shape != idx.shape or not bool(((token_type >= 0) & (token_type < n)).all()):
                raise ValueError(f"token_type: must be (B, T) = {tuple(idx.shape)} ids below n_types={n}")
        if self.wtt is not None:  # all sentence A (type 0) when not given
            x = x + self.wtt(torch.zeros_like(idx) if token_type is None else token_type)
        x = self.drop(self.emb_ln(x))
        for block in self.h:
            x = block(x, key_padding_mask=keep)
        return self.ln_f(x)

    def mlm_head(self, h: torch.Tensor) -> torch.Tensor:
        """(..., C) features -> (..., vocab) logits of the token there: (transform, then) tied to the embedding."""
        return self.mlm_transform(h) @ self.wte.weight.T + self.mlm_bias

    def mlm_logits(self, idx: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, vocab) logits of the token at each position."""
        return self.mlm_head(self.features(idx, token_type))

    def forward(self, idx: torch.Tensor, token_type: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, n_classes) logits from the mean of the non-padding positions' features, or with
        ``pooler`` from the pooled ``[CLS]`` (position 0) features."""
        h = self.features(idx, token_type)  # (B, T, C)
        if self.pooler is not None:
            return self.head(self.pooler(h[:, 0]))
        keep = (idx != PAD).unsqueeze(-1).to(self.wte.weight.dtype)  # (B, T, 1)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1)  # (B, C)
        return self.head(pooled)


def mlm_loss(model: Encoder, batch) -> torch.Tensor:
    """Cross-entropy (nats per masked token) of the original tokens at the masked positions; ``batch``
    is ``(inputs, targets)``, (B, T) each, targets -1 where nothing is predicted."""
    x, y = batch
    chosen = y >= 0  # the output layer runs on the masked positions only (about 15%), not on all of them
    logits = model.mlm_head(model.features(x)[chosen])  # (n_masked, vocab)
    return F.cross_entropy(logits, y[chosen])


def class_loss(model: Encoder, batch) -> torch.Tensor:
    """Cross-entropy (nats per review) of the labels; ``batch`` is ``(ids (B, T), labels (B,))``."""
    x, y = batch
    return F.cross_entropy(model(x), y)

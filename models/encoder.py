"""An encoder-only Transformer (BERT, Devlin et al. 2019) built from the GPT's blocks: token and learned
position embeddings, ``n_layer`` bidirectional :class:`models.gpt.Block` layers (``causal=False``) that
never attend to padding, a final norm, and two heads:

- masked-language-model logits, tied to the token embedding (``h @ E^T + b``, as BERT);
- a classifier over the **mean of the non-padding positions**. Not the ``[CLS]`` position: masked-LM
  pretraining never trains that position's output (nothing is predicted there), so its vector would
  start as arbitrary in a pretrained model as in a fresh one, while the mean pools representations
  pretraining did shape; it also uses every token of a long review.

Shapes: ``idx`` (B, T) int64 token ids, ``[PAD]`` = 0 marking padding; features (B, T, C); MLM logits
(B, T, vocab); class logits (B, n_classes). A sequence longer than ``block_size`` raises ValueError.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.gpt import Block, GPTConfig, init_weights, make_norm

PAD = 0


class Encoder(nn.Module):
    """See the module docstring; ``cfg`` as for the GPT (``pos`` must be ``learned``), ``n_classes`` outputs."""

    def __init__(self, cfg: GPTConfig, n_classes: int = 2):
        super().__init__()
        if cfg.pos != "learned":
            raise ValueError(f"pos: the encoder uses learned positions, got {cfg.pos!r}")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg, i, causal=False) for i in range(cfg.n_layer)])
        self.ln_f = make_norm(cfg) if cfg.prenorm else nn.Identity()
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.head = nn.Linear(cfg.n_embd, n_classes)
        init_weights(self, cfg.n_layer)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) contextual vectors; padding keys are hidden from every query."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"idx: {T} positions exceed block_size {self.config.block_size}")
        keep = idx != PAD  # (B, T)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))  # (B, T, C)
        for block in self.h:
            x = block(x, key_padding_mask=keep)
        return self.ln_f(x)

    def mlm_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, vocab) logits of the token at each position, tied to the embedding."""
        return self.features(idx) @ self.wte.weight.T + self.mlm_bias

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, n_classes) logits from the mean of the non-padding positions' features."""
        keep = (idx != PAD).unsqueeze(-1).to(self.wte.weight.dtype)  # (B, T, 1)
        pooled = (self.features(idx) * keep).sum(1) / keep.sum(1).clamp_min(1)  # (B, C)
        return self.head(pooled)


def mlm_loss(model: Encoder, batch) -> torch.Tensor:
    """Cross-entropy (nats per masked token) of the original tokens at the masked positions; ``batch``
    is ``(inputs, targets)``, (B, T) each, targets -1 where nothing is predicted."""
    x, y = batch
    chosen = y >= 0  # the output layer runs on the masked positions only (about 15%), not on all of them
    logits = model.features(x)[chosen] @ model.wte.weight.T + model.mlm_bias  # (n_masked, vocab)
    return F.cross_entropy(logits, y[chosen])


def class_loss(model: Encoder, batch) -> torch.Tensor:
    """Cross-entropy (nats per review) of the labels; ``batch`` is ``(ids (B, T), labels (B,))``."""
    x, y = batch
    return F.cross_entropy(model(x), y)

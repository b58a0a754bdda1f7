"""Masked-language-model pretraining and classification batches for the encoder (exercise 13.24), as
batch sources of the project's training loop (:mod:`models.training.loop`).

Masking as BERT (Devlin et al. 2019, section 3.1 and appendix A.1): each ordinary token (not
``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``) is chosen with probability 0.15; a chosen
token becomes ``[MASK]`` with probability 0.8, a uniformly drawn ordinary token with probability 0.1,
and stays itself with probability 0.1; the loss predicts the original token at the chosen positions
only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.data.wordpiece import MASK, SPECIAL

RATE, TO_MASK, TO_RANDOM = 0.15, 0.8, 0.1


def mask_tokens(ids: torch.Tensor, vocab_size: int, gen: torch.Generator, rate: float = RATE):
    """``(inputs, targets)`` from token ids (B, T): inputs with the chosen tokens replaced as above,
    targets the original id at the chosen positions and -1 elsewhere. Draws from ``gen`` (on the CPU)."""
    ordinary = ids >= len(SPECIAL)
    u = torch.rand(ids.shape, generator=gen).to(ids.device)
    chosen = ordinary & (u < rate)
    how = torch.rand(ids.shape, generator=gen).to(ids.device)  # 80 / 10 / 10 among the chosen
    random_ids = torch.randint(len(SPECIAL), vocab_size, ids.shape, generator=gen).to(ids.device)
    inputs = ids.clone()
    inputs[chosen & (how < TO_MASK)] = MASK
    swap = chosen & (how >= TO_MASK) & (how < TO_MASK + TO_RANDOM)
    inputs[swap] = random_ids[swap]
    targets = torch.where(chosen, ids, torch.full_like(ids, -1))
    return inputs, targets


@dataclass
class MLMBatches:
    """Random rows of pre-tokenised reviews ``splits[name]`` (N, T), masked afresh at every draw."""

    splits: dict
    vocab_size: int

    def to(self, device) -> MLMBatches:
        return MLMBatches({k: v.to(device) for k, v in self.splits.items()}, self.vocab_size)

    def batch(self, split: str, batch_size: int, gen: torch.Generator):
        ids = self.splits[split]
        rows = torch.randint(len(ids), (batch_size,), generator=gen).to(ids.device)
        return mask_tokens(ids[rows], self.vocab_size, gen)


@dataclass
class ClassBatches:
    """Random ``(ids (B, T), labels (B,))`` of each split; ``splits[name] = (ids, labels)``."""

    splits: dict

    def to(self, device) -> ClassBatches:
        return ClassBatches({k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()})

    def batch(self, split: str, batch_size: int, gen: torch.Generator):
        x, y = self.splits[split]
        rows = torch.randint(len(x), (batch_size,), generator=gen).to(x.device)
        return x[rows], y[rows]

"""The distribution a next token is drawn from, shared by plain and speculative decoding, so that the
probabilities speculative sampling compares (p of the target, q of the draft) are exactly the ones
its tokens are drawn from: temperature, then top-k, then softmax, in one stated dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_sampling(temperature: float, top_k: int | None) -> None:
    """ValueError naming ``temperature`` (negative or not finite) or ``top_k`` (not a positive int)."""
    if not isinstance(temperature, (int, float)) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature: must be a finite number >= 0 (0 is greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k: must be a positive integer or None, got {top_k!r}")


def processed_logits(logits: torch.Tensor, temperature: float, top_k: int | None = None) -> torch.Tensor:
    """Logits (..., V) divided by ``temperature`` (> 0), with every logit below the ``top_k``-th
    largest set to -inf (ties at the threshold are kept). Returns a new tensor."""
    out = logits / temperature
    if top_k is not None and top_k < out.size(-1):
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # (..., 1)
        out = out.masked_fill(out < kth, -float("inf"))
    return out


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, dtype=torch.float32
) -> torch.Tensor:
    """The next token's distribution (..., V), in ``dtype``, from logits (..., V): at temperature 0 the
    one-hot of the argmax (greedy decoding; the first index on a tie), else
    softmax(processed_logits(logits)). The logits are cast to ``dtype`` first, so two models' p and
    q are computed alike whatever their own dtype."""
    logits = logits.to(dtype)
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(dtype)
    return F.softmax(processed_logits(logits, temperature, top_k), dim=-1)

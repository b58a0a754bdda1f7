"""Scaled dot-product attention written out by hand (exercise 13.19): softmax(QKᵀ/√d_k + M)V.

It takes the arguments of ``torch.nn.functional.scaled_dot_product_attention`` and gives the
same result: ``attn_mask`` is boolean (True = may attend) or additive (added to the scores);
``is_causal`` keeps the lower-left triangle (query i sees keys j <= i, top-left aligned).
"""

import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., L, S)
    if is_causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril(), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    p = F.dropout(s.softmax(dim=-1), dropout_p) if dropout_p > 0 else s.softmax(dim=-1)
    return p @ v  # (..., L, Ev)

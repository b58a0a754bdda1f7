"""Scaled dot-product attention written out by hand (exercise 13.19): softmax(QKᵀ/√d_k + M)V.

It takes the arguments of ``torch.nn.functional.scaled_dot_product_attention`` and gives the
same result: ``attn_mask`` is boolean (True = may attend) or additive (added to the scores);
``is_causal`` keeps the lower-left triangle (query i sees keys j <= i, top-left aligned, also when
the query and key lengths differ). A query whose every score is -inf (all keys masked, by a boolean
row of False or an additive row of -inf) gets an output of zeros and zero gradients, as torch's
kernels give (torch 2.13, CPU, default and math backends), where a plain softmax gives NaN (0/0).
"""

import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    """softmax(q kᵀ/√d_k + M) v (Vaswani et al. 2017, eq. 1) for q (..., L, d_k), k (..., S, d_k), v (..., S, Ev)
    -> (..., L, Ev); ``attn_mask`` broadcasts against (..., L, S). Same contract as torch's function."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., L, S)
    if is_causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril(), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    dead = (s == float("-inf")).all(dim=-1, keepdim=True)  # (..., L, 1): a query left with no key: its output is 0
    p = s.masked_fill(dead, 0.0).softmax(dim=-1).masked_fill(dead, 0.0)  # (..., L, S) finite: no NaN forward or back
    return (F.dropout(p, dropout_p) if dropout_p > 0 else p) @ v  # (..., L, Ev)

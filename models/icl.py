"""An in-context learner of linear functions (Garg, Tsipras, Liang & Valiant 2022, "What Can Transformers
Learn In-Context? A Case Study of Simple Function Classes", section 2): the GPT's causal blocks
(:class:`models.gpt.Block`) between a linear read-in for vectors and a linear read-out to one number.

A prompt is ``(x_1, f(x_1), x_2, f(x_2), ..., x_n, f(x_n))`` with ``x_i`` in R^d, read as a sequence of 2n
vectors of R^(d+1): the x-token ``(x_i, 0)`` and the y-token ``(x_i, f(x_i))``. Garg et al. embed ``f(x_i)``
alone, as ``(f(x_i), 0, ..., 0)``; carrying ``x_i`` in the y-token as well lets one attention layer read a
point and its value from the same key and value (as the one-token-per-pair prompts of von Oswald et al. 2023,
"Transformers learn in-context by gradient descent"). Measured on 2 CPU cores at d = 4: this form beats the
zero predictor after 250 Adam steps, where Garg's form still sat on the zero predictor's plateau after 400.
``read_in`` maps each vector to the width ``n_embd``, learned position embeddings are added, ``n_layer``
causal blocks and a final norm follow, and ``read_out`` maps each position to a scalar. The output at the
x-token of point i is the model's prediction of ``f(x_i)``: causal attention lets it see the pairs before it
and ``x_i`` itself, never ``f(x_i)``, so one forward pass gives the prediction after ``k = i - 1`` in-context
examples for every ``k = 0 .. n - 1``.

Shapes: ``xs`` (B, n, d), ``ys`` (B, n) -> predictions (B, n); ``n`` may be at most ``n_points``. A wrong
shape raises ValueError naming the argument.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.gpt import Block, GPTConfig, init_weights, make_norm


def interleave(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The prompt as vectors: ``((x_1, 0), (x_1, y_1), (x_2, 0), (x_2, y_2), ...)``, shape (B, 2n, d + 1), from
    ``xs`` (B, n, d) and ``ys`` (B, n): x-tokens at even positions, y-tokens at odd ones."""
    B, n, d = xs.shape
    x_tok = torch.cat([xs, torch.zeros_like(ys)[..., None]], -1)
    y_tok = torch.cat([xs, ys[..., None]], -1)
    return torch.stack([x_tok, y_tok], dim=2).reshape(B, 2 * n, d + 1)  # x and y alternate


class InContextRegressor(nn.Module):
    """The model of the module docstring: ``d`` input dimensions, prompts of up to ``n_points`` pairs, the
    blocks of ``cfg`` (``n_layer``, ``n_head``, ``n_embd``, ``dropout``, ``norm`` ...; ``vocab_size`` and
    ``pos`` are unused: the read-in replaces the token table and positions are learned). ValueError naming
    ``d`` or ``n_points`` when not positive, or ``block_size`` when it is below ``2 n_points``."""

    def __init__(self, d: int, n_points: int, cfg: GPTConfig):
        super().__init__()
        for name, v in (("d", d), ("n_points", n_points)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if cfg.block_size < 2 * n_points:
            raise ValueError(f"block_size: must be at least 2 n_points = {2 * n_points}, got {cfg.block_size}")
        self.d, self.n_points, self.config = d, n_points, cfg
        self.read_in = nn.Linear(d + 1, cfg.n_embd)
        self.wpe = nn.Embedding(2 * n_points, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        self.ln_f = make_norm(cfg)
        self.read_out = nn.Linear(cfg.n_embd, 1)
        init_weights(self, cfg.n_layer)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """``xs`` (B, n, d), ``ys`` (B, n) -> (B, n): entry i predicts ``ys[:, i]`` from the pairs before it and
        ``xs[:, i]`` (``ys[:, i]`` itself is never seen at that position: attention is causal)."""
        if xs.dim() != 3 or xs.shape[-1] != self.d or not 1 <= xs.shape[1] <= self.n_points:
            raise ValueError(f"xs: must be (B, n, {self.d}) with 1 <= n <= {self.n_points}, got {tuple(xs.shape)}")
        if tuple(ys.shape) != tuple(xs.shape[:2]):
            raise ValueError(f"ys: must be (B, n) = {tuple(xs.shape[:2])}, got {tuple(ys.shape)}")
        z = interleave(xs, ys)  # (B, 2n, d + 1)
        T = z.shape[1]
        h = self.drop(self.read_in(z) + self.wpe(torch.arange(T, device=z.device)))  # (B, 2n, C)
        for block in self.h:
            h = block(h)  # (B, 2n, C)
        out = self.read_out(self.ln_f(h))[..., 0]  # (B, 2n)
        return out[:, 0::2]  # (B, n): the outputs at the x positions

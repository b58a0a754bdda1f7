"""A GRU encoder-decoder, with and without additive attention (exercise 13.1).

Bahdanau, Cho and Bengio, "Neural Machine Translation by Jointly Learning to Align and Translate"
(ICLR 2015). The encoder reads x_1..x_n into annotations h_j = GRU(x_j, h_{j-1}) (their eq. 1). The
decoder emits y_i from its state s_i = GRU([y_{i-1}; c_i], s_{i-1}) (eq. 4) and the context c_i:

- ``attention="additive"`` (eqs. 5-6 and appendix A.1.2): e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j),
  alpha_ij = softmax_j(e_ij) over the real (unpadded) positions, c_i = sum_j alpha_ij h_j;
- ``attention="none"`` (the RNN encoder-decoder of Cho et al. 2014, Bahdanau's RNNencdec): c_i = h_n,
  the encoder's final state, the same fixed h floats at every step: the bottleneck;
- ``attention="uniform"``: c_i = mean_j h_j, alpha_ij = 1/n (a control: attention with nothing learned).

Both start from s_0 = tanh(W_s h_n); the output is softmax(W_o [s_i; c_i]) (a plain linear layer in
place of the paper's maxout). One direction only (the paper's encoder is bidirectional), so the
state the no-attention decoder must work from is exactly h floats.

Token ids are 0..V-1; id V is BOS, the decoder's first input. Padding is whatever sits past a
sequence's length: the encoder stops there (packed sequences) and attention gives it weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ATTENTIONS = ("additive", "none", "uniform")


@dataclass
class Seq2SeqConfig:
    """``vocab``: V ordinary tokens (ids 0..V-1; V is BOS); ``hidden``: h, the GRU state size of encoder and
    decoder; ``embed``: token embedding size; ``attn_dim``: the additive scorer's width (W_a, U_a, v_a);
    ``attention``: additive, none or uniform (module docstring). ValueError naming the field."""

    vocab: int = 10
    hidden: int = 64
    embed: int = 32
    attn_dim: int = 64
    attention: str = "additive"

    def __post_init__(self):
        for f in ("vocab", "hidden", "embed", "attn_dim"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{f}: must be a positive integer, got {v!r}")
        if self.vocab < 2:
            raise ValueError(f"vocab: needs at least 2 tokens, got {self.vocab}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention: must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")


class Seq2Seq(nn.Module):
    """The encoder-decoder of the module docstring."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        V, h, e, a = cfg.vocab, cfg.hidden, cfg.embed, cfg.attn_dim
        self.src_emb = nn.Embedding(V, e)
        self.tgt_emb = nn.Embedding(V + 1, e)  # + BOS
        self.encoder = nn.GRU(e, h, batch_first=True)
        self.init = nn.Linear(h, h)  # W_s: s_0 = tanh(W_s h_n)
        self.decoder = nn.GRUCell(e + h, h)
        self.out = nn.Linear(2 * h, V)  # W_o [s_i; c_i]
        if cfg.attention == "additive":
            self.W_a = nn.Linear(h, a, bias=False)
            self.U_a = nn.Linear(h, a)
            self.v_a = nn.Linear(a, 1, bias=False)

    def _check(self, x: torch.Tensor, lengths: torch.Tensor) -> None:
        if x.dim() != 2 or x.dtype != torch.long:
            raise ValueError(f"x: must be a (B, T) tensor of token ids, got {tuple(x.shape)} {x.dtype}")
        if lengths.shape != x.shape[:1]:
            raise ValueError(f"lengths: must have shape ({x.size(0)},), got {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.size(1):
            raise ValueError(f"lengths: must lie in [1, {x.size(1)}], got {lengths.min()}..{lengths.max()}")
        if int(x.min()) < 0 or int(x.max()) >= self.cfg.vocab:
            raise ValueError(f"x: token ids must lie in [0, {self.cfg.vocab - 1}], got {x.min()}..{x.max()}")

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        """Annotations H (B, T, h), zero past each length, and the final states h_n (B, h) (eq. 1)."""
        packed = pack_padded_sequence(self.src_emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        H, h_n = self.encoder(packed)
        H, _ = pad_packed_sequence(H, batch_first=True, total_length=x.size(1))
        return H, h_n[0]  # (B, T, h), (B, h)

    def decode(self, x: torch.Tensor, lengths: torch.Tensor, steps: int, y: torch.Tensor | None = None):
        """Run the decoder ``steps`` steps over the source ``x`` (B, T) of ``lengths`` (B,): teacher-forced on
        the targets ``y`` (B, steps) when given, else greedy. Returns the logits (B, steps, V) and the
        attention weights alpha (B, steps, T), each row summing to 1 over the real positions (all zero for
        ``attention="none"``, whose context is h_n). ValueError naming ``x``, ``lengths``, ``steps`` or ``y``."""
        self._check(x, lengths)
        if steps < 1 or (y is not None and y.shape != (x.size(0), steps)):
            raise ValueError(f"steps: must be positive and match y's (B, steps), got {steps}")
        B, T = x.shape
        H, h_n = self.encode(x, lengths)
        real = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        UH = self.U_a(H) if self.cfg.attention == "additive" else None  # (B, T, a): U_a h_j, once
        s = torch.tanh(self.init(h_n))  # s_0 (B, h)
        prev = torch.full((B,), self.cfg.vocab, dtype=torch.long, device=x.device)  # BOS
        logits, alphas = [], []
        for i in range(steps):
            c, alpha = self.context(s, H, UH, h_n, real)
            s = self.decoder(torch.cat([self.tgt_emb(prev), c], -1), s)  # eq. 4: s_i = f(s_{i-1}, y_{i-1}, c_i)
            logit = self.out(torch.cat([s, c], -1))  # (B, V)
            logits.append(logit)
            alphas.append(alpha)
            prev = y[:, i] if y is not None else logit.argmax(-1)
        return torch.stack(logits, 1), torch.stack(alphas, 1)

    def context(self, s, H, UH, h_n, real):
        """c_i (B, h) and alpha_i (B, T) from s_{i-1} (B, h), H (B, T, h), U_a H (B, T, a), h_n (B, h) and the
        mask of real positions (B, T)."""
        if self.cfg.attention == "none":
            return h_n, torch.zeros(real.shape, dtype=H.dtype, device=H.device)
        if self.cfg.attention == "uniform":
            alpha = real.to(H.dtype) / real.sum(1, keepdim=True)
        else:
            e = self.v_a(torch.tanh(self.W_a(s)[:, None, :] + UH)).squeeze(-1)  # eq. 6: e_ij (B, T)
            alpha = F.softmax(e.masked_fill(~real, float("-inf")), -1)  # eq. 6: alpha_ij, 0 on padding
        return torch.einsum("bt,bth->bh", alpha, H), alpha  # eq. 5: c_i = sum_j alpha_ij h_j

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor):
        """Teacher-forced logits (B, S, V) for the targets ``y`` (B, S); see :meth:`decode`."""
        return self.decode(x, lengths, y.size(1), y)[0]

    @torch.no_grad()
    def generate(self, x: torch.Tensor, lengths: torch.Tensor, steps: int):
        """Greedy outputs (B, steps) and attention weights (B, steps, T); see :meth:`decode`."""
        logits, alpha = self.decode(x, lengths, steps)
        return logits.argmax(-1), alpha


def loss(model: nn.Module, batch) -> torch.Tensor:
    """Mean cross-entropy (nats per target token) of a batch ``(x, lengths, y)``: y (B, S) holds -100 past
    each target's length (ignored); teacher forcing feeds y with those positions as token 0."""
    x, lengths, y = batch
    logits = model(x, lengths, y.clamp(min=0))
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)

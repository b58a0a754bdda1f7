"""A WordPiece tokenizer (Schuster and Nakajima 2012; as in BERT, Devlin et al. 2019) trained on the
training reviews only, with Hugging Face's ``tokenizers`` (a maintained Rust implementation; ours
would be slower and less tested). BERT's normalisation (lower case, accents stripped) and
pre-tokenisation (white space and punctuation); special tokens ``[PAD]`` (id 0), ``[UNK]``,
``[CLS]``, ``[SEP]``, ``[MASK]``; every encoded review is ``[CLS] text [SEP]``, cut to ``max_len``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL))


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000):
    """A ``tokenizers.Tokenizer`` whose WordPiece vocabulary of at most ``vocab_size`` entries (the
    special tokens first, at the ids :data:`PAD`..:data:`MASK`, then the learned pieces in sorted
    order) is learned from ``texts``. Not bit-reproducible: the trainer breaks frequency ties in an
    order that varies between runs, so the last pieces admitted may differ (the tests bound it to 1%).
    ValueError naming ``vocab_size`` below 100."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if vocab_size < 100:
        raise ValueError(f"vocab_size: must be at least 100, got {vocab_size}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # the trainer breaks frequency ties in hash-map order, which differs from run to run, so the ids (and
    # at the margin, which pieces make the cut) vary: number the pieces in sorted order, so that the same
    # vocabulary always gets the same ids (a run saves its tokenizer to be reproduced exactly)
    learned = sorted(t for t in tok.get_vocab() if t not in SPECIAL)
    tok.model = models.WordPiece({t: i for i, t in enumerate([*SPECIAL, *learned])}, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)]
    )
    return tok


def encode(tok, texts: list[str], max_len: int, head: int | None = None) -> torch.Tensor:
    """Token ids (N, max_len) int64: ``[CLS] text [SEP]`` per text, padded with ``[PAD]`` = 0. A text
    too long is cut to ``max_len``: its first tokens by default, or with ``head`` its first ``head``
    tokens and its last ``max_len - 2 - head`` (Sun et al. 2019, "How to Fine-Tune BERT for Text
    Classification", section 5.3.1: head and tail beat either alone on IMDB, where a review's
    verdict is often at its end). ValueError naming ``max_len`` below 3, or ``head`` outside
    [0, max_len - 2]."""
    if max_len < 3:
        raise ValueError(f"max_len: must be at least 3 ([CLS], a token, [SEP]), got {max_len}")
    if head is not None and not 0 <= head <= max_len - 2:
        raise ValueError(f"head: must be in [0, {max_len - 2}] (max_len - 2), got {head}")
    out = torch.zeros(len(texts), max_len, dtype=torch.long)
    for i, enc in enumerate(tok.encode_batch(texts)):
        ids = enc.ids  # [CLS] body [SEP]
        if len(ids) > max_len:
            body, keep = ids[1:-1], max_len - 2
            body = body[:keep] if head is None else body[:head] + body[len(body) - (keep - head) :]
            ids = [ids[0], *body, SEP]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def decode(tok, ids: torch.Tensor) -> str:
    """The text of one row of ids, special tokens left out."""
    return tok.decode([i for i in ids.tolist() if i >= len(SPECIAL)])

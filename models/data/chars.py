"""Tiny Shakespeare at the character level: find the file, check it, encode it, split it 90/10,
and draw random (input, target) blocks with an explicit generator.

The file is looked for, in order: an explicit path, the ``TINY_SHAKESPEARE`` environment
variable, the user cache, and finally a download of the public original checked against
its sha256. When none works the error says what was tried.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_VAR = "TINY_SHAKESPEARE"
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def cache_path() -> Path:
    """Where a downloaded copy is kept: ``$XDG_CACHE_HOME`` (else ``~/.cache``), then
    transformer-proofs/tinyshakespeare.txt."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "transformer-proofs" / "tinyshakespeare.txt"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_corpus(path: Path, what: str = "data") -> str:
    """The UTF-8 text of ``path``; a ValueError naming ``what`` and the file when it is empty,
    binary (not UTF-8, or holding NUL bytes) or unreadable."""
    from models.utils.budget import require_memory

    try:
        require_memory(f"{what}: {str(path)!r}", 6 * path.stat().st_size)  # bytes, UTF-32 copy, uint8 ids
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{what}: cannot read {str(path)!r} ({e.strerror or e})") from None
    if not raw:
        raise ValueError(f"{what}: {str(path)!r} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what}: {str(path)!r} is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})"
        ) from None
    if "\x00" in text:
        raise ValueError(f"{what}: {str(path)!r} holds NUL bytes: a binary file, not text")
    return text


def find_text(path: str | os.PathLike | None = None, download: bool = True) -> str:
    """Return the text of tiny Shakespeare, or raise FileNotFoundError saying what was tried
    (ValueError naming the file when it is there but empty or binary)."""
    if path is not None:  # an explicit path must exist: no silent fallback
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"data: no file at {str(p)!r}")
        return read_corpus(p)
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        if Path(env).is_file():
            return read_corpus(Path(env), f"data (${ENV_VAR})")
        tried.append(f"${ENV_VAR}={env!r} (no such file)")
    else:
        tried.append(f"${ENV_VAR} (not set)")
    cached = cache_path()
    if cached.is_file() and _sha256(cached.read_bytes()) == SHA256:
        return cached.read_text(encoding="utf-8")
    tried.append(f"cache {str(cached)!r} ({'bad hash' if cached.is_file() else 'absent'})")
    if download:
        try:
            with urllib.request.urlopen(URL, timeout=30) as r:
                data = r.read()
        except OSError as e:
            tried.append(f"download ({type(e).__name__}: {e})")
        else:
            if _sha256(data) != SHA256:
                tried.append(f"download (sha256 {_sha256(data)[:12]}… does not match {SHA256[:12]}…)")
            else:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.replace(cached)
                return data.decode("utf-8")
    raise FileNotFoundError(
        "data: tiny Shakespeare not found; tried " + "; ".join(tried) + f". Pass --data PATH or set {ENV_VAR}."
    )


@dataclass
class CharData:
    """The encoded corpus: ``train`` and ``val`` are uint8 token tensors on the CPU."""

    chars: str
    train: torch.Tensor
    val: torch.Tensor
    source: str = "text"  # where the corpus came from, for messages

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1, source: str = "text") -> CharData:
        """Character ids (uint8, sorted vocabulary) of ``text``, the first ``1 - val_fraction`` for training and
        the rest for validation (nanoGPT's split). ValueError for more than 256 distinct characters, a text
        shorter than 2 characters or ``val_fraction`` outside (0, 1)."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction: must lie in (0, 1), got {val_fraction}")
        chars = "".join(sorted(set(text)))
        if len(chars) > 256:
            raise ValueError(f"{source}: {len(chars)} distinct characters do not fit a uint8 vocabulary")
        if len(text) < 2:
            raise ValueError(f"{source}: {len(text)} characters: too short to split into train and val")
        utf32 = bytearray(text.encode("utf-32-le", "surrogatepass"))  # one 4-byte code point per character
        points = torch.frombuffer(utf32, dtype=torch.int32)
        vocab = torch.tensor([ord(c) for c in chars], dtype=torch.int32)  # sorted, so its index is the id
        ids = torch.searchsorted(vocab, points).to(torch.uint8)
        n = min(max(int(len(ids) * (1 - val_fraction)), 1), len(ids) - 1)  # neither split empty
        return cls(chars, ids[:n], ids[n:], source)

    @classmethod
    def load(cls, path=None, download: bool = True) -> CharData:
        """Tiny Shakespeare from ``path``, else ``$TINY_SHAKESPEARE``, the user cache or (``download``) the public
        original checked against its sha256 (:func:`find_text`). ValueError naming ``data`` when none is found."""
        source = f"data: {str(path)!r}" if path is not None else "data: tiny Shakespeare"
        return cls.from_text(find_text(path, download), source=source)

    def check_block(self, block_size: int) -> None:
        """ValueError naming block_size and the corpus when a split cannot hold one block plus its target."""
        short = min(len(self.train), len(self.val))
        if block_size >= short:
            raise ValueError(
                f"block_size: {block_size} does not fit the corpus ({self.source}): its shorter split has "
                f"{short} characters, and a block needs block_size + 1"
            )

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters (65 for tiny Shakespeare)."""
        return len(self.chars)

    def encode(self, s: str) -> torch.Tensor:
        """The ids of ``s``'s characters, int64 of shape (len(s),); ValueError for a character not in the vocabulary."""
        lut = {c: i for i, c in enumerate(self.chars)}
        try:
            return torch.tensor([lut[c] for c in s], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"s: character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """The text of a sequence of ids (the inverse of :meth:`encode`)."""
        return "".join(self.chars[int(i)] for i in ids)

    def to(self, device) -> CharData:
        """The same corpus with its token tensors on ``device`` (1 MB: batches are then cut there)."""
        return CharData(self.chars, self.train.to(device), self.val.to(device), self.source)

    def batch(self, split: str, batch_size: int, block_size: int, gen: torch.Generator):
        """Random blocks x (B, T) and targets y = x shifted by one, int64 on the corpus's device.
        Offsets are drawn on the CPU from ``gen``, so the same seed gives the same batches anywhere."""
        data = {"train": self.train, "val": self.val}.get(split)
        if data is None:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        if block_size >= len(data):
            raise ValueError(f"block_size: {block_size} is not shorter than the {split} split ({len(data)})")
        ix = torch.randint(len(data) - block_size, (batch_size, 1), generator=gen)
        offs = (ix + torch.arange(block_size + 1)).to(data.device, non_blocking=True)
        xy = data[offs].long()  # (B, T+1)
        return xy[:, :-1], xy[:, 1:]

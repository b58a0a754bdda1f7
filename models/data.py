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
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "transformer-proofs" / "tinyshakespeare.txt"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_text(path: str | os.PathLike | None = None, download: bool = True) -> str:
    """Return the text of tiny Shakespeare, or raise FileNotFoundError saying what was tried."""
    if path is not None:  # an explicit path must exist: no silent fallback
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"data: no file at {str(p)!r}")
        return p.read_text(encoding="utf-8")
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        if Path(env).is_file():
            return Path(env).read_text(encoding="utf-8")
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

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1) -> CharData:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction: must lie in (0, 1), got {val_fraction}")
        chars = "".join(sorted(set(text)))
        if len(chars) > 256:
            raise ValueError(f"text: {len(chars)} distinct characters do not fit uint8")
        utf32 = bytearray(text.encode("utf-32-le", "surrogatepass"))  # one 4-byte code point per character
        points = torch.frombuffer(utf32, dtype=torch.int32)
        vocab = torch.tensor([ord(c) for c in chars], dtype=torch.int32)  # sorted, so its index is the id
        ids = torch.searchsorted(vocab, points).to(torch.uint8)
        n = int(len(ids) * (1 - val_fraction))
        return cls(chars, ids[:n], ids[n:])

    @classmethod
    def load(cls, path=None, download: bool = True) -> CharData:
        return cls.from_text(find_text(path, download))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> torch.Tensor:
        lut = {c: i for i, c in enumerate(self.chars)}
        try:
            return torch.tensor([lut[c] for c in s], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"s: character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to(self, device) -> CharData:
        """The same corpus with its token tensors on ``device`` (1 MB: batches are then cut there)."""
        return CharData(self.chars, self.train.to(device), self.val.to(device))

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

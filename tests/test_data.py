"""The tiny Shakespeare loader: where it looks, what it checks, and what it says when it fails."""

import hashlib
import io

import pytest
import torch
from helpers import require_corpus

import models.data.chars as data
from models.data.chars import CharData, find_text

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50


def test_vocab_split_and_batches():
    d = CharData.from_text(TEXT)
    assert d.chars == "".join(sorted(set(TEXT)))
    assert len(d.train) + len(d.val) == len(TEXT) and len(d.train) == int(0.9 * len(TEXT))
    assert d.decode(d.encode("hear me")) == "hear me"
    x, y = d.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are inputs shifted by one
    x2, _ = d.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # same seed, same batch


def test_real_file_when_present():
    require_corpus()  # skips only when it is neither named nor cached; a named but missing file fails
    d = CharData.load(download=False)
    assert d.vocab_size == 65
    assert len(d.train) + len(d.val) == 1115394


def test_explicit_path_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="^data: no file at"):
        find_text(tmp_path / "nope.txt")


def test_nothing_found_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "missing.txt"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as e:
        find_text(download=False)
    msg = str(e.value)
    assert msg.startswith("data:") and "missing.txt" in msg and "cache" in msg and "\n" not in msg


def test_download_is_hash_checked_and_cached(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = TEXT.encode()
    monkeypatch.setattr(data, "SHA256", hashlib.sha256(good).hexdigest())
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(good))
    assert find_text() == TEXT
    assert data.cache_path().read_bytes() == good
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"tampered"))
    data.cache_path().unlink()
    with pytest.raises(FileNotFoundError, match="does not match"):
        find_text()
    assert not data.cache_path().exists()  # a bad download is never cached


def test_download_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="network unreachable"):
        find_text()


def test_bad_arguments():
    d = CharData.from_text(TEXT)
    with pytest.raises(ValueError, match="^split"):
        d.batch("test", 2, 8, torch.Generator())
    with pytest.raises(ValueError, match="^block_size"):
        d.batch("val", 2, 10_000, torch.Generator())
    with pytest.raises(ValueError, match="^s: character"):
        d.encode("§")


@pytest.mark.parametrize("text", [TEXT, "héllo wörld ∑∫ 😀 naïve\n" * 40, "\x00\x7f\x80ÿĀ\ud800" * 30])
def test_ids_are_ranks_in_the_sorted_vocabulary(text):
    """The vectorised encoder gives each character its index in the sorted vocabulary (checked
    against a dictionary lookup), for ASCII, accented, astral-plane and control characters, and a lone surrogate."""
    d = CharData.from_text(text)
    lut = {c: i for i, c in enumerate(sorted(set(text)))}
    assert torch.cat([d.train, d.val]).tolist() == [lut[c] for c in text]
    assert d.decode(torch.cat([d.train, d.val])) == text
    with pytest.raises(ValueError, match="^text: 300 distinct"):
        CharData.from_text("".join(chr(0x4E00 + i) for i in range(300)))

"""The trained exercises (13.21, 13.22, proofs.kit.trained): their claim can fail, and bad input is
refused before the derivation or any training (the contract test covers the rest)."""

from __future__ import annotations

import math

import pytest
from helpers import cli_exit, require_corpus

from models.data.chars import CharData
from proofs import learned_positions, rmsnorm_swiglu
from proofs.kit import trained


def test_a_run_too_short_to_learn_context_fails_the_claim():
    """8 steps: the losses are below log V but not below the frequency-only loss, so the check fails."""
    require_corpus()
    res = learned_positions.check(device="cpu", steps=8, samples=10)
    assert not res.passed
    context = [c for c in res.claims if "< unigram" in c.claim]
    assert len(context) == 2 and not all(c.agrees for c in context)
    assert all(not c.agrees for c in res.controls if "log V" in c.claim)  # it did start to learn


def test_unigram_cross_entropy_is_that_of_the_character_frequencies():
    data = CharData.from_text("ab" * 500)
    assert trained.unigram_cross_entropy(data) == pytest.approx(math.log(2), abs=1e-2)  # add-one smoothing
    skewed = CharData.from_text("aaab" * 250)
    assert trained.unigram_cross_entropy(skewed) < math.log(2) - 0.1


@pytest.mark.parametrize("mod", [learned_positions, rmsnorm_swiglu])
@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--data", "/nonexistent/tiny.txt"], "--data"),
        (["--seed", str(2**63 - 1)], "--seed"),  # the CLI's range, beyond the trainer's
    ],
)
def test_bad_input_is_refused_before_any_work(mod, argv, flag, capsys, monkeypatch):
    monkeypatch.setattr(mod, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {flag}"), err


def test_a_corpus_shorter_than_a_block_is_refused(tmp_path, capsys, monkeypatch):
    short = tmp_path / "tiny.txt"
    short.write_text("abc")
    monkeypatch.setattr(learned_positions, "derivation", lambda: pytest.fail("ran the derivation first"))
    assert cli_exit(learned_positions, ["--data", str(short)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: --data: too short for the small run"), err

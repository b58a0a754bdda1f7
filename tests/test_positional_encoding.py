"""Exercise 13.6 (proofs.positional_encoding): the float64 demonstrations hold at any seed and their
controls are rejected, the saved full run is read and drawn when present and named when absent, and a
missing corpus is refused before any work (the contract test covers the default check and the flags)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import cli_exit, require_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from models.training.experiments import summarize
from models.utils.device import generator, one_thread
from proofs import positional_encoding as pe
from proofs.kit import trained
from proofs.kit.plotting import draw

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """As the check runs them: models of width 32 on one thread (OpenMP threads only contend on 2 busy cores)."""
    with one_thread():
        yield


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_demonstrations_hold_at_any_seed(seed):
    """No positions: the encoder permutes with its inputs and one causal layer ignores the earlier order;
    learned positions, or a second causal layer, change the outputs far beyond the tolerance."""
    gen = generator(CPU, seed)
    for findings in (pe.encoder_findings, pe.decoder_findings):
        claims, controls, _ = findings(3, gen, CPU)
        assert all(c.agrees for c in claims), [str(c) for c in claims]
        assert controls and not any(c.agrees for c in controls), [str(c) for c in controls]
        assert all(c.measured > 1e-3 for c in controls)  # far from the 1e-12 tolerance, not just past it


def test_the_two_sentences_pool_alike_only_without_positions():
    _, _, series = pe.encoder_findings(1, generator(CPU, 0), CPU)
    none, learned = series["pooled"]["none"], series["pooled"]["learned"]
    assert none.shape == (2, pe.SIZE["n_embd"]) and not torch.equal(none, learned)
    assert torch.allclose(none[0], none[1], rtol=0, atol=pe.TOL)
    assert not torch.allclose(learned[0], learned[1], rtol=0, atol=1e-3)


def test_a_decoder_sees_the_shuffle_from_its_second_layer_on():
    _, _, series = pe.decoder_findings(4, generator(CPU, 1), CPU)
    change = series["decoder_change"]
    assert set(change) == {(p, n) for p in ("none", "learned") for n in pe.LAYERS}
    assert float(change["none", 1].max()) <= pe.TOL
    assert all(float(change[k].min()) > 1e-3 for k in change if k != ("none", 1))


def _fake_saved(folder):
    """A results.json in the shape models.training.experiments writes, with made-up curves."""
    curves = {
        k: [[{"step": s, "train": v + 0.1, "val": v, "val_se": 0.01} for s, v in ((10, 2.5 + d), (20, 2.0 + d))]]
        for k, d in (("learned", 0.0), ("none", 0.02))
    }
    result = {
        "experiment": "nope",
        "exercise": "13.6",
        "preset": "cpu",
        "seeds": [1337],
        "train_config": {"max_iters": 20, "seed": 1337},
        "curves": curves,
        "summary": summarize(curves),
    }
    (folder / "nope").mkdir(parents=True)
    (folder / "nope" / "results.json").write_text(json.dumps(result))


@pytest.mark.parametrize("saved", [pytest.param(False, marks=pytest.mark.slow), True])  # the default check: absent
def test_the_saved_full_run_is_read_and_drawn_when_present(saved, tmp_path, monkeypatch):
    require_corpus()
    monkeypatch.setattr(trained, "DOCS", tmp_path / "docs")
    if saved:
        _fake_saved(tmp_path / "docs")
    res = pe.check(device="cpu", steps=8, samples=2, trials=2)
    notes = " ".join(res.notes)
    if saved:
        assert "saved full run (cpu preset, 20 steps" in notes and "(none − learned) +0.0200" in notes
    else:
        assert "no saved full run" in notes and "models.training.experiments nope" in notes
    assert "difference at step 8 (none − learned" in notes
    path = draw(pe, res, tmp_path / "f.png")
    assert path.stat().st_size > 5000
    assert len(pe.figure(res).axes) == (4 if saved else 3)


def test_a_missing_corpus_is_refused_before_any_work(capsys, monkeypatch):
    monkeypatch.setattr(pe, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(pe, ["--data", "/nonexistent/tiny.txt"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: --data"), err

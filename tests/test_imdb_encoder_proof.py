"""13.24's proof module: the check fails when the toy task is not learned, and the saved run reads."""

from proofs import imdb_encoder


def test_a_run_too_short_to_learn_fails_the_toy_claim():
    res = imdb_encoder.check(device="cpu", seed=0, steps=1, samples=20_000)
    toy = [c for c in res.claims if c.claim.startswith("toy task")]
    assert len(toy) == 1 and not toy[0].agrees and not res.passed
    assert all(c.agrees for c in res.claims if not c.claim.startswith("toy task"))


def test_saved_notes_name_every_model_and_the_paired_tests():
    saved = imdb_encoder.read_saved()
    if saved is None:  # an installed copy without docs/
        return
    lines = imdb_encoder.saved_notes(saved)
    assert all(name in lines[0] for name in saved["test_accuracy"])
    assert lines[1].startswith("McNemar") and lines[1].count("seed ") == len(saved["runs"])


def test_a_missing_saved_run_reads_as_none(tmp_path):
    assert imdb_encoder.read_saved(tmp_path / "absent.json") is None

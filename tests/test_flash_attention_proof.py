"""Exercise 13.10 (proofs.flash_attention): the derivation's statuses, a small check and its own bounds.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check passing with its
controls rejected, --json, --help, the figure, the declared bounds."""

import pytest

from derive.engine import DEFINITION, FROM_LEMMA, PROVED
from proofs import flash_attention as ex


def test_derivation_is_proved_but_for_the_induction_which_rests_on_its_lemma():
    d = ex.derivation()
    statuses = [s.status for s in d.steps]
    assert set(statuses) <= {PROVED, DEFINITION, FROM_LEMMA} and statuses.count(FROM_LEMMA) == 1
    assert statuses.count(PROVED) >= 12 and d.status == FROM_LEMMA
    assert any(a.startswith("Lemma (induction over blocks): ") for a in d.assumptions)


@pytest.mark.slow
def test_a_small_check_passes_with_every_control_rejected():
    res = ex.check(device="cpu", samples=1, tokens=150)
    assert res.passed and len(res.claims) == 14 and len(res.controls) == 4
    assert all(not c.agrees for c in res.controls)


def test_trial_gaps_and_ratios_at_tiny_sizes():
    """One causal trial at n = 13 with blocks 4 x 3: float64 gaps at rounding, float32 ratios under 2, and the
    unrescaled merge far off in both."""
    import torch

    from models.utils.device import generator
    from proofs.kit.options import settings

    o = settings(ex, "cpu", 1, 0, tokens=13, head_dim=4, block_q=4, block_k=3, max_tokens=64)
    row = ex.trial(o, generator("cpu", 0), torch.device("cpu"), True)
    assert max(row[f"f64 {q}"] for q in ex.QUANTITIES) <= ex.TOL64
    assert max(row[f"f32 {q} ratio"] for q in ex.QUANTITIES) <= ex.RULE
    assert max(row[f"bf16 {q} ratio"] for q in ex.QUANTITIES) <= ex.RULE
    assert row["control f64"] > 1e-3 and row["control f32 ratio"] > 100


def test_too_many_tiles_and_too_short_sweeps_are_refused_by_name():
    with pytest.raises(ValueError, match="^samples: "):  # the trials' tiles dominate
        ex.check(device="cpu", tokens=2048, block_q=1, block_k=1)
    with pytest.raises(ValueError, match="^max_tokens: "):  # the sweep's
        ex.check(device="cpu", tokens=16, max_tokens=8192, block_q=4, block_k=4)
    with pytest.raises(ValueError, match="^max_tokens: .*at least 2 head_dim"):  # n^2 would not dominate yet
        ex.check(device="cpu", max_tokens=512, head_dim=64)

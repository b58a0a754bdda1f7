"""numeric.goodness: the chi-square test's false-alarm rate and power are what it states."""

import numpy as np
import pytest

from numeric.goodness import chi_square, pooled, samples_for_effect

LAW = np.array([0.32, 0.14, 0.05, 0.14, 0.16, 0.07, 0.08, 0.04])


def test_false_alarm_rate_under_the_true_law():
    """2,000 seeded multinomial samples of 500 from the law itself, tested at rate 0.05: about 100
    rejections (binomial sd 9.7). Allowed 100 +- 50, a band a correct test leaves with probability < 1e-6."""
    rng = np.random.default_rng(0)
    rejected = sum(not chi_square(rng.multinomial(500, LAW), LAW, "null", 0.05).agrees for _ in range(2000))
    assert 50 <= rejected <= 150


def test_power_at_the_stated_sample_size():
    """A law off by Cohen's w = 0.25 is rejected at the size samples_for_effect gives for power 0.99:
    in 300 seeded trials at least 285 rejections (expected 297; binomial sd 1.7)."""
    wrong = LAW + 0.03 * np.array([1, -1, 1, -1, 1, -1, 1, -1])
    w = float(np.sqrt(((wrong - LAW) ** 2 / LAW).sum()))
    n = samples_for_effect(len(LAW) - 1, w, 1e-3, 1e-2)
    rng = np.random.default_rng(1)
    rejected = sum(not chi_square(rng.multinomial(n, wrong), LAW, "off", 1e-3).agrees for _ in range(300))
    assert rejected >= 285, (n, w, rejected)


def test_a_count_where_the_law_has_none_is_rejected():
    r = chi_square([10, 5, 1], [0.6, 0.4, 0.0], "impossible cell", 1e-3)
    assert not r.agrees and r.p_value == 0


def test_small_cells_are_pooled_and_bad_input_refused():
    obs, exp = pooled([100, 1, 1, 1], [0.97, 0.01, 0.01, 0.01])
    assert obs.tolist() == [100, 3] and exp.sum() == pytest.approx(103)
    with pytest.raises(ValueError, match="^probs:"):
        chi_square([1, 2], [0.5, 0.6], "x", 0.01)
    with pytest.raises(ValueError, match="^rate:"):
        chi_square([1, 2], [0.5, 0.5], "x", 1.5)


def test_the_exercise_sample_size_meets_its_stated_power():
    from proofs import speculative_decoding as sd

    cells = sd.OPTIONS[1].default ** sd.OPTIONS[2].default  # vocab^positions at the defaults
    assert sd.DEFAULT_SAMPLES >= samples_for_effect(cells - 1, sd.W_MIN, sd.FALSE_ALARM, sd.MISS)

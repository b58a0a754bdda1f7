"""Exercise 13.3: Var(q.k) = d_k: derivation proved, check passes, controls rejected, CLI, bad input."""

import json
import math

import pytest
from helpers import cli_exit
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import FROM_LEMMA, PROVED
from derive.moments import INDEX_LEMMA, component_moment, dot_fourth_moment
from numeric.stats import samples_for_power
from proofs import dot_product_variance as mod


def test_every_step_is_proved_or_proved_from_the_stated_lemma():
    d = mod.derivation()
    assert len(d.steps) == 13
    # the steps over a symbolic number d_k of terms (Var(q.k), E[(q.k)^4]) and the two that use them
    from_lemma = [s for s in d.steps if s.status == FROM_LEMMA]
    assert len(from_lemma) == 4 and all(INDEX_LEMMA in s.note for s in from_lemma)
    assert all(s.status == PROVED for s in d.steps if s not in from_lemma)
    assert sum(a.startswith(INDEX_LEMMA + ": ") for a in d.assumptions) == 1
    assert not any("in words" in s.note for s in d.steps)  # no premise applied without being stated
    assert any("d_k" in a for a in d.assumptions) and d.to_dict()["status"] == FROM_LEMMA
    assert "rests on what" in mod.__doc__ and INDEX_LEMMA.split(" (")[0] in mod.__doc__


@pytest.fixture(scope="module")
def default_check():
    return mod.check(device="cpu", seed=0)


@pytest.mark.slow
def test_default_check_passes_and_controls_are_rejected(default_check):
    res = default_check
    assert res.passed, res.text()
    grid = [2**j for j in range(11)]
    assert len(res.claims) == 2 * 3 * len(grid) and all(c.agrees for c in res.claims)
    # controls skip d_k = 1 (both wrong values equal d_k there) and all are rejected
    assert len(res.controls) == 2 * 3 * (len(grid) - 1) and not any(c.agrees for c in res.controls)
    assert not any("d_k=1:" in c.claim for c in res.controls)
    z_tests = [c for c in res.claims + res.controls if "X^2 constant" not in c.claim]
    assert len(z_tests) == len(res.claims) + len(res.controls) - 2  # rademacher d_k = 1: the exact bound
    assert all(c.rate == mod.RATE and c.z_crit > 6.1 for c in z_tests)
    assert [(r["dist"], r["d_k"]) for r in res.table][:2] == [("gaussian", 1), ("gaussian", 2)]
    assert {"dist", "d_k", "estimate", "stderr", "z"} <= set(res.table[0])
    assert any("Bonferroni" in n for n in res.notes) and res.samples >= mod.samples_needed(mod.DISTRIBUTIONS, grid)[0]


@pytest.mark.slow
def test_stderr_matches_the_derived_fourth_moment(default_check):
    """The sample-moment standard error agrees with sqrt((E[X^4] - d^2)/N) from derive.moments (to 25 %)."""
    for row in default_check.table:
        m4 = component_moment(row["dist"], 4)
        exact = math.sqrt(float(dot_fourth_moment(row["d_k"], m4, m4)) - row["d_k"] ** 2) / math.sqrt(
            default_check.samples
        )
        if exact == 0:  # Rademacher at d_k = 1: X^2 = 1 exactly; only the sample mean moves the estimate
            assert row["stderr"] < 10 / default_check.samples**0.5 * 0.01, row
            continue
        assert 0.75 < row["stderr"] / exact < 1.25, row


def test_power_requirement_is_enforced():
    need, where = mod.samples_needed(["gaussian"], [1, 2, 4])
    assert where.startswith("gaussian, d_k=2")  # the sqrt(d_k) control at d_k = 2 is the smallest gap
    cv = math.sqrt(2 * 2 * (2 + 3)) / 2  # Gaussian: sqrt(2 d (d + 3)) / d at d = 2
    assert need == samples_for_power(1 - 1 / math.sqrt(2), cv, mod.RATE, mod.MISS)
    with pytest.raises(ValueError, match="^samples: need at least"):
        mod.check(device="cpu", samples=need - 1, max_dk=4, dists="gaussian")


def test_same_seed_same_numbers():
    a = mod.check(device="cpu", samples=7000, seed=3, max_dk=4, dists="uniform")
    b = mod.check(device="cpu", samples=7000, seed=3, max_dk=4, dists="uniform")
    assert a.table == b.table and a.passed


@given(d=st.integers(2, 2**20))
def test_wrong_values_differ_from_dk(d):
    assert all(abs(w - d) / d >= 1 - 1 / math.sqrt(2) - 1e-12 for w in mod.wrong_values(d).values())


def test_json_cli_reports_a_verdict(capsys):
    assert mod.main(["--json", "--max-dk", "8", "--dists", "gaussian,rademacher"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.3" and out["verdict"] == "PASS"
    assert out["derivation"]["status"] == FROM_LEMMA and out["check"]["verdict"] == "PASS"
    assert len(out["check"]["controls"]) == 2 * 2 * 3


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--samples", "100"], "--samples: need at least"),
        (["--max-dk", "1000"], "--max-dk: must be a power of two"),
        (["--max-dk", str(10**12)], "--max-dk: must be at most 65,536"),
        (["--samples", "600000", "--max-dk", "2048"], "--samples: samples x max_dk x distributions"),
        (["--dists", "cauchy"], "--dists"),
        (["--dists", "gaussian,gaussian"], "--dists: each at most once"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    """The exercise's own rules (the contract test covers the declared bounds of every exercise)."""
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.gpu
def test_check_passes_on_cuda():
    res = mod.check(device="cuda", seed=0)
    assert res.passed and res.device.startswith("cuda"), res.text()


def test_rademacher_dk1_does_not_false_alarm_across_seeds():
    """X^2 = 1 exactly for Rademacher d_k = 1: the z-test's stderr is degenerate there, so the check
    uses the exact bound on s^2; a z-test there failed for about 7 % of seeds."""
    from proofs import dot_product_variance as mod

    fails = [s for s in range(40) if not mod.check(device="cpu", seed=s, max_dk=2, dists="rademacher").passed]
    assert fails == []
    res = mod.check(device="cpu", seed=0, max_dk=2, dists="rademacher")
    assert any("X^2 constant" in c.claim for c in res.claims)

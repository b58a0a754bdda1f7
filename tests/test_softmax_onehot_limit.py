"""Exercise 13.28: unscaled softmax tends to one-hot: derivation proved, check passes and can fail, own rules.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check
passing with its controls rejected, --json, --help, the figure, the declared bounds."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import PROVED
from models.utils.device import generator
from numeric.stats import Estimate
from proofs import softmax_onehot_limit as mod
from proofs.kit.options import settings


@pytest.fixture(scope="module")
def derived():
    return mod.derivation()


def test_every_step_is_proved(derived):
    d = derived
    assert len(d.steps) >= 12
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)
    assert any(s.relation == "->" for s in d.steps) and len(d.assumptions) == 4


@pytest.fixture(scope="module")
def default_check():
    return mod.check(device="cpu", seed=0)


@pytest.mark.slow
def test_default_check_demonstrates_the_trend(default_check):
    res = default_check
    n_steps = len(mod._grid(1024)) - 1
    assert len(res.claims) == 2 * n_steps + 3 and len(res.controls) == 4
    rows = [r for r in res.table if r["d_k"] != "∞"]
    w = [r["w"] for r in rows]
    assert w == sorted(w) and rows[-1]["J"] < rows[0]["J"]  # the trend the one-sided tests demonstrate
    assert all(0.2 < r["ws"] < 0.3 for r in rows)  # the scaled weight stays soft (n = 16)
    assert any("Bonferroni" in n for n in res.notes) and res.samples == mod.DEFAULT_SAMPLES


def test_claims_can_fail():
    """A stated bound that is too tight (1 - E[max p] < 0.01 at d_k = 64) is rejected, so the verdict is FAIL."""
    res = mod.check(device="cpu", samples=500, seed=1, max_dk=64, within=0.01)
    bound = [c for c in res.claims if "below the stated" in c.claim]
    assert len(bound) == 1 and not bound[0].agrees and res.verdict == "FAIL"


def test_one_sided_test_directions():
    z = mod.z_for(2 * mod.RATE)
    assert mod.one_sided(Estimate(1.0, 1 / (z + 0.1), 100), ">", 0, "up").agrees
    assert not mod.one_sided(Estimate(1.0, 1 / (z - 0.1), 100), ">", 0, "up").agrees
    assert not mod.one_sided(Estimate(-1.0, 0.01, 100), ">", 0, "up").agrees  # wrong direction never agrees
    assert mod.one_sided(Estimate(-1.0, 0.01, 100), "<", 0, "down").agrees
    assert "one-sided" in str(mod.one_sided(Estimate(1.0, 0.1, 9), "<", 2, "x"))


@given(logits=st.lists(st.floats(-50, 50), min_size=2, max_size=24))
def test_jacobian_norm_closed_form_matches_direct(logits):
    """||diag(p) - p p^T||_F from the derived closed form equals the direct matrix norm (float64)."""
    s = torch.tensor([logits], dtype=torch.float64)
    w, fro = mod._softmax_stats(s)
    p = torch.softmax(s, -1)[0]
    direct = torch.linalg.matrix_norm(torch.diag(p) - torch.outer(p, p))
    assert abs(fro.item() - direct.item()) <= 1e-7 and w.item() == p.max().item()


def test_nested_scores_are_deterministic_and_paired():
    a = mod.measure(300, [4, 16], 8, generator("cpu", 5), "gaussian")
    b = mod.measure(300, [4, 16], 8, generator("cpu", 5), "gaussian")
    assert {k: v.mean for k, v in a.items()} == {k: v.mean for k, v in b.items()}
    # the paired difference has the same mean as the difference of the means
    assert abs(a["dw", 16].mean - (a["w", 16].mean - a["w", 4].mean)) < 1e-12


def test_json_cli_reports_a_verdict(capsys):
    assert mod.main(["--json", "--max-dk", "64", "--samples", "600", "--within", "0.3", "--keys", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.28" and out["verdict"] == "PASS"
    assert out["derivation"]["status"] == PROVED and out["check"]["verdict"] == "PASS"
    assert {c["kind"] for c in out["check"]["claims"]} == {"OneSided", "Verdict"}


def test_figure_draws_the_check_result_without_rerunning(monkeypatch):
    res = mod.check(device="cpu", samples=300, max_dk=64, within=0.3)
    monkeypatch.setattr(mod, "measure", lambda *a, **k: pytest.fail("the figure measured again"))
    fig = mod.figure(res)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2


@pytest.mark.parametrize(
    "options, want",
    [
        ({"samples": 50}, "samples: need at least 100"),
        ({"max_dk": 32}, "max_dk: must be a power of 4"),
        ({"max_dk": 80}, "max_dk: must be a power of 4"),
        ({"keys": 1024, "max_dk": 4096}, "samples: samples x keys x max_dk"),
        ({"within": 0.0}, "within: must lie in"),
        ({"within": 1}, "within: must lie in"),
        ({"dist": "cauchy"}, "dist: must be one of"),
    ],
)
def test_own_rules_refuse_naming_the_option(options, want):
    """The exercise's own rules (the contract test covers every exercise's declared bounds)."""
    with pytest.raises(ValueError, match=f"^{want}"):
        settings(mod, **options)


@pytest.mark.gpu
def test_check_passes_on_cuda():
    res = mod.check(device="cuda", seed=0)
    assert res.passed and res.device.startswith("cuda"), res.text()

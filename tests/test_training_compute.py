"""Exercise 13.13: C = 6 N D; answers, FlopCounterMode checks, controls, CLI.

Expected numbers are computed by hand with Python integers and fractions (or are published
figures), never through derive.counts or the module's sympy expressions."""

import json
from fractions import Fraction

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from derive.engine import PROVED
from models.gpt import swiglu_hidden
from proofs import training_compute as ex

C13 = 6 * 13 * 10**9 * 2 * 10**12  # 1.56e23


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status == PROVED for s in dx.steps)
    assert len(dx.steps) >= 12


def test_answers_by_hand():
    assert C13 == 156 * 10**21
    assert ex.training_flops(13e9, 2e12) == C13
    pf = Fraction(C13, 10**15 * 86400)
    assert ex.pf_days(C13) == pf and round(float(pf)) == 1806
    hours = Fraction(C13) / (Fraction(312 * 10**12) * Fraction(2, 5) * 3600)
    assert ex.gpu_hours(C13, 312, 0.4) == hours and round(float(hours)) == 347_222
    assert abs(float(hours) / 1024 / 24 - 14.13) < 0.01
    h100 = Fraction(C13) / (Fraction(989 * 10**12) * Fraction(2, 5) * 3600)
    assert ex.gpu_hours(C13, 989, 0.4) == h100
    statements = " ".join(s["statement"] for s in ex.derivation().to_dict()["steps"])
    assert "156000000000000000000000" in statements and "16250/9" in statements and "3125000/9" in statements


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10**15), st.integers(1, 10**15), st.integers(1, 2000), st.integers(1, 100))
def test_formulas_match_fractions(n, d, peak, pct):
    assert ex.training_flops(float(n), float(d)) == 6 * Fraction(float(n)) * Fraction(float(d))
    c = 6 * n * d
    assert ex.gpu_hours(c, float(peak), pct / 100) == Fraction(c) / (peak * 10**12 * Fraction(pct, 100) * 3600)


def test_linear_layer_costs_2_then_4_per_weight():
    """One bare nn.Linear, independent of the GPT: forward 2ab, backward 4ab per row (dX and dW). If the
    input needs no gradient (the very first layer of a network on raw data), backward is only dW: 2ab."""
    a, b, rows = 24, 40, 7
    lin = torch.nn.Linear(a, b, bias=False)
    for needs_dx, bwd_per_row in ((True, 4 * a * b), (False, 2 * a * b)):
        x = torch.randn(rows, a, requires_grad=needs_dx)
        with FlopCounterMode(display=False) as f:
            y = lin(x).sum()
        with FlopCounterMode(display=False) as g:
            y.backward()
        assert f.get_total_flops() == 2 * a * b * rows
        assert g.get_total_flops() == bwd_per_row * rows


def _fwd_by_hand(style, L, d, V, n):
    mlp = 3 * d * swiglu_hidden(d) if "LLaMA" in style else 8 * d * d
    return 2 * (L * (4 * d * d + mlp) + V * d) + 4 * L * n * d


def test_default_check_numbers():
    res = ex.check(device="cpu")
    assert len(res.controls) >= 7
    exact = [c for c in res.claims if c.tol == 0]
    assert len(exact) >= 8 and all(c.measured == c.target for c in exact)
    words = " ".join(c.claim for c in res.controls)
    for w in ("backward = forward", "'2N for training'", "no attention term", "an hour"):
        assert w in words
    assert sum("6N ~ 1" in c.claim for c in res.claims) == 2
    for r in res.table:
        assert r["bwd/fwd"] == 2
        assert r["fwd/token"] == _fwd_by_hand(r["model"], 2, 256, 65, 32)
        assert r["(fwd+bwd)/token"] == 3 * r["fwd/token"] == r["6N_matmul"] + r["12Lnd"]
        assert abs(r["/6N"] - 1) < 0.05
    assert any("1.56e+23 FLOPs = 1,806 PF-days = 347,222 GPU-hours" in n and "14.1 days" in n for n in res.notes)


def test_gpt3_anchor():
    pf = 6 * 175e9 * 300e9 / (1e15 * 86400)
    assert abs(pf / 3640 - 1) < 0.01  # Brown et al. 2020, table D.1: 3.64e3 PF-days
    res = ex.check(device="cpu", layers=1, width=32, context=8)
    (g3,) = [c for c in res.claims if "GPT-3" in c.claim]
    assert g3.agrees and abs(g3.measured - pf / 3640) < 1e-12


def test_long_context_drops_the_6n_claim():
    """At n_ctx >> d the attention term is not small: no 'about 6N' claim, and the check still passes."""
    res = ex.check(device="cpu", layers=1, width=16, heads=2, context=256)
    assert res.passed
    assert not any("6N ~ 1" in c.claim for c in res.claims)
    assert sum("no 'about 6N' claim" in n for n in res.notes) == 2
    assert all(r["/6N"] > 1 + ex.EPS for r in res.table)


def test_other_values_on_the_command_line(capsys):
    argv = ["--params", "7e9", "--tokens", "1e12", "--peak-tflops", "989", "--mfu", "0.5", "--gpus", "256", "--json"]
    assert ex.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["exercise"] == "13.13"
    c = 6 * 7 * 10**9 * 10**12
    hours = c / (989e12 * 0.5 * 3600)
    note = [n for n in out["check"]["notes"] if n.startswith("Answer")][0]
    assert f"{c:.4g}" in note and f"{hours:,.0f} GPU-hours" in note and f"{hours / 256 / 24:,.1f} days" in note


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"params": 0}, "params"),  # the declared bounds are closed; 0 is refused here
        ({"tokens": 0.0}, "tokens"),
        ({"mfu": 0}, "mfu"),
        ({"peak_tflops": 0}, "peak_tflops"),
        ({"heads": 3}, "heads"),  # does not divide 256
        ({"width": 12, "heads": 4}, "heads"),  # head size 3: odd, no RoPE
        ({"width": 8, "heads": 16}, "heads"),  # more heads than width
    ],
)
def test_rules_raise_naming_the_option(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.check(device="cpu", **opts)


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--heads", "5"], "error: --heads: must divide --width=256, got 5"),
        (["--params", "0"], "error: --params: must be above 0, got 0"),
        (["--samples", str(10**12)], "error: --samples: must be at most 64 ("),
        (
            ["--samples", "8", "--context", "512", "--vocab", "100000"],
            "error: --samples: the measured steps would hold",
        ),
        (["--samples", "64", "--layers", "12", "--width", "1024", "--context", "512"], "would take"),
    ],
)
def test_cli_refuses_in_one_line_before_any_work(argv, name, capsys, monkeypatch):
    monkeypatch.setattr(ex, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(ex, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in lines[0]

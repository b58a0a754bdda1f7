"""Exercise 13.11: attention for Q = K = V = I_2, d_k = 2: the answer, cross-checks, controls, its own rule.

Every answer is compared with numbers computed here independently: numpy's softmax of the padded
matrices, or math.exp, never the module's own sympy closed form. The contract test covers what every
exercise shares (default check, --json, --help, figure, declared bounds)."""

import math

import numpy as np
import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from proofs import attention_by_hand as mod
from proofs.kit import options

# the exercise's answer, from mpmath at 30 digits: e^(1/sqrt 2)/(e^(1/sqrt 2) + 1) and its complement
DIAG, OFF = 0.669761549326656925616794945834, 0.330238450673343074383205054166
UNSCALED = 0.731058578630004879251159241822  # e/(e + 1)


def numpy_attention(n: int, dk: int, scale: float | None = None) -> np.ndarray:
    """softmax(Q K^T * scale) V in numpy float64 for Q = K = [I_n | 0], V = I_n."""
    q = np.eye(n, dk)
    s = q @ q.T * (1 / math.sqrt(dk) if scale is None else scale)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ np.eye(n)


def test_answer_at_the_exercise_values():
    assert mod.derivation().status == PROVED
    res = mod.check(device="cpu")
    rows = {r["entry"]: r for r in res.table}
    assert rows["diagonal"]["value"] == pytest.approx(DIAG, abs=1e-16)
    assert rows["off-diagonal"]["value"] == pytest.approx(OFF, abs=1e-16)
    assert rows["diagonal"]["exact"] == "exp(sqrt(2)/2)/(1 + exp(sqrt(2)/2))"
    assert round(rows["diagonal"]["value"], 4) == 0.6698 and round(rows["off-diagonal"]["value"], 4) == 0.3302
    np.testing.assert_allclose(numpy_attention(2, 2), [[DIAG, OFF], [OFF, DIAG]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(mod.exact_matrix(2, 2).numpy(), [[DIAG, OFF], [OFF, DIAG]], rtol=0, atol=1e-16)
    # two implementations x two dtypes; three wrong answers for each float64 implementation
    assert len(res.claims) == 4 and len(res.controls) == 6
    unscaled = next(c for c in res.controls if "no 1/sqrt" in c.claim)
    assert unscaled.measured == pytest.approx(UNSCALED - DIAG, abs=1e-15)  # the gap is the scaling's effect
    np.testing.assert_allclose(mod.exact_matrix(2, 2, scale=1).numpy(), numpy_attention(2, 2, 1.0), atol=1e-15)


@pytest.mark.slow
@settings(max_examples=25)
@given(n=st.integers(2, 24), extra=st.integers(0, 40))
def test_any_size_matches_numpy_and_passes(n, extra):
    dk = n + extra
    res = mod.check(device="cpu", n=n, dk=dk)
    assert res.passed, res.text()
    want = numpy_attention(n, dk)
    rows = {r["entry"]: r["value"] for r in res.table}
    assert rows["diagonal"] == pytest.approx(want[0, 0], rel=1e-14)
    assert rows["off-diagonal"] == pytest.approx(want[0, 1], rel=1e-14)
    z = math.exp(1 / math.sqrt(dk))
    assert rows["diagonal"] == pytest.approx(z / (z + n - 1), rel=1e-14)


def test_check_can_fail_when_the_implementation_forgets_the_scaling(monkeypatch):
    """The cross-check is not vacuous: attention without 1/sqrt(d_k) makes the claim disagree."""

    def unscaled(q, k, v):
        return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v

    monkeypatch.setattr(mod, "by_hand", unscaled)
    res = mod.check(device="cpu")
    assert not res.passed
    bad = [c for c in res.claims if "models.attention" in c.claim]
    assert bad and not any(c.agrees for c in bad)
    assert all(c.agrees for c in res.claims if "F.scaled_dot_product_attention" in c.claim)


def test_tolerance_is_a_rounding_bound():
    assert mod.tolerance(2, 2, torch.float64) < 1e-14
    assert mod.tolerance(2, 2, torch.float32) < 1e-5


def test_the_key_width_must_hold_the_identity_block(capsys):
    """d_k >= n (Q = [I_n | 0]): refused on every path, naming --dk on the command line."""
    with pytest.raises(ValueError, match=r"^dk: must be at least n = 3 \(Q holds I_n\), got 2$"):
        options.settings(mod, n=3, dk=2)
    assert options.settings(mod, n=3, dk=3).dk == 3
    assert cli_exit(mod, ["--n", "5", "--dk", "4"]) == 2
    assert capsys.readouterr().err.strip() == "error: --dk: must be at least n = 5 (Q holds I_n), got 4"

"""Exercise 13.32: the cost model (derive.attention_cost), its derivation, the FLOP counter on the
implementation, the check with its negative controls, the figure and the exercise's own rules.

The contract test (tests/test_contract.py) covers what every exercise shares: the default check
passing with its controls rejected, --json, --help, the figure, the declared bounds."""

import json

import pytest
import sympy as sp
import torch
from torch.utils.flop_counter import FlopCounterMode

from derive import PROVED
from derive import attention_cost as cost
from models.performer import exact_attention, favor_attention, orthogonal_gaussian
from proofs import performer_complexity as pc
from proofs.kit.options import settings

SMALL = {"max_n": 512, "samples": 12}  # a quick check: n = 64..512, 12 redraws per r


def _flops(fn):
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn()
    return fc.get_total_flops()


def test_derivation_all_proved_and_renders():
    d = pc.derivation()
    assert d.all_proved, [(s.reason, s.status) for s in d.steps if s.status != PROVED]
    assert len(d.steps) >= 25
    text = d.text()
    for phrase in ("associativity", "positive root", "Θ(n r d)", "Θ(n^2 d)", "log-log slope -1/2"):
        assert phrase in text
    assert json.loads(json.dumps(d.to_dict()))["status"] == PROVED
    assert d.latex_document().startswith("\\documentclass")


def test_cost_model_shapes():
    n, d, r = cost.n, cost.d, cost.r
    assert sp.expand(cost.exact_time() - (4 * n**2 * d + 6 * n**2)) == 0
    assert sp.expand(cost.favor_matmul_flops() - (8 * n * r * d + 2 * n * r)) == 0
    assert cost.loglog_slope(cost.favor_time()) == 1 and cost.loglog_slope(cost.exact_time()) == 2
    ns = cost.crossover()
    assert sp.simplify(cost.exact_time().subs(n, ns) - cost.favor_time().subs(n, ns)) == 0
    assert sp.limit(cost.crossover(cost.exact_matmul_flops(), cost.favor_matmul_flops()) / r, d, sp.oo) == 2


@pytest.mark.parametrize("shape, n, d, r", [((), 50, 8, 16), ((), 7, 5, 3), ((2, 3), 40, 16, 24), ((4,), 33, 12, 64)])
def test_flop_counter_equals_symbolic_matmul_terms(shape, n, d, r):
    # FlopCounterMode counts mm/bmm/addmm/baddbmm at 2 FLOPs per multiply-add; batch and heads multiply.
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, n, d, generator=g) for _ in range(3))
    w = orthogonal_gaussian(r, d, g)
    heads = int(torch.tensor(shape).prod()) if shape else 1
    sub = {cost.n: n, cost.d: d, cost.r: r}
    assert _flops(lambda: favor_attention(q, k, v, w)) == heads * int(cost.favor_matmul_flops().subs(sub))
    assert _flops(lambda: exact_attention(q, k, v)) == heads * int(cost.exact_matmul_flops().subs(sub))


def test_largest_tensor_is_never_n_by_n():
    n, d, r = 300, 16, 32
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(n, d, generator=g) for _ in range(3))
    w = orthogonal_gaussian(r, d, g)
    assert pc.counted(lambda: favor_attention(q, k, v, w))[1] == n * r
    assert pc.counted(lambda: exact_attention(q, k, v))[1] == n * n


def test_fit_slope():
    s, se = pc.fit_slope([1, 2, 4, 8], [3, 12, 48, 192])
    assert abs(s - 2) < 1e-12
    s, se = pc.fit_slope([16, 64, 256], [0.4, 0.2, 0.1], [0.05, 0.05, 0.05])
    assert abs(s + 0.5) < 1e-12 and se > 0


@pytest.fixture(scope="module")
def small_check():
    return pc.check(device="cpu", seed=0, **SMALL)


def test_check_passes_with_fixed_seed(small_check):
    res = small_check
    assert res.passed, res.text()
    assert res.samples == SMALL["samples"] and res.device.startswith("cpu")
    assert [row["n"] for row in res.table] == [64, 128, 256, 512]
    assert any("Crossover" in note for note in res.notes)
    assert any("not asserted" in note.lower() for note in res.notes)


def test_negative_controls_rejected(small_check):
    ctrl = {c.claim: c for c in small_check.controls}
    assert len(ctrl) >= 5 and not any(c.agrees for c in ctrl.values())
    assert any("grow like n^2" in k for k in ctrl)
    assert any("does not fall with r" in k for k in ctrl)
    assert any("trigonometric" in k for k in ctrl)


def test_figure_draws_the_check_result_without_measuring(small_check, monkeypatch):
    for part in ("_cost_part", "_error_part", "median_time"):
        monkeypatch.setattr(pc, part, lambda *a, **k: pytest.fail("the figure measured again"))
    fig = pc.figure(small_check)
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 4  # counted and modelled, for both methods


def test_unset_max_n_is_the_devices_default():
    assert settings(pc, device="cpu").max_n is None
    assert pc._max_n(None, torch.device("cpu")) == 2048 and pc._max_n(None, torch.device("cuda")) == 16384
    assert pc._max_n(256, torch.device("cpu")) == 256


@pytest.mark.parametrize(
    "kwargs, start",
    [
        ({"samples": 1}, "samples: need at least 2 feature redraws"),
        ({"max_n": 10}, "max_n: must be at least 128"),
        ({"max_n": 0}, "max_n: must be at least 128"),
        ({"max_n": 1000}, "max_n: must be 64 times a power of two"),
        ({"max_n": 1 << 15}, "max_n: on the CPU at most 16,384 ("),  # ~12 GB of n x n scores: a GPU's size
        ({"max_n": 1 << 14, "dim": 256, "features": 8192}, "max_n: on the CPU, max_n 16,384 "),  # ~16 minutes
        ({"samples": 1000, "dim": 256}, "samples: on the CPU, max_n 2,048 "),
    ],
)
def test_own_rules_refuse_before_any_work(kwargs, start):
    """The exercise's own rules (the contract test covers every exercise's declared bounds)."""
    with pytest.raises(ValueError) as e:
        settings(pc, device="cpu", **kwargs)
    assert str(e.value).startswith(start)


@pytest.mark.gpu
def test_check_passes_on_cuda():
    res = pc.check(device="cuda", seed=0)
    assert res.passed, res.text()
    assert res.device.startswith("cuda")

"""Exercise 13.29: forward FLOPs per token ~ 2N; derivation, exact FlopCounter checks, controls, CLI."""

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive import counts
from derive.engine import PROVED
from models.gpt import GPT, GPTConfig, swiglu_hidden
from numeric import gpt_flops
from numeric.gpt_flops import counted_gpt, decode_flops, forward_flops, linear_weights
from proofs import inference_flops as ex
from proofs.kit.plotting import draw


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status == PROVED for s in dx.steps)
    assert len(dx.steps) >= 12


@pytest.mark.slow
def test_default_check_numbers():
    res = ex.check(device="cpu")
    exact = [c for c in res.claims if c.tol == 0]
    assert len(exact) >= 20 and all(c.measured == c.target for c in exact)
    kinds = " ".join(c.claim for c in res.controls)
    for word in ("6N", "/ N", "Kaplan's causal term", "no attention term", "long context"):
        assert word in kinds
    for row in res.table:  # the full forward pays the whole n x n matrix: per token 2N + 2dV + 4 L n d
        assert row["fwd/token"] == row["2N"] + row["2dV"] + row["4Lnd"]


def test_short_grid_notes_missing_long_context_control():
    res = ex.check(device="cpu", widths="128", contexts="8,16", layers=1)
    assert res.passed
    assert any("long enough" in n for n in res.notes)


def test_approximation_claim_can_fail():
    """At a long context the 'about 2N' comparison rejects: the check is not vacuous."""
    res = ex.check(device="cpu", widths="16", contexts="128", layers=1)
    long = [c for c in res.controls if "long context" in c.claim]
    assert long and not long[0].agrees and long[0].measured > 1 + ex.EPS


@settings(max_examples=12, deadline=None)
@given(
    width=st.sampled_from([8, 16, 24, 32]),
    n=st.integers(1, 20),
    layers=st.integers(1, 2),
    mlp=st.sampled_from(["gelu", "swiglu"]),
    n_kv=st.sampled_from([None, 2, 1]),
    bias=st.booleans(),
    tie=st.booleans(),
)
def test_flop_counter_matches_formula_for_any_switches(width, n, layers, mlp, n_kv, bias, tie):
    cfg = GPTConfig(
        block_size=32,
        vocab_size=13,
        n_layer=layers,
        n_head=4,
        n_embd=width,
        n_kv_head=n_kv,
        mlp=mlp,
        bias=bias,
        tie_weights=tie,
        attn="manual",
    )
    m = GPT(cfg).eval()
    d_ff = swiglu_hidden(width) if mlp == "swiglu" else None
    N = layers * counts.block_matmul_params(width, 4, mlp, cfg.n_kv_head, d_ff)
    idx = torch.randint(0, 13, (1, 32), generator=torch.Generator().manual_seed(n))
    want = n * counts.forward_flops_per_token(N, layers, n, width, 13, "dense")
    assert forward_flops(m, idx[:, :n]) == int(want)  # bias adds are not counted by FlopCounterMode
    t = n - 1
    want_t = counts.forward_flops_per_token(N, layers, t + 1, width, 13, "dense")
    assert decode_flops(m, idx, t) == int(want_t)
    assert linear_weights(m.h) == int(N)


def test_forward_plus_backward_is_three_forwards():
    """The training rule 6N: FlopCounterMode counts backward as twice the forward."""
    from torch.utils.flop_counter import FlopCounterMode

    m = counted_gpt(1, 32, ex.N_HEAD, 16, ex.VOCAB, "cpu")
    idx = torch.randint(0, ex.VOCAB, (1, 16), generator=torch.Generator().manual_seed(0))
    fwd = forward_flops(m, idx)
    with FlopCounterMode(display=False) as fc:
        m(idx, idx)[1].backward()
    assert fc.get_total_flops() == 3 * fwd


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"widths": "30"}, "widths"),  # not a multiple of the 4 heads
        ({"widths": "a,b"}, "widths"),
        ({"widths": "0"}, "widths"),
        ({"widths": ","}, "widths"),  # empty entries are skipped: none is left
        ({"contexts": "0"}, "contexts"),
        ({"contexts": ""}, "contexts"),
        ({"contexts": "99999"}, "contexts"),
        ({"contexts": ",".join(str(n) for n in range(1, 18))}, "contexts"),  # 17 distinct values
        ({"samples": 2}, "samples"),  # first, middle and last position at least
        ({"contexts": "8,64", "samples": 9}, "samples"),  # more positions than the shortest context
    ],
)
def test_bad_options_raise_naming_the_option(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.check(device="cpu", **opts)


def test_figure_draws_the_result_without_measuring_again(tmp_path, monkeypatch):
    res = ex.check(device="cpu", widths="32", contexts="8,64")
    monkeypatch.setattr(gpt_flops, "count_flops", lambda fn: pytest.fail("the figure measured again"))
    path = draw(ex, res, tmp_path / "f.png")
    assert path.stat().st_size > 5000


@pytest.mark.parametrize(
    "argv, want",
    [
        (["--contexts", "16,x"], "--contexts: expected comma-separated integers, got '16,x'"),
        (["--widths", str(10**12)], "--widths: each must be at most 2,048"),
        (["--contexts", str(10**12)], "--contexts: each must be at most 2,048"),
        (["--contexts", ",".join(str(n) for n in range(1, 18))], "--contexts: at most 16 distinct values"),
        (["--samples", str(10**12)], "--samples: must be at most 2,048 ("),
        (["--widths", "2048", "--layers", "24"], "--layers: widths 2048"),  # ~9.7 GB of weights
        (["--widths", "64,128,256", "--contexts", "2048", "--samples", "2048"], "--samples: widths 64,128,256"),
    ],
)
def test_sizes_beyond_the_budget_are_refused_in_one_line(argv, want, capsys, monkeypatch):
    monkeypatch.setattr(ex, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and want in err and "Traceback" not in err

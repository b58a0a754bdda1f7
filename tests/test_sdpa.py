"""Exercises 13.19 and 13.20: attention by hand equals torch's, and the GPT's two attention paths agree."""

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from models.attention import scaled_dot_product_attention as by_hand
from proofs import sdpa_by_hand, sdpa_switch


@pytest.mark.parametrize("mod", [sdpa_by_hand, sdpa_switch])
def test_derivation_proved_check_passes_controls_rejected(mod):
    assert mod.derivation().all_proved
    res = mod.check(device="cpu", seed=0)
    assert res.passed and res.controls and all(not c.agrees for c in res.controls)


def test_fewer_than_ten_lines():
    assert sdpa_by_hand.line_count() < 10


@given(
    st.lists(st.integers(1, 3), max_size=2),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 8),
    st.sampled_from(["none", "bool", "additive", "causal"]),
    st.integers(0, 2**16),
)
def test_matches_torch_float64(batch, L, S, dk, mask, seed):
    g = torch.Generator().manual_seed(seed)
    if mask == "causal":
        S = L
    q, k, v = (torch.randn(*batch, n, dk, generator=g, dtype=torch.float64) for n in (L, S, S))
    kw = {}
    if mask == "bool":
        keep = torch.rand(*batch, L, S, generator=g) < 0.5
        keep[..., 0] = True
        kw["attn_mask"] = keep
    elif mask == "additive":
        kw["attn_mask"] = torch.randn(L, S, generator=g, dtype=torch.float64)
    elif mask == "causal":
        kw["is_causal"] = True
    torch.testing.assert_close(
        by_hand(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw), rtol=0, atol=1e-12
    )


def test_a_wrong_scale_is_caught():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v)
    assert (by_hand(q * 2, k, v) - ref).abs().max() > 1e-3


@pytest.mark.parametrize("mod", [sdpa_by_hand, sdpa_switch])
def test_cli_json_and_bad_input(mod, capsys):
    assert mod.main(["--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["check"]["table"]
    with pytest.raises(SystemExit) as e:
        mod.main(["--samples", "0"])
    assert e.value.code == 2 and "samples: must be positive" in capsys.readouterr().err


@pytest.mark.gpu
def test_sdpa_switch_on_cuda():
    assert sdpa_switch.check(device="cuda").passed and sdpa_by_hand.check(device="cuda").passed

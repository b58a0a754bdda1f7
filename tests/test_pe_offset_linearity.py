"""Exercise 13.26: PE(pos + k) = M_k PE(pos): derivation proved, check passes and can fail, CLI."""

import json

import pytest
import torch
from helpers import cli_exit
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import rope_frequencies, sinusoidal_table
from proofs import pe_offset_linearity as mod

f64 = torch.float64


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) >= 10
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)


@pytest.fixture(scope="module")
def default_check():
    return mod.check(device="cpu", seed=0)


def test_default_check_passes_and_controls_are_rejected(default_check):
    res = default_check
    assert res.passed and res.verdict == "PASS"
    assert len(res.claims) == 4 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 6 and not any(c.agrees for c in res.controls)
    edge = {row["k"]: row for row in res.table}
    assert {0, 1, -1, 4096, -4096, "random"} <= set(edge) and edge[0]["max |err|"] == 0.0
    # the bound is a stated rounding bound, not slack: the worst error uses a good part of it
    assert 0.05 * res.claims[0].tol < res.claims[0].measured <= res.claims[0].tol


@pytest.mark.parametrize("seed, d_model, max_pos", [(1, 64, 300), (2, 128, 1024), (3, 2, 16)])
def test_check_passes_for_other_sizes_and_seeds(seed, d_model, max_pos):
    res = mod.check(device="cpu", samples=1000, seed=seed, d_model=d_model, max_pos=max_pos)
    assert res.passed, res.text()


@given(pos=st.integers(0, 4000), k=st.integers(-4000, 4000), half=st.integers(1, 64))
def test_offset_identity_float64(pos, k, half):
    """M_k PE(pos) = PE(pos + k) at random (pos, k, d_model) within the module's stated bound."""
    d_model, k = 2 * half, max(k, -pos)
    table = sinusoidal_table(max(pos, pos + k) + 1, d_model, dtype=f64)
    w = rope_frequencies(d_model)
    pred = mod.rotate_pairs(table[[pos]], torch.tensor([[float(k)]], dtype=f64) * w)
    assert (pred - table[[pos + k]]).abs().max() <= mod.offset_tolerance(pos, abs(k))
    blocks = mod.offset_blocks(float(k), w)  # orthogonal, and M_k M_(-k) = I
    eye = torch.eye(2, dtype=f64).expand_as(blocks)
    assert torch.allclose(blocks.transpose(1, 2) @ blocks, eye, rtol=0, atol=6 * mod.EPS)
    assert torch.allclose(blocks @ mod.offset_blocks(-float(k), w), eye, rtol=0, atol=6 * mod.EPS)


def test_json_cli_reports_a_verdict(capsys):
    assert mod.main(["--json", "--d-model", "64", "--max-pos", "512"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.26" and out["verdict"] == "PASS"
    assert out["derivation"]["status"] == PROVED and out["check"]["passed"] is True


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--d-model", "7"], "--d-model: must be a positive even integer"),
        (["--max-pos", "0"], "--max-pos: must be at least 4"),
        (["--d-model", "x"], "--d-model"),
        (["--d-model", str(10**12)], "--d-model: must be at most 8,192"),
        (["--max-pos", str(10**12)], "--max-pos: must be at most 65,536"),
        (["--samples", str(10**12)], "--samples: must be at most 2,000,000"),
        (["--d-model", "8192", "--max-pos", "8192"], "--max-pos: max_pos x d_model must be at most"),
        (["--d-model", "4096", "--samples", "2000000"], "--samples: d_model x (8 (max_pos + 1) + samples)"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": -4}, "d_model"),
        ({"d_model": 7}, "d_model"),
        ({"max_pos": -3}, "max_pos"),
    ],
)
def test_bad_sizes_raise_naming_the_parameter(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.check(device="cpu", **opts)
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.figure(tmp_path / "x.png", device="cpu", **opts)


def test_figure_is_written(tmp_path):
    path = mod.figure(tmp_path / "pe.png", device="cpu", d_model=32, max_pos=256)
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"

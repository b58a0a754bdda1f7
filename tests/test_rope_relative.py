"""Exercise 13.27: the RoPE score depends only on n - m: proved, checked in both layouts, CLI."""

import json
import subprocess
import sys

import pytest
import torch
from helpers import cli_exit
from hypothesis import given
from hypothesis import strategies as st

from derive.engine import PROVED
from models.positional import apply_rope
from proofs import rope_relative as mod

f64 = torch.float64


def test_every_step_is_proved():
    d = mod.derivation()
    assert len(d.steps) >= 8
    assert [s.status for s in d.steps] == [PROVED] * len(d.steps)


def test_default_check_passes_and_controls_are_rejected():
    res = mod.check(device="cpu", seed=0)
    assert res.passed and res.verdict == "PASS"
    assert len(res.claims) == 4 and all(c.agrees for c in res.claims)
    assert len(res.controls) == 3 and not any(c.agrees for c in res.controls)
    assert {row["convention"] for row in res.table} == {"interleaved", "half"}


@pytest.mark.parametrize("seed, dim, positions", [(1, 2, 8), (2, 8, 16), (3, 128, 32)])
def test_check_passes_for_other_sizes_and_seeds(seed, dim, positions):
    res = mod.check(device="cpu", samples=16, seed=seed, dim=dim, positions=positions)
    assert res.passed, res.text()


@given(
    half=st.integers(1, 64),
    m=st.integers(-5000, 5000),
    n=st.integers(-5000, 5000),
    t=st.integers(-5000, 5000),
    seed=st.integers(0, 2**16),
    convention=st.sampled_from(["interleaved", "half"]),
)
def test_relative_identity_float64(half, m, n, t, seed, convention):
    """<R_m q, R_n k> = <R_(m+t) q, R_(n+t) k> = q^T R_(n-m) k at random positions, dims, layouts."""
    dim = 2 * half
    q, k = torch.randn(2, dim, dtype=f64, generator=torch.Generator().manual_seed(seed))
    q, k = q / q.norm(), k / k.norm()

    def s(a, b):
        return apply_rope(q, torch.tensor(a), convention=convention) @ apply_rope(
            k, torch.tensor(b), convention=convention
        )

    big = max(abs(m), abs(n), abs(m + t), abs(n + t))
    tol_shift = 4 * mod.rotation_error(big) + dim * mod.EPS
    assert abs(s(m, n) - s(m + t, n + t)) <= tol_shift
    formula = q @ mod.rope_dense(torch.tensor([n - m]), dim, convention)[0] @ k
    assert abs(s(m, n) - formula) <= 2 * mod.rotation_error(big) + mod.rotation_error(n - m) + 1.5 * dim * mod.EPS


def test_json_cli_reports_a_verdict(capsys):
    assert mod.main(["--json", "--dim", "16", "--positions", "16", "--samples", "32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exercise"] == "13.27" and out["verdict"] == "PASS"
    assert out["derivation"]["status"] == PROVED and out["check"]["passed"] is True


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--dim", "7"], "dim"),
        (["--positions", "1"], "--positions: must be at least 2"),
        (["--dim", "x"], "--dim"),
        (["--dim", str(10**12)], "--dim: must be at most 1,024"),
        (["--positions", str(10**12)], "--positions: must be at most 4,096"),
        (["--samples", str(10**12)], "--samples: must be at most 4,096"),
        (["--dim", "1024"], "--dim: (2 positions - 1) x dim^2"),
        (["--positions", "512"], "--samples: samples x positions^2"),
        (["--samples", "4096", "--dim", "128"], "--samples: samples x (2 positions - 1) x dim"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, name, capsys):
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"dim": 0}, "dim"),
        ({"dim": -2}, "dim"),
        ({"dim": 7}, "dim"),
        ({"positions": 0}, "positions"),
        ({"positions": -5}, "positions"),
    ],
)
def test_bad_sizes_raise_naming_the_parameter(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.check(device="cpu", **opts)
    with pytest.raises(ValueError, match=f"^{name}:"):
        mod.figure(tmp_path / "x.png", device="cpu", **opts)


def test_odd_dim_from_the_shell():
    p = subprocess.run([sys.executable, "-m", "proofs.rope_relative", "--dim", "7"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["error: --dim: must be a positive even integer at most 1,024, got 7"]


def test_figure_is_written(tmp_path):
    path = mod.figure(tmp_path / "rope.svg", device="cpu", dim=16, positions=32)
    assert path.exists() and b"<svg" in path.read_bytes()[:1000]

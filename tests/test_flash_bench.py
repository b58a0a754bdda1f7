"""models.flash_bench: the attention benchmark's FLOP convention, its command line, and a tiny CPU run."""

import json

import pytest
import torch
from helpers import cli_exit

from models import flash_bench

# tiles of 16 x 16: below one tile the tiled version is n^2 too
TINY = ["--device", "cpu", "--n", "32,48", "--batch", "1", "--heads", "2", "--head-dim", "16", "--repeats", "1"]
TINY += ["--block", "16"]


def test_flop_convention():
    f = flash_bench.attention_flops
    assert f(4, 32, 4096, 64, causal=False, backward=False) == 4 * 4 * 32 * 4096**2 * 64  # q kᵀ and P v
    assert f(4, 32, 4096, 64, causal=True, backward=False) == 2 * 4 * 32 * 4096**2 * 64  # half the tiles
    assert f(1, 1, 100, 16, causal=False, backward=True) == 3.5 * 4 * 100**2 * 16  # backward = 2.5 forwards
    assert f(1, 1, 200, 16, False, False) == 4 * f(1, 1, 100, 16, False, False)  # n^2


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--n", "0"], "--n"),
        (["--n", "1024,,2048"], "--n"),
        (["--n", "abc"], "--n"),
        (["--n", str(1 << 20)], "--n"),
        (["--batch", "0"], "--batch"),
        (["--heads", "-1"], "--heads"),
        (["--head-dim", "48"], "--head-dim"),
        (["--dtype", "float64"], "--dtype"),
        (["--repeats", "0"], "--repeats"),
        (["--budget", "nan"], "--budget"),
        (["--block", "8"], "--block"),
        (["--out", "/nonexistent-dir/x.json"], "--out"),
        (["--device", "tpu"], "--device"),
        (["--n", "100000", "--batch", "1024", "--heads", "1024", "--device", "cpu"], "--n"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_flags_exit_2_in_one_line_naming_the_flag(argv, flag, capsys):
    assert cli_exit(flash_bench, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err


@pytest.mark.slow  # ~8 s: every CPU row at two sizes, forward and backward
def test_tiny_cpu_run_writes_the_json_with_every_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli_exit(flash_bench, [*TINY, "--causal", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {(r["impl"], r["n"], r["pass"]): r for r in report["rows"]}
    impls = ("naive", "tiled", "triton", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math")
    assert set(rows) == {(i, n, p) for i in impls for n in (32, 48) for p in ("fwd", "fwd+bwd")}
    for impl in ("naive", "tiled", "sdpa-math"):  # the CPU rows that always run
        for n in (32, 48):
            for p in ("fwd", "fwd+bwd"):
                r = rows[(impl, n, p)]
                assert r["status"] == "ok", r
                want = flash_bench.attention_flops(1, 2, n, 16, True, p == "fwd+bwd") / r["seconds"] / 1e12
                assert r["tflops"] == pytest.approx(want) and r["peak_bytes"] > 0
    assert rows[("triton", 32, "fwd")]["status"] == "unavailable"
    # naive attention keeps n x n tensors: its peak grows with n faster than the tiled version's
    grow = lambda impl: rows[(impl, 48, "fwd+bwd")]["peak_bytes"] / rows[(impl, 32, "fwd+bwd")]["peak_bytes"]
    assert grow("naive") > 1.8 and grow("tiled") < 1.8
    want = {"n": [32, 48], "batch": 1, "heads": 2, "head_dim": 16, "dtype": "float32", "causal": True}
    assert report["config"] == want | {"repeats": 1, "tiled_block": 16}
    if rows[("sdpa-flash", 32, "fwd")]["status"] == "ok":  # ratios against sdpa-flash measured in the same run
        r = next(x for x in report["ratios"] if (x["impl"], x["n"], x["pass"]) == ("naive", 32, "fwd"))
        assert r["vs_sdpa_flash"] == pytest.approx(
            rows[("naive", 32, "fwd")]["tflops"] / rows[("sdpa-flash", 32, "fwd")]["tflops"]
        )
    assert report["goal"]["met"] is None
    assert "naive" in table and "TFLOP/s" in table and "not measured here" in table


def test_out_of_memory_is_a_row_not_a_crash(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(flash_bench, "time_calls", boom)
    assert flash_bench.measure(lambda: None, torch.device("cpu"), 1) == {"status": "oom"}


def test_goal_is_judged_only_for_its_own_configuration():
    speeds = (("triton", 270.0), ("sdpa-flash", 300.0), ("sdpa-cudnn", 450.0))
    rows = [{"impl": i, "n": n, "pass": "fwd", "status": "ok", "tflops": t} for n in (4096, 8192) for i, t in speeds]
    cfg = {"n": [4096, 8192], "head_dim": 64, "dtype": "bfloat16"}
    g = flash_bench.goal({"config": cfg, "rows": rows})
    assert g["met"] is True and g["min_ratio"] == pytest.approx(0.9) and g["min_ratio_vs_cudnn"] == pytest.approx(0.6)
    slow = [r | {"tflops": 200.0} if r["impl"] == "triton" else r for r in rows]
    assert flash_bench.goal({"config": cfg, "rows": slow})["met"] is False  # 0.67 < 0.8
    for other in ({"dtype": "float16"}, {"head_dim": 128}):
        assert flash_bench.goal({"config": cfg | other, "rows": rows})["met"] is None


def test_n_list_is_sorted_and_deduplicated():
    assert flash_bench._n_list("4096,1024,4096") == (1024, 4096)

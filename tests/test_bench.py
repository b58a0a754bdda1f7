"""numeric.bench: the throughput CLI runs with tiny sizes on the CPU, prints the baseline and the
project's rate side by side, times with the shared helper (models.utils.timing), and turns bad input
into one line on stderr with exit status 2. Also a tiny run of models.training.decode_bench, and the
--help of the model commands (models.training, models.training.bench, models.sample): every flag is
described and says its default; the training benchmark offers none of the trainer-only flags."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cli_exit

from numeric import bench

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--device", "cpu", "--samples", "4096", "--repeats", "2"]


def test_text_report_shows_both_rates_and_the_ratio(capsys):
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "dot products/s" in lines["baseline"] and "torch.randn" in lines["baseline"]
    assert "dot products/s" in lines["project"] and "dot_product_moments -> chunked torch" in lines["project"]
    assert "ratio project/baseline:" in out
    assert "d_k = 64" in out and "cpu" in out
    assert "agrees" in out


def test_json_report_is_consistent():
    r = _run_json([*TINY, "--dk", "8"])
    assert r["d_k"] == 8 and r["samples"] == 4096 and r["repeats"] == 2
    for side in ("baseline", "project"):
        assert len(r[side]["times_s"]) == 2
        assert r[side]["rate"] == pytest.approx(4096 / r[side]["median_s"])
        assert r[side]["rate"] > 0
    assert r["ratio"] == pytest.approx(r["project"]["rate"] / r["baseline"]["rate"])
    assert r["check"]["agrees"] is True
    assert abs(r["baseline"]["variance"] - 8) < 8  # a sane estimate of Var(q·k) = d_k


def _run_json(argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert bench.main([*argv, "--json"]) == 0
    return json.loads(buf.getvalue())


def test_baseline_pools_chunk_variances():
    gen = torch.Generator().manual_seed(0)
    v = bench.baseline(20_001, 4, gen, chunk=1000)  # 21 chunks of 952 or 953
    assert abs(v - 4) < 6 * (2 * 4 * 7 / 20_001) ** 0.5


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--dk", "0"], "--dk"),
        (["--dk", "-4"], "--dk"),
        (["--samples", "-1"], "--samples"),
        (["--samples", "0"], "--samples"),
        (["--repeats", "0"], "--repeats"),
        (["--dk", "x"], "--dk"),
        (["--samples", "1e9"], "--samples"),
        (["--device", "tpu"], "--device"),
        (["--dk", "1000000000000"], "--dk"),
        (["--samples", "1000000000000"], "--samples"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_is_one_line_naming_the_parameter(argv, name, capsys):
    assert cli_exit(bench, ["--device", "cpu", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and name in err[0], captured.err
    assert captured.out == ""


@pytest.mark.slow
def test_cli_as_a_module():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    ok = subprocess.run(
        [sys.executable, "-m", "numeric.bench", *TINY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("dot products/s") == 2
    bad = subprocess.run(
        [sys.executable, "-m", "numeric.bench", "--dk", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--dk" in bad.stderr and "Traceback" not in bad.stderr


def test_text_report_lists_sweep_rows():
    r = _run_json(TINY)
    r["sweep"] = [
        {
            "what": "fused",
            "block": 512,
            "iters": 64,
            "num_warps": 4,
            "fast_math": None,
            "rate": 5e9,
            "median_s": 0.2,
            "warmup_s": 1.5,
        },
        {"what": "fused", "block": 4096, "iters": 16, "num_warps": 16, "fast_math": None, "error": "OutOfResources"},
        {"what": "chunked torch path (fused=False)", "rate": 1e8, "median_s": 10.0, "warmup_s": 10.0},
    ]
    text = bench.text(r)
    assert "sweep what=fused block=512 iters=64 num_warps=4 fast_math=None: 5.000e+09 dot products/s" in text
    assert "block=4096" in text and "OutOfResources" in text
    assert "chunked torch path (fused=False): 1.000e+08" in text


def test_sweep_and_rate_helpers_on_the_cpu():
    dev = torch.device("cpu")
    assert bench.sweep(100, 4, torch.Generator(), dev, 1) == [{"note": "sweep needs the fused kernel on CUDA"}]
    ok = bench._rate(lambda: None, 1000, dev, 2)
    assert ok["rate"] > 0 and set(ok) == {"rate", "median_s", "warmup_s"}
    bad = bench._rate(lambda: 1 / 0, 1000, dev, 2)
    assert bad == {"error": "ZeroDivisionError: division by zero"}


def test_measure_times_with_the_shared_helper(monkeypatch):
    # a fake clock (models.utils.timing reads it): the warm-up run is reported apart, never in the median
    from models.utils import timing

    now, durations = [0.0], iter([7.0, 3.0, 1.0, 2.0])
    monkeypatch.setattr(timing, "perf_counter", lambda: now[0])

    def fn():
        now[0] += next(durations)
        return now[0]

    r = bench.measure(fn, torch.device("cpu"), 3)
    assert r == {"warmup_s": 7.0, "times_s": [3.0, 1.0, 2.0], "median_s": 2.0, "result": 13.0}


def test_decode_bench_runs_tiny_on_the_cpu(capsys):
    from models.training import decode_bench

    argv = ["--device", "cpu", "--layers", "1", "--heads", "2", "--n-embd", "16", "--kv-heads", "2,1"]
    assert decode_bench.main([*argv, "--prompt", "4", "--new", "4", "--repeats", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["kind"] for r in rows] == ["MHA", "MQA"]
    for r in rows:
        assert r["kv_bytes"] == r["kv_bytes_formula"] and r["tokens_per_s"] > 0
    assert rows[1]["kv_saving"] == 2.0


def _help_of(parser) -> dict[str, str]:
    """Each flag of ``parser`` (its first spelling) -> its help text as given to argparse."""
    return {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings and a.dest != "help"}


def _model_parsers():
    from models import sample
    from models.training import bench as train_bench
    from models.training import gpt_chars

    return {"training": gpt_chars.build_parser(), "bench": train_bench.parser(), "sample": sample.build_parser()}


def test_every_model_flag_is_described_with_its_default():
    from dataclasses import fields

    from models.gpt import GPTConfig
    from models.training.loop import TrainConfig

    parsers = _model_parsers()
    for name, p in parsers.items():
        helps = _help_of(p)
        assert helps, name
        for flag, h in helps.items():
            desc, _, default = h.partition("default: ")
            assert len(desc.strip(" ;(")) > 5, f"{name} {flag}: {h!r}"
            assert default.strip() or h.endswith("; required"), f"{name} {flag}: {h!r}"
        p.format_help()  # every help text formats (no stray %)
    train = _help_of(parsers["training"])
    assert len(train) == len(fields(GPTConfig)) - 1 + len(fields(TrainConfig)) + 1  # less vocab_size, plus --preset
    assert "the preset's (cpu: 64, gpu: 256)" in train["--block-size"]
    assert "the preset's (cpu: 2000, gpu: 5000)" in train["--max-iters"]
    assert "default: 0.001" in train["--lr"] and "default: on" in train["--eval-train"]


def test_training_bench_has_its_own_description_and_no_trainer_only_flags(capsys):
    from models.training import bench as train_bench
    from models.training import gpt_chars

    parsers = _model_parsers()
    assert parsers["bench"].description != parsers["training"].description
    assert "MFU" in parsers["bench"].description
    flags = _help_of(parsers["bench"])
    for name in train_bench.UNUSED:
        assert gpt_chars.flag_of(name) not in flags
    assert {"--lr", "--batch-size", "--data", "--steps", "--peak-tflops"} <= set(flags)
    for argv in (["--resume"], ["--out", "x"], ["--target-loss", "1"], ["--max-iters", "5"], ["--no-progress"]):
        assert cli_exit(train_bench, ["--device", "cpu", *argv]) == 2
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and argv[0] in lines[0] and "unrecognized" in lines[0], err
        assert out == ""

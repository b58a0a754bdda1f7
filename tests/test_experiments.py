"""The experiment runner: both variants train, the folder is written whole, the summary is right."""

import json

import pytest

from models.data.chars import CharData
from models.training.experiments import main, run_experiment, summarize

TEXT = "".join(chr(97 + (i * 7) % 13) for i in range(20_000))


def _h(vals):
    return [
        {"step": 10 * (i + 1), "train": v, "val": v, "val_se": 0.01, "elapsed": float(i + 1)}
        for i, v in enumerate(vals)
    ]


def test_summary_threshold_and_speed():
    a, b = [_h([3.0, 2.0, 1.5, 1.4, 1.3, 1.25])], [_h([3.0, 2.5, 2.2, 1.9, 1.7, 1.6])]  # one seed each
    s = summarize({"a": a, "b": b})
    assert s["threshold"] == pytest.approx(2.2)  # the worse of the two val losses half-way (step 30 of 60)
    assert s["variants"]["a"]["steps_to_threshold"] == [20] and s["variants"]["b"]["steps_to_threshold"] == [30]
    assert s["comparison"]["faster"] is None  # one evaluation interval apart: not resolved
    assert s["comparison"]["first_to_threshold"] == {"a": 0, "b": 0, "tie": 1}
    s = summarize({"a": a, "b": b}, threshold=2.0)
    assert s["variants"]["a"]["steps_to_threshold"] == [20] and s["variants"]["b"]["steps_to_threshold"] == [40]
    assert s["comparison"]["faster"] == "a"  # two intervals earlier
    s = summarize({"a": a, "b": b}, threshold=1.55)
    assert s["variants"]["b"]["steps_to_threshold"] == [None] and s["comparison"]["faster"] == "a"  # never
    assert s["variants"]["a"]["best_step"] == [60] and s["variants"]["a"]["final_val"] == 1.25
    assert s["comparison"]["final_val_difference"] == pytest.approx(0.35)
    assert s["comparison"]["difference_se"] == pytest.approx(0.01 * 2**0.5)  # evaluation noise only
    assert s["comparison"]["se_from"] == "evaluation" and s["comparison"]["eval_interval"] == 10
    s = summarize({"a": [_h([3.0, 2.0])], "b": [_h([3.0, 2.0])]})
    assert s["comparison"]["faster"] is None  # a tie is not called a win


def test_summary_over_seeds_is_paired():
    """Three seeds: means over seeds, the paired difference's standard error from the seeds, and
    'faster' only for a variant first in a majority of seeds."""
    a = [_h([3.0, 2.0, 1.5, 1.60]), _h([3.0, 2.1, 1.6, 1.70]), _h([3.0, 2.2, 1.7, 1.80])]
    b = [_h([3.0, 2.5, 1.8, 1.65]), _h([3.0, 2.5, 1.8, 1.72]), _h([3.0, 2.0, 1.8, 1.86])]
    s = summarize({"a": a, "b": b}, threshold=1.9)
    va, vb, c = s["variants"]["a"], s["variants"]["b"], s["comparison"]
    assert va["final_val"] == pytest.approx(1.7) and va["final_val_se"] == pytest.approx(0.1 / 3**0.5)
    assert va["steps_to_threshold"] == [30, 30, 30] and vb["steps_to_threshold"] == [30, 30, 30]
    assert c["faster"] is None and c["first_to_threshold"] == {"a": 0, "b": 0, "tie": 3}
    diffs = [0.05, 0.02, 0.06]  # b - a, seed by seed
    mean = sum(diffs) / 3
    sd = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    assert c["final_val_difference"] == pytest.approx(mean) and c["difference_se"] == pytest.approx(sd / 3**0.5)
    assert c["se_from"] == "seeds"  # paired: far smaller than the unpaired spread of either variant
    s = summarize({"a": a, "b": b}, threshold=1.75)  # a at 30, 30, 30; b at 40, 40, never
    assert s["comparison"]["first_to_threshold"] == {"a": 1, "b": 0, "tie": 2}  # one interval is not enough
    assert s["comparison"]["faster"] is None  # first in one seed of three is no majority
    b2 = [_h([3.0, 2.5, 2.2, 2.1]), _h([3.0, 2.5, 2.2, 2.0]), _h([3.0, 2.0, 1.8, 1.86])]
    s = summarize({"a": a, "b": b2}, threshold=1.95)  # a at 30, 30, 30; b2 never, never, 30
    assert s["comparison"]["first_to_threshold"] == {"a": 2, "b": 0, "tie": 1} and s["comparison"]["faster"] == "a"


@pytest.mark.slow
def test_run_writes_results_whole(tmp_path):
    r = run_experiment(
        "norm_ffn",
        "cpu",
        steps=4,
        out=str(tmp_path),
        eval_interval=2,
        eval_iters=2,
        device="cpu",
        data=CharData.from_text(TEXT),
        seeds=2,
    )
    folder = tmp_path / "norm_ffn"
    saved = json.loads((folder / "results.json").read_text())
    assert set(saved["curves"]) == {"layernorm+gelu", "rmsnorm+swiglu"}
    assert saved["seeds"] == [1337, 1338] and len(saved["curves"]["rmsnorm+swiglu"]) == 2
    assert [h["step"] for h in saved["curves"]["rmsnorm+swiglu"][1]] == [2, 4]
    assert saved["curves"]["rmsnorm+swiglu"][0] != saved["curves"]["rmsnorm+swiglu"][1]  # seeds differ
    assert saved["variants"]["rmsnorm+swiglu"]["model_config"]["mlp"] == "swiglu"
    assert (folder / "curves.png").stat().st_size > 1000 and "Exercise 13.22" in (folder / "summary.md").read_text()
    mid = {k: sum(h[0]["val"] for h in hs) / 2 for k, hs in r["curves"].items()}  # step 2 of 4 is mid-run
    assert r["summary"]["threshold"] == pytest.approx(max(mid.values()))
    assert all(e["run_s"] > 0 for h in r["curves"]["rmsnorm+swiglu"] for e in h)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_cli_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-experiment"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["positional", "--steps", "0"])
    assert e.value.code == 2 and "argument --steps: must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["positional", "--seeds", "0"])
    assert e.value.code == 2 and "argument --seeds: must be at least 1" in capsys.readouterr().err


def test_an_eval_interval_as_long_as_the_run_is_refused_before_training(capsys, tmp_path):
    argv = ["positional", "--steps", "20", "--eval-interval", "20", "--out", str(tmp_path / "x"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --eval-interval:") and "[positional]" not in err[0], err
    assert not (tmp_path / "x").exists()

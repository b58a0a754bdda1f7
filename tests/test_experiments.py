"""The experiment runner: both variants train, the folder is written whole, the summary is right."""

import json

import pytest

from models.data import CharData
from models.experiments import main, run_experiment, summarize

TEXT = "".join(chr(97 + (i * 7) % 13) for i in range(20_000))


def _h(vals):
    return [
        {"step": 10 * (i + 1), "train": v, "val": v, "val_se": 0.01, "elapsed": float(i + 1)}
        for i, v in enumerate(vals)
    ]


def test_summary_threshold_and_speed():
    s = summarize({"a": _h([3.0, 2.0, 1.5, 1.6]), "b": _h([3.0, 2.5, 1.8, 1.7])})
    assert s["threshold"] == 2.5  # the worse of the two val losses half-way (step 20 of 40)
    assert s["variants"]["a"]["steps_to_threshold"] == 20 and s["variants"]["b"]["steps_to_threshold"] == 20
    assert s["comparison"]["faster"] is None  # both reach it at the same evaluation: a tie
    s = summarize({"a": _h([3.0, 2.0, 1.5, 1.6]), "b": _h([3.0, 2.5, 1.8, 1.7])}, threshold=1.7)
    assert s["variants"]["a"]["steps_to_threshold"] == 30 and s["variants"]["b"]["steps_to_threshold"] == 40
    assert s["variants"]["a"]["best_step"] == 30 and s["variants"]["a"]["final_val"] == 1.6
    assert s["comparison"]["faster"] == "a"
    assert s["comparison"]["final_val_difference"] == pytest.approx(0.1)
    assert s["comparison"]["difference_se"] == pytest.approx(0.01 * 2**0.5)
    s = summarize({"a": _h([3.0, 2.0]), "b": _h([3.0, 2.0])})
    assert s["comparison"]["faster"] is None  # a tie is not called a win


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
    )
    folder = tmp_path / "norm_ffn"
    saved = json.loads((folder / "results.json").read_text())
    assert set(saved["curves"]) == {"layernorm+gelu", "rmsnorm+swiglu"}
    assert [h["step"] for h in saved["curves"]["rmsnorm+swiglu"]] == [2, 4]
    assert saved["variants"]["rmsnorm+swiglu"]["model_config"]["mlp"] == "swiglu"
    assert (folder / "curves.png").stat().st_size > 1000 and "Exercise 13.22" in (folder / "summary.md").read_text()
    assert r["summary"]["threshold"] == max(h[0]["val"] for h in r["curves"].values())  # step 2 of 4 is mid-run
    assert all(h["run_s"] > 0 for h in r["curves"]["rmsnorm+swiglu"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_cli_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["positional", "--steps", "0"])
    assert e.value.code == 2 and "steps: must be positive" in capsys.readouterr().err

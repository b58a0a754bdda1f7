"""``python -m models.speculative train|generate|bench``: a trained pair made, used and measured; bad
input refused in one line naming the flag, before any work."""

import json

import pytest
from helpers import require_corpus

from models import speculative
from models.training import spec_bench


@pytest.fixture(scope="module")
def pair_root(tmp_path_factory):
    require_corpus()
    root = tmp_path_factory.mktemp("pairs")
    assert (
        speculative.main(["train", "--preset", "cpu", "--dir", str(root), "--max-iters", "20", "--device", "cpu"]) == 0
    )
    return root


@pytest.mark.slow
def test_train_generate_and_bench(pair_root, capsys, tmp_path):
    assert sorted(p.name for p in (pair_root / "cpu").iterdir()) == ["draft", "target"]
    capsys.readouterr()
    assert speculative.main(["generate", "--dir", str(pair_root), "--prompt", "ROMEO:", "--chars", "30"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("ROMEO:") and len(out.out) == len("ROMEO:") + 30 + 1
    assert "target calls for 30 tokens" in out.err
    plot = tmp_path / "bench.png"
    argv = ["bench", "--dir", str(pair_root), "--gammas", "2", "--prompts", "1", "--repeats", "1", "--json"]
    assert speculative.main([*argv, "--plot", str(plot)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [row["gamma"] for row in r["rows"]] == [1, 2] and r["c"] > 0 and plot.stat().st_size > 5000
    for row in r["rows"]:
        assert 0 <= row["alpha_accepted"] <= 1 and 1 <= row["tokens_per_call"] <= row["gamma"] + 1
        assert row["ratio"] == pytest.approx(row["speedup"] / row["speedup_pred"])
        assert row["verify_cost"] > 0 and row["speedup_pred_v"] == pytest.approx(
            spec_bench.predicted(row["alpha_min_mass"], row["gamma"], r["c"], row["verify_cost"])[1]
        )
    goal = r["goal"]
    assert goal["met"] == all(abs(row["ratio"] - 1) <= 0.1 for row in r["rows"])  # gammas 1, 2: all within 6
    assert goal["worst_ratio"] in [row["ratio"] for row in r["rows"]]


@pytest.mark.slow
def test_an_existing_pair_is_not_overwritten(pair_root, capsys):
    before = (pair_root / "cpu" / "target" / "ckpt.pt").read_bytes()
    assert speculative.main(["train", "--dir", str(pair_root), "--max-iters", "5"]) == 2
    assert capsys.readouterr().err.startswith("error: --dir: ")
    assert (pair_root / "cpu" / "target" / "ckpt.pt").read_bytes() == before


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["generate", "--gamma", "0"], "--gamma"),
        (["generate", "--temperature", "-1"], "--temperature"),
        (["generate", "--top-k", "0"], "--top-k"),
        (["bench", "--gammas", "17"], "--gammas"),
        (["train", "--preset", "tpu"], "--preset"),
        (["train", "--max-iters", "0"], "--max-iters"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        speculative.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]


def test_a_missing_pair_is_named(tmp_path, capsys):
    assert speculative.main(["generate", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --dir: no trained target") and "models.speculative train --preset cpu" in err


def test_predicted_speedup_formula():
    tokens, s = spec_bench.predicted(0.5, 3, 0.2)
    assert tokens == pytest.approx((1 - 0.5**4) / 0.5) and s == pytest.approx(tokens / 1.6)
    assert spec_bench.predicted(1.0, 4, 0.1) == (5.0, pytest.approx(5.0 / 1.4))
    assert spec_bench.predicted(0.1, 1, 0.2)[1] < 1 < spec_bench.predicted(0.3, 1, 0.2)[1]  # S(1) > 1 iff alpha > c


@pytest.mark.slow
def test_a_prompt_outside_the_vocabulary_is_named(pair_root, capsys):
    capsys.readouterr()
    assert speculative.main(["generate", "--dir", str(pair_root), "--prompt", "héllo €"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --prompt: character") and len(err.splitlines()) == 1


@pytest.mark.parametrize("cmd", ["train", "generate", "bench"])
def test_a_missing_corpus_file_is_named_as_data(cmd, tmp_path, capsys):
    assert speculative.main([cmd, "--dir", str(tmp_path), "--data", str(tmp_path / "absent.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --data: no file at")

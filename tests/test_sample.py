"""models.sample: a tiny GPT trained for a few steps with the trainer's API, then sampled from the command
line. The text has the asked length, starts with the prompt, uses only the corpus's characters and
depends on the seed alone (control: another seed, another text); bad input is one line naming the flag,
exit 2; a checkpoint that would run code when unpickled is refused without running it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cli_exit

from models import sample as sample_cli
from models.data.chars import CharData
from models.gpt import GPTConfig
from models.training.gpt_chars import make_run
from models.training.loop import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(chr(97 + (i * 7) % 13) for i in range(20_000))  # a small periodic corpus (13 letters a-m)
BLOCK = 16  # the tiny model's context: samples of 40 characters take several windows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A trainer checkpoint of a tiny GPT after 6 steps (a few seconds on the CPU), trained on a corpus file."""
    tmp = tmp_path_factory.mktemp("sample")
    corpus = tmp / "corpus.txt"
    corpus.write_text(TEXT)
    data = CharData.load(corpus)
    mc = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=BLOCK, vocab_size=data.vocab_size)
    tc = TrainConfig(
        batch_size=8,
        max_iters=6,
        eval_interval=6,
        eval_iters=1,
        warmup_iters=1,
        lr_decay_iters=6,
        device="cpu",
        out=str(tmp / "run"),
        data=str(corpus),
        progress=False,
    )
    run = make_run(mc, tc, data)
    run.fit()
    run.close()
    assert (tmp / "run" / "ckpt.pt").is_file()
    return tmp / "run"


def _sample(capsys, ckpt, *argv) -> str:
    assert sample_cli.main(["--ckpt", str(ckpt), "--device", "cpu", *argv]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return out[:-1]


def test_text_has_the_length_prompt_and_vocabulary(run_dir, capsys):
    text = _sample(capsys, run_dir, "--prompt", "mad", "--chars", "40")
    assert len(text) == 3 + 40 and text.startswith("mad")
    assert set(text) <= set(TEXT)
    # the default prompt is a newline, which this corpus lacks: refused, naming the prompt
    assert cli_exit(sample_cli, ["--ckpt", str(run_dir), "--device", "cpu"]) == 2
    assert "--prompt" in capsys.readouterr().err


def test_the_seed_alone_decides_the_text(run_dir, capsys):
    a = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--seed", "1")
    b = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--seed", "1")
    c = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--seed", "2")
    assert a == b
    assert a != c  # control: the draws do depend on the seed
    # greedy (temperature 0) ignores the seed; top-k 1 is greedy too
    g1 = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--temperature", "0", "--seed", "1")
    g2 = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--temperature", "0", "--seed", "2")
    k1 = _sample(capsys, run_dir, "--prompt", "a", "--chars", "40", "--top-k", "1", "--seed", "3")
    assert g1 == g2 == k1


def test_windows_start_with_the_gpts_own_generate(run_dir):
    # the first window is exactly GPT.generate with its KV cache; later windows restart from block_size // 2
    state = sample_cli.read_checkpoint(run_dir)
    model = sample_cli.load_gpt(state)
    ids = torch.tensor([[0, 1, 2]])
    long = sample_cli.sample(model, ids, 3 * BLOCK, gen=torch.Generator().manual_seed(5))
    direct = model.generate(ids, BLOCK - 3, generator=torch.Generator().manual_seed(5))
    assert long.shape == (1, 3 + 3 * BLOCK)
    assert torch.equal(long[:, :BLOCK], direct)
    with pytest.raises(ValueError, match="max_new_tokens"):  # why windows: the cache holds block_size positions
        model.generate(ids, BLOCK, generator=torch.Generator())


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--prompt", "aZ"], "--prompt"),  # Z is not in the corpus
        (["--prompt", ""], "--prompt"),
        (["--chars", "0"], "--chars"),
        (["--chars", "1000000000"], "--chars"),
        (["--chars", "x"], "--chars"),
        (["--temperature", "-1"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
        (["--seed", "-1"], "--seed"),
        (["--device", "tpu"], "--device"),
        (["--ckpt", "/no/such/folder"], "--ckpt"),
        (["--data", "/no/such/file.txt"], "--data"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(run_dir, argv, flag, capsys):
    assert cli_exit(sample_cli, ["--ckpt", str(run_dir), "--device", "cpu", "--prompt", "a", *argv]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
    assert out == ""


def test_wrong_corpus_and_missing_checkpoint_are_refused(run_dir, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("just a few letters\n" * 100)
    assert cli_exit(sample_cli, ["--ckpt", str(run_dir), "--data", str(other), "--prompt", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--data" in err and "13" in err
    assert cli_exit(sample_cli, ["--ckpt", str(tmp_path), "--prompt", "a"]) == 2  # a folder without ckpt.pt
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ckpt" in err and "no checkpoint" in err


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: bytes(range(256)) * 64,  # random bytes
        lambda b: b"",  # empty
    ],
    ids=["truncated", "random", "empty"],
)
def test_damaged_checkpoint_is_one_line(run_dir, tmp_path, damage, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad)
    (bad / "ckpt.pt").write_bytes(damage((bad / "ckpt.pt").read_bytes()))
    assert cli_exit(sample_cli, ["--ckpt", str(bad), "--prompt", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ckpt" in err and "not a readable checkpoint" in err


def test_foreign_checkpoint_is_one_line(run_dir, tmp_path, capsys):
    torch.save({"model": {}}, tmp_path / "ckpt.pt")  # readable, but not the trainer's
    assert cli_exit(sample_cli, ["--ckpt", str(tmp_path), "--prompt", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ckpt" in err and "not a checkpoint of the trainer" in err
    state = torch.load(run_dir / "ckpt.pt", weights_only=True)
    state["model_config"]["n_embd"] = 64  # weights of another shape
    torch.save(state, tmp_path / "ckpt.pt")
    assert cli_exit(sample_cli, ["--ckpt", str(tmp_path), "--prompt", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ckpt" in err and "does not hold a GPT" in err


class _Payload:
    """Unpickling this object calls os.system: a checkpoint that holds it must not run it."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_sampling_never_unpickles_code(run_dir, tmp_path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad)
    flag = tmp_path / "payload-ran"
    state = torch.load(bad / "ckpt.pt", weights_only=True)
    state["history"] = _Payload(flag)  # a plausible place for an attacker's object
    torch.save(state, bad / "ckpt.pt")
    assert cli_exit(sample_cli, ["--ckpt", str(bad), "--prompt", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ckpt" in err and "not a readable checkpoint" in err
    assert not flag.exists()
    # control: the same file, unpickled the unsafe way, does run the payload (so the test can see it)
    torch.load(bad / "ckpt.pt", weights_only=False)
    assert flag.exists()


@pytest.mark.slow
def test_as_a_module(run_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    argv = [sys.executable, "-m", "models.sample", "--ckpt", str(run_dir), "--device", "cpu"]
    ok = subprocess.run(
        [*argv, "--prompt", "ab", "--chars", "30"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout) == 2 + 30 + 1 and ok.stdout.startswith("ab")
    bad = subprocess.run([*argv, "--top-k", "-3"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--top-k" in bad.stderr

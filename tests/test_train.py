"""The trainer: it learns, it resumes to exactly the same losses, and its CLI fails cleanly."""

import json
import os
import shutil
import subprocess

import pytest
import torch

from models.data import CharData
from models.gpt import GPTConfig
from models.train import Run, TrainConfig, lr_at, main

TEXT = "".join(chr(97 + (i * 7) % 13) for i in range(20_000))  # a small periodic corpus
DATA = CharData.from_text(TEXT)
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=DATA.vocab_size)


def _run(out=None, resume=False, **kw):
    tc = TrainConfig(
        **(
            dict(
                batch_size=8,
                max_iters=20,
                eval_interval=10,
                eval_iters=2,
                log_interval=1,
                warmup_iters=2,
                lr_decay_iters=20,
                device="cpu",
                out=out,
                resume=resume,
                progress=False,
            )
            | kw
        )
    )
    return Run(GPTConfig(**TINY), tc, data=DATA)


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    lrs = [lr_at(s, tc) for s in range(130)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rising during warmup
    assert all(a >= b for a, b in zip(lrs[10:111], lrs[11:112]))  # then falling
    assert lrs[10] == pytest.approx(1.0) and lrs[110] == pytest.approx(0.1) and lrs[129] == 0.1


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    run = _run(max_iters=1)
    x, y = DATA.batch("train", 4, 16, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(run.model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss = run.model(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.1, (first, loss.item())


def test_resume_gives_the_same_subsequent_losses(tmp_path):
    full = _run(max_iters=20).fit()
    a = tmp_path / "a"
    _run(out=str(a), max_iters=10).fit()  # stop at step 10 (checkpoint written at the evaluation)
    resumed = _run(out=str(a), resume=True, max_iters=20).fit()
    assert resumed["steps"] == 20
    tail_full = [loss for s, loss in full["train_losses"] if s > 10]
    tail_res = [loss for s, loss in resumed["train_losses"] if s > 10]
    assert len(tail_full) == 10 and tail_full == tail_res  # bit-for-bit
    assert full["history"][-1]["val"] == resumed["history"][-1]["val"]
    # negative control: a run with another seed does not give the same losses
    other = _run(max_iters=20, seed=7).fit()
    assert [loss for s, loss in other["train_losses"] if s > 10] != tail_full


def test_target_loss_stops_early():
    s = _run(max_iters=40, target_loss=10.0).fit()
    assert s["steps"] == 10 and s["target_reached_at"]["step"] == 10


def test_cli_bad_input_exits_2(capsys):
    assert main(["--n-head", "3", "--n-embd", "128"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: n_head")
    assert main(["--max-iters", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: max_iters")
    assert main(["--resume"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["--pos", "alibi"])
    assert e.value.code == 2


def test_cli_missing_data_exits_2(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none.txt"), "--max-iters", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: data: no file")


def _torchrun(tmp_path, out, steps, resume=False):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    cmd = [
        "torchrun",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "models.train",
        "--preset",
        "cpu",
        "--device",
        "cpu",
        "--data",
        str(corpus),
        "--max-iters",
        str(steps),
        "--eval-interval",
        "2",
        "--eval-iters",
        "2",
        "--batch-size",
        "4",
        "--n-layer",
        "1",
        "--n-embd",
        "32",
        "--n-head",
        "2",
        "--block-size",
        "16",
        "--log-interval",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    cmd += ["--resume"] if resume else []
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, f"torchrun exited {r.returncode}:\n{r.stderr[:1500]}\n...\n{r.stderr[-3000:]}"
    return json.loads((out / "log.json").read_text())


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_ddp_two_processes_gloo_and_resume(tmp_path):
    full = _torchrun(tmp_path, tmp_path / "full", 6)
    assert full["world_size"] == 2 and full["ranks_in_sync"] is True and full["steps"] == 6
    _torchrun(tmp_path, tmp_path / "cut", 4)
    resumed = _torchrun(tmp_path, tmp_path / "cut", 6, resume=True)
    assert resumed["ranks_in_sync"] is True and resumed["steps"] == 6
    tail = lambda log: [loss for s, loss in log["train_losses"] if s > 4]  # noqa: E731
    assert len(tail(full)) == 2 and tail(resumed) == tail(full)  # each rank resumed its own RNG streams
    assert resumed["history"][-1]["val"] == full["history"][-1]["val"]


def test_val_only_evaluation():
    s = _run(max_iters=10, eval_train=False).fit()
    assert [set(h) >= {"val", "val_se"} and "train" not in h for h in s["history"]] == [True]

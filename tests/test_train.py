"""The GPT-on-characters trainer (models.training.gpt_chars, a configuration of the generic loop): it
learns, it resumes to exactly the same losses, and its CLI fails cleanly."""

import json
import os
import shutil
import subprocess

import pytest
import torch
from helpers import cli_exit

import models.training.gpt_chars as train_module
from models.data.chars import CharData
from models.gpt import GPTConfig
from models.training.gpt_chars import main, make_run
from models.training.loop import TrainConfig, lr_at

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
    return make_run(GPTConfig(**TINY), tc, data=DATA)


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    lrs = [lr_at(s, tc) for s in range(130)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rising during warmup
    assert all(a >= b for a, b in zip(lrs[10:111], lrs[11:112]))  # then falling
    assert lrs[10] == pytest.approx(1.0) and lrs[110] == pytest.approx(0.1) and lrs[129] == 0.1


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_gives_the_same_subsequent_losses(tmp_path):
    full = _run(max_iters=20).fit()
    a = tmp_path / "a"
    _run(out=str(a), max_iters=10).fit()  # stop at step 10 (checkpoint written at the evaluation)
    resumed = _run(out=str(a), resume=True, max_iters=20).fit()
    assert resumed["steps"] == 20
    tail_full = [loss for s, loss in full["train_losses"] if s > 10]
    tail_res = [loss for s, loss in resumed["train_losses"] if s > 10]
    assert len(tail_full) == 10 and tail_full == tail_res  # bit-for-bit
    assert [list(p) for p in resumed["train_losses"]] == [list(p) for p in full["train_losses"]]  # the whole log
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
    assert len(err) == 1 and err[0].startswith("error: --n-head")
    assert main(["--max-iters", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --max-iters")
    assert main(["--resume"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["--pos", "alibi"])
    assert e.value.code == 2


def test_cli_missing_data_exits_2(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none.txt"), "--max-iters", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: --data: no file")


def _torchrun(tmp_path, out, steps, resume=False):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    cmd = [
        "torchrun",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "models.training",
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


@pytest.mark.slow
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


# -- hardening: checkpoints run no code, damaged ones fail in one line, nothing is overwritten ----------


class _Payload:
    """Unpickling this object calls os.system: a checkpoint that holds it must not run it."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def _ckpt_run(tmp_path, **kw):
    out = tmp_path / "run"
    _run(out=str(out), max_iters=10, eval_interval=10).fit()
    return out


@pytest.mark.slow
def test_resume_never_unpickles_code(tmp_path, capsys):
    out = _ckpt_run(tmp_path)
    flag = tmp_path / "payload-ran"
    state = torch.load(out / "ckpt.pt", weights_only=True)
    state["history"] = _Payload(flag)  # a plausible place for an attacker's object
    torch.save(state, out / "ckpt.pt")
    with pytest.raises(ValueError, match=r"^resume: .*ckpt\.pt.* not a readable checkpoint"):
        _run(out=str(out), resume=True, max_iters=20)
    assert not flag.exists()
    # control: the same file, unpickled the unsafe way, does run the payload (so the test can see it)
    torch.load(out / "ckpt.pt", weights_only=False)
    assert flag.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: bytes(range(256)) * 64,  # random bytes
        lambda b: b"",  # empty
        lambda b: b"PK\x03\x04" + b"\0" * 100,  # a broken zip header
    ],
    ids=["truncated", "random", "empty", "bad-zip"],
)
@pytest.mark.slow
def test_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, damage):
    out = _ckpt_run(tmp_path)
    ck = out / "ckpt.pt"
    ck.write_bytes(damage(ck.read_bytes()))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    argv = ["--data", str(corpus), "--out", str(out), "--resume", "--device", "cpu", "--no-progress"]
    argv += ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--max-iters", "20"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --resume:") and "ckpt.pt" in err[0], err


def test_foreign_checkpoint_is_refused(tmp_path):
    out = _ckpt_run(tmp_path)
    torch.save({"weights": torch.zeros(3)}, out / "ckpt.pt")  # a valid torch file, not ours
    with pytest.raises(ValueError, match="keys missing"):
        _run(out=str(out), resume=True, max_iters=20)
    torch.save({"x": 1}, out / "ckpt.pt")
    state = torch.load(out / "ckpt.pt", weights_only=True)
    assert state == {"x": 1}  # control: the refusal above came from the contents, not the loading


@pytest.mark.slow
def test_out_holding_a_run_is_not_overwritten_without_resume(tmp_path):
    out = _ckpt_run(tmp_path)
    before = (out / "ckpt.pt").read_bytes()
    with pytest.raises(ValueError, match=r"^out: .* already holds ckpt\.pt"):
        _run(out=str(out), max_iters=10)
    assert (out / "ckpt.pt").read_bytes() == before
    # a user's folder with other files is written beside, nothing removed
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "thesis.tex").write_text("chapter 1")
    _run(out=str(user), max_iters=10).fit()
    assert (user / "thesis.tex").read_text() == "chapter 1" and (user / "ckpt.pt").is_file()


def test_out_into_a_file_or_unwritable_place_is_refused_before_training(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("mine")
    for out in (str(f), str(f / "sub"), "/proc/no-such-dir/run"):
        assert cli_exit(train_module, ["--out", out, "--max-iters", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--out" in err[0] and "Traceback" not in err[0], err
    assert f.read_text() == "mine"


def test_divergence_stops_with_a_clear_error(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    argv = ["--data", str(corpus), "--device", "cpu", "--no-progress", "--n-layer", "1", "--n-head", "2"]
    argv += ["--n-embd", "32", "--block-size", "16", "--max-iters", "30", "--log-interval", "1"]
    argv += ["--lr", "1e30", "--min-lr", "0", "--grad-clip", "0", "--warmup-iters", "0", "--eval-interval", "30"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: training diverged") and "step" in err[-1]
    # control: the same run at a sane learning rate ends normally
    assert main([a if a != "1e30" else "1e-3" for a in argv]) == 0


def test_ctrl_c_stops_after_a_step_with_a_checkpoint_that_resumes(tmp_path):
    import signal
    import threading

    out = tmp_path / "cut"
    run = _run(out=str(out), max_iters=10_000, eval_interval=5_000)
    real_step = run.train_step

    def step():
        if run.step == 7:
            threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            threading.Event().wait(0.2)  # let the signal land mid-step
        return real_step()

    run.train_step = step
    s = run.fit()
    assert s["interrupted"] and 8 <= s["steps"] < 20
    resumed = _run(out=str(out), resume=True, max_iters=s["steps"] + 5, eval_interval=5_000)
    assert resumed.step == s["steps"]  # the checkpoint was written between two steps
    full = _run(max_iters=s["steps"] + 5, eval_interval=5_000).fit()
    tail = [loss for st, loss in full["train_losses"] if st > s["steps"]]
    assert [loss for st, loss in resumed.fit()["train_losses"] if st > s["steps"]] == tail


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--lr", "inf"),
        ("--lr", "nan"),
        ("--lr", "0"),
        ("--weight-decay", "nan"),
        ("--weight-decay", "-1"),
        ("--min-lr", "1"),  # above --lr
        ("--warmup-iters", "-1"),
        ("--lr-decay-iters", "0"),
        ("--target-loss", "nan"),
        ("--target-loss", "0"),
        ("--grad-clip", "-1"),
        ("--grad-clip", "nan"),
        ("--beta1", "2"),
        ("--beta2", "1"),
        ("--rope-base", "0"),
        ("--rope-base", "-1"),
        ("--rope-base", "nan"),
        ("--rope-base", "inf"),
        ("--dropout", "nan"),
        ("--seed", "-1"),
        ("--n-embd", "1000000000000"),
        ("--block-size", "1000000000000"),
        ("--batch-size", "1000000000000"),
        ("--n-layer", "1000000000000"),
        ("--mlp-hidden", "1000000000000"),
    ],
)
def test_nonsense_numbers_are_refused_naming_the_flag(flag, value, capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    rc = cli_exit(train_module, ["--data", str(corpus), flag, value] + (["--pos", "rope"] if "rope" in flag else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and flag in err[0] and "Traceback" not in err[0], err


@pytest.mark.parametrize(
    "content,why",
    [(b"", "is empty"), (b"\x00\x01\x02\xff\xfe" * 100, "not UTF-8"), (b"ab\x00cd" * 50, "NUL"), (b"abc" * 5, "block")],
)
def test_bad_data_files_are_one_line_naming_the_file(tmp_path, capsys, content, why):
    f = tmp_path / "corpus.bin"
    f.write_bytes(content)
    assert main(["--data", str(f), "--max-iters", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0] and "corpus.bin" in err[0], err


def test_ctrl_c_after_divergence_writes_no_checkpoint(tmp_path):
    import signal
    import threading

    out = tmp_path / "nan"
    run = _run(out=str(out), max_iters=10_000, eval_interval=5_000, log_interval=5_000, lr=1e30, grad_clip=0.0)
    real_step = run.train_step

    def step():
        if run.step == 30:
            threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            threading.Event().wait(0.2)
        return real_step()

    run.train_step = step
    with pytest.raises(Exception, match="non-finite weights"):
        run.fit()
    assert not (out / "ckpt.pt").exists()


@pytest.mark.parametrize("field,value", [("rng", 5), ("history", 7), ("step", "abc"), ("best", "x")])
def test_malformed_checkpoint_fields_are_one_line(tmp_path, field, value):
    out = _ckpt_run(tmp_path)
    state = torch.load(out / "ckpt.pt", weights_only=True)
    state[field] = value
    torch.save(state, out / "ckpt.pt")
    with pytest.raises(ValueError, match=rf"^resume: .*ckpt\.pt.*{field} malformed"):
        _run(out=str(out), resume=True, max_iters=20)


def test_resume_past_max_iters_is_refused(tmp_path):
    out = _ckpt_run(tmp_path)  # at step 10
    with pytest.raises(ValueError, match="^max_iters: the checkpoint is at step 10"):
        _run(out=str(out), resume=True, max_iters=10)
    assert _run(out=str(out), resume=True, max_iters=11).step == 10  # control: one more step is fine

"""Every command-line entry point, every flag, bad values: exit 2, one line on stderr naming the
flag, no traceback, and a prompt answer (before any training or sampling).

Runs in-process (``main(argv)``) so that a few thousand cases fit in CI; a handful of real
subprocesses below catch what in-process runs cannot. The values a flag legitimately takes
(``--seed 0``, a 10^12 token count) are listed in ``ACCEPTS`` and not run; every other bad value
must be refused. A flag added later is fuzzed without new test code.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import cli_exit

import proofs

BIG = "1000000000000"  # 10^12
NUMBERS = ["0", "-1", "nan", "inf", BIG, "abc", ""]
PROMPT_S = 15  # an answer to bad input must come at once; generous for a loaded 2-core machine


def _proof_entries():
    return [(f"proofs.{name}", [], importlib.import_module(f"proofs.{name}")) for name in proofs.REGISTRY.values()]


ENTRIES = _proof_entries() + [
    ("proofs", ["report"], importlib.import_module("proofs.__main__")),
    ("proofs all", ["all"], importlib.import_module("proofs.__main__")),
    ("models.training.gpt_chars", [], importlib.import_module("models.training.gpt_chars")),
    ("models.training.bench", [], importlib.import_module("models.training.bench")),
    ("models.training.decode_bench", [], importlib.import_module("models.training.decode_bench")),
    ("models.training.experiments", ["positional"], importlib.import_module("models.training.experiments")),
    # --ckpt is required: an existing folder, so that every other flag's bad value is what answers
    ("models.sample", ["--ckpt", str(Path(__file__).parent)], importlib.import_module("models.sample")),
    ("numeric.bench", [], importlib.import_module("numeric.bench")),
]

# (entry prefix or "*", flag) -> values that are valid there (so not bad input)
ACCEPTS = {
    ("*", "--seed"): {"0", BIG},
    ("*", "--plot"): {"0", "-1", "nan", "inf", BIG, "abc"},  # file names in the working folder
    ("*", "--out"): {"0", "-1", "nan", "inf", BIG, "abc"},
    # work counts a user may want large (Ctrl-C stops them); models.training.bench refuses the flags it does not use
    ("models.training.gpt_chars", "--max-iters"): {BIG},
    ("models.training.gpt_chars", "--eval-interval"): {BIG},
    ("models.training.gpt_chars", "--log-interval"): {BIG},
    ("models", "--lr-decay-iters"): {BIG},
    ("models", "--warmup-iters"): {"0", BIG},
    ("models", "--weight-decay"): {"0", BIG},
    ("models", "--min-lr"): {"0"},
    ("models", "--grad-clip"): {"0", BIG},
    ("models", "--dropout"): {"0"},
    ("models", "--lr"): {BIG},
    ("models.training.gpt_chars", "--target-loss"): {BIG},
    ("models", "--beta1"): {"0"},
    ("models", "--beta2"): {"0"},
    ("models", "--rope-base"): {BIG},
    ("models.training.gpt_chars", "--eval-iters"): {BIG},
    ("models.training.experiments", "--eval-iters"): {BIG},
    ("models", "--grad-accum"): {BIG},
    ("models", "--steps"): {BIG},
    ("models", "--warmup"): {BIG},
    ("models", "--repeats"): {BIG},
    ("models", "--peak-tflops"): {BIG},
    ("models", "--threshold"): {BIG},
    ("models.training.decode_bench", "--new"): set(),
    # text: its characters are checked against the corpus (tests/test_sample.py), after reading the checkpoint
    ("models.sample", "--prompt"): {"0", "-1", "nan", "inf", BIG, "abc"},
    ("models.sample", "--temperature"): {"0", BIG},  # 0: greedy; a large one: nearly uniform draws
    ("models.sample", "--top-k"): {BIG},  # more than the vocabulary: no truncation
    ("proofs.kv_cache", "--context"): {BIG},  # arithmetic only: any size is a valid question
    ("proofs.kv_cache", "--mqa-context"): {BIG},
    ("proofs.training_compute", "--params"): {BIG},
    ("proofs.training_compute", "--tokens"): {BIG},
    ("proofs.training_compute", "--peak-tflops"): {BIG},
    ("proofs.chinchilla", "--flops"): {BIG},
    ("proofs.chinchilla", "--anchor-params"): {BIG},
    ("proofs.chinchilla", "--anchor-tokens"): {BIG},
    ("proofs.chinchilla", "--tokens-per-param"): {BIG},
    ("proofs.chinchilla", "--A"): {BIG},
    ("proofs.chinchilla", "--B"): {BIG},
    ("proofs.chinchilla", "--E"): {"0", BIG},
    ("proofs.rope_matrix", "--base"): {BIG},
    ("proofs.rope_matrix", "--m"): {"0", "-1"},  # positions: any integer is one
    ("proofs.mha_params", "--heads"): {""},  # empty: every divisor of each width
    ("proofs.sinusoidal_values", "--base"): {BIG},
    ("proofs.sinusoidal_values", "--positions"): {"0"},
    ("proofs.softmax_onehot_limit", "--within"): set(),
}


def _accepts(entry: str, flag: str) -> set[str]:
    out = set()
    for (prefix, f), vals in ACCEPTS.items():
        if f == flag and (prefix == "*" or entry == prefix or entry.startswith(prefix + ".")):
            out |= vals
    return out


def _flags(entry, pre, mod) -> list[str]:
    """Every option that takes a value, read from the entry point's own --help."""
    out = subprocess_free_help(mod, pre)
    return [f for f in out if f not in ("--help", "-h")]


def subprocess_free_help(mod, pre) -> list[str]:
    captured = {}
    real = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        target = self
        if pre:  # the sub-command's parser
            for a in self._actions:
                if isinstance(a, argparse._SubParsersAction):
                    target = a.choices[pre[0]]
        captured["p"] = target
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = grab
    try:
        try:
            mod.main(list(pre))
        except SystemExit:
            pass
    finally:
        argparse.ArgumentParser.parse_args = real
    p = captured["p"]
    return [
        a.option_strings[-1]
        for a in p._actions
        if a.option_strings and a.nargs != 0 and not isinstance(a, argparse.BooleanOptionalAction)
    ]


CASES = []
for _entry, _pre, _mod in ENTRIES:
    for _flag in _flags(_entry, _pre, _mod):
        for _v in NUMBERS:
            if _v not in _accepts(_entry, _flag):
                CASES.append((_entry, _pre, _flag, _v))


@contextmanager
def deadline(seconds: float):
    def fail(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _check_refused(entry, argv, flag, capsys, mod):
    t0 = time.perf_counter()
    with deadline(PROMPT_S):
        rc = cli_exit(mod, argv)
    took = time.perf_counter() - t0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, f"{entry} {argv}: exit {rc}\n{err[-2000:]}"
    assert len(lines) == 1, f"{entry} {argv}: {len(lines)} lines on stderr:\n{err[-2000:]}"
    assert "Traceback" not in err and flag in lines[0], f"{entry} {argv}: {lines[0]}"
    assert took < PROMPT_S


@pytest.mark.slow  # about 1,500 cases (50 s): the quick subset leaves them to CI; the contract test covers each flag
@pytest.mark.parametrize("entry,pre,flag,value", CASES, ids=[f"{e}{f}={v!r}" for e, _, f, v in CASES])
def test_bad_value_is_refused_in_one_line(entry, pre, flag, value, capsys, monkeypatch, tmp_path, corpus):
    monkeypatch.chdir(tmp_path)  # file names like "0" as --plot would land here, never in the repo
    mod = dict((e, m) for e, _, m in ENTRIES)[entry]
    data = (
        ["--data", str(corpus)]
        if entry in ("models.training.gpt_chars", "models.training.bench") and flag != "--data"
        else []
    )
    _check_refused(entry, list(pre) + data + [flag, value], flag, capsys, mod)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small corpus (20,000 characters), so that size checks, not a missing data file, answer."""
    f = tmp_path_factory.mktemp("data") / "corpus.txt"
    f.write_text("".join(chr(97 + (i * 7) % 13) for i in range(20_000)))
    return f


def test_the_fuzz_covers_every_entry_point_and_many_cases():
    assert {e for e, *_ in CASES} == {e for e, *_ in ENTRIES}
    assert len(CASES) > 600, len(CASES)


PATH_FLAGS = [(e, pre, f) for e, pre, m in ENTRIES for f in _flags(e, pre, m) if f in ("--plot", "--out", "--data")]


@pytest.mark.parametrize("entry,pre,flag", PATH_FLAGS, ids=[f"{e}{f}" for e, _, f in PATH_FLAGS])
def test_unusable_paths_are_refused_in_one_line(entry, pre, flag, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    mod = dict((e, m) for e, _, m in ENTRIES)[entry]
    afile = tmp_path / "afile.png"
    afile.write_text("mine")
    user = tmp_path / "users"  # a user's folder with a file in it
    user.mkdir()
    (user / "thesis.tex").write_text("mine")
    if flag == "--out" and entry == "models.training.experiments":
        (user / "positional").mkdir()
        (user / "positional" / "keep.txt").write_text("mine")
    bad = [str(tmp_path / "missing" / "x.png"), "/proc/no-such/x.png", str(afile / "x.png")]
    if flag == "--plot":
        bad += [str(user)]  # a folder where a file is wanted
    if flag == "--data":
        bad += [str(user), str(tmp_path / "none.txt")]
    if flag == "--out":
        bad = ["/proc/no-such/x", str(afile / "x"), str(afile)]
        if entry in ("proofs", "models.training.experiments"):
            bad += [str(user)]  # replaced whole by these commands: a user's folder is refused
    for path in bad:
        _check_refused(entry, list(pre) + [flag, path], flag, capsys, mod)
    assert afile.read_text() == "mine" and (user / "thesis.tex").read_text() == "mine"


# -- a few real processes: what in-process runs cannot see ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv,flag",
    [
        (["-m", "proofs.dot_product_variance", "--samples", BIG], "--samples"),
        (["-m", "proofs.performer_complexity", "--max-n", "1000"], "--max-n"),
        (["-m", "proofs.chinchilla", "--device", "nosuch"], "--device"),
        (["-m", "models.training.decode_bench", "--kv-heads", "abc"], "--kv-heads"),
        (["-m", "models.training", "--beta1", "2"], "--beta1"),
        (["-m", "models.training", "--lr", "nan"], "--lr"),
        (["-m", "models.training.bench", "--resume"], "--resume"),
        (["-m", "models.sample", "--ckpt", "no-such-run"], "--ckpt"),
    ],
)
def test_real_processes_answer_in_one_line(argv, flag, tmp_path):
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and flag in lines[0], r.stderr


@pytest.mark.slow
def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "proofs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    p.stdout.close()  # like `python -m proofs | head -0`
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err, err

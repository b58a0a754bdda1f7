"""Exercise 13.8's induction-head demonstration (models.training.induction_run): its sequences, the copy loss's
positions, the attention-only model, the paired test and its control, the run and the command line."""

import json
import math

import pytest
import torch

from models.gpt import GPT
from models.training import induction_run as R

P = dict(R.PRESETS["cpu"])


def _seqs(n=200, repeat=True, seed=0, **kw):
    return R.repeated_sequences(n, P | kw, torch.Generator().manual_seed(seed), repeat)


def test_second_copy_repeats_the_first_and_lengths_vary():
    x, L = _seqs()
    assert x.shape == (200, P["context"] + 1) and int(L.min()) >= P["min_len"] and int(L.max()) <= P["max_len"]
    assert len(set(L.tolist())) > 5  # the copy cannot be found by position alone
    for row, n in zip(x, L.tolist()):
        assert torch.equal(row[n : 2 * n], row[:n])
    y, _ = _seqs(repeat=False)
    same = sum(torch.equal(r[n : 2 * n], r[:n]) for r, n in zip(y, L.tolist()))
    assert same == 0  # the control's second half is fresh (a chance copy of >= 4 tokens of 32 is ~1e-6)


class _Oracle(torch.nn.Module):
    """Logits that know the answer (``cheat``) or know nothing (uniform): the copy loss's two ends."""

    def __init__(self, x, cheat):
        super().__init__()
        self.x, self.cheat, self.w = x, cheat, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, P["vocab"])
        if self.cheat:  # every row of idx is a row of self.x, in order: put 30 nats on the true next token
            logits.scatter_(2, self.x[: len(idx), 1:, None], 30.0)
        return logits, None


def test_copy_loss_reads_exactly_the_positions_the_first_copy_determines():
    x, L = _seqs(n=50)
    for row, n in zip(x, L.tolist()):
        t = torch.arange(n, 2 * n - 1)
        assert torch.equal(row[t + 1], row[t + 1 - n])  # each target is the token after x[t]'s earlier occurrence
    assert float(R.copy_losses(_Oracle(x, True), x, L, batch=50).max()) < 1e-9
    assert torch.allclose(R.copy_losses(_Oracle(x, False), x, L, batch=50), torch.full((50,), math.log(32.0)).double())


def test_attention_only_model_has_no_mlp_and_its_attention_map_is_causal():
    torch.manual_seed(0)
    m = GPT(R.model_config(P, 2))
    assert all(b.mlp is None and b.ln_2 is None for b in m.h)
    x, _ = _seqs(n=1)
    a = R.attention_map(m, x[0, :-1], 1)
    assert a.shape == (P["n_head"], P["context"], P["context"])
    assert torch.allclose(a.sum(-1), torch.ones(P["n_head"], P["context"]))
    assert float(a.triu(1).abs().max()) == 0.0


def test_paired_gap_finds_a_real_gap_and_rejects_a_null_one():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(2000, generator=g, dtype=torch.float64) + 2.0
    noise = 0.01 * torch.randn(2000, generator=g, dtype=torch.float64)
    assert R.paired_gap(base - 1.5 + noise, base, "gap").agrees
    assert not R.paired_gap(base + noise, base, "null").agrees
    assert not R.paired_gap(base - 0.5 + noise, base, "too small").agrees  # real but below the margin


def test_sizes_are_checked_by_name():
    for key, bad, pat in [("max_len", 17, "^max_len: "), ("min_len", 1, "^min_len: "), ("n_head", 3, "^n_head: "),
                          ("lr", 0.0, "^lr: "), ("iters", 0, "^iters: ")]:  # fmt: skip
        with pytest.raises(ValueError, match=pat):
            R.check_sizes(P | {key: bad})
    with pytest.raises(ValueError, match="^preset: "):
        R.run("tpu", "unused")
    with pytest.raises(ValueError, match="^no_such: "):
        R.run("cpu", "unused", no_such=1)


@pytest.mark.slow
def test_a_tiny_run_writes_results_and_figure(tmp_path):
    out = tmp_path / "induction"
    sizes = dict(iters=6, eval_interval=3, eval_iters=1, eval_sequences=64, batch=8, n_embd=16)
    res = R.run("cpu", out, "cpu", 0, lambda m: None, **sizes)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["copy_loss"]) == {"repeat", "no repeat"} and set(saved["copy_loss"]["repeat"]) == {"1", "2"}
    assert len(saved["tests"]) == 2 and res["settings"]["iters"] == 6
    assert (out / "induction.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_bad_flags_in_one_line(capsys):
    for argv, flag in [(["--preset", "tpu"], "--preset"), (["--iters", "0"], "--iters"), (["--seed", "-1"], "--seed")]:
        with pytest.raises(SystemExit) as e:
            R.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and flag in err

"""The GRU encoder-decoder (models.seq2seq), its experiment (models.training.seq2seq_run) and exercise 13.1's check."""

import json

import pytest
import torch

from models.seq2seq import Seq2Seq, Seq2SeqConfig, loss
from models.training import seq2seq_run as run_mod
from models.training.seq2seq_run import Task, sequences
from proofs import seq2seq_bottleneck as ex


def model(attention="additive", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(vocab=7, hidden=12, embed=8, attn_dim=10, attention=attention, **kw)).to(dtype)


def batch(B=5, T=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 1, 3, 5, 2])[:B]
    x, y = sequences(lengths, 7, "reverse", gen)
    return x, lengths, y


@pytest.mark.parametrize("attention", ["additive", "none", "uniform"])
def test_shapes_and_weights(attention):
    m = model(attention)
    x, lengths, y = batch()
    logits, alpha = m.decode(x, lengths, 4)
    assert logits.shape == (5, 4, 7) and alpha.shape == (5, 4, 6)
    out, alpha2 = m.generate(x, lengths, 4)
    assert out.shape == (5, 4) and out.dtype == torch.long and torch.equal(alpha, alpha2)
    real = torch.arange(6)[None, :] < lengths[:, None]
    if attention == "none":
        assert torch.equal(alpha, torch.zeros_like(alpha))  # its context is the final state, no weights
    else:
        torch.testing.assert_close(alpha.sum(-1), torch.ones(5, 4, dtype=alpha.dtype), rtol=0, atol=1e-12)
        assert torch.all(alpha.masked_select(~real[:, None, :]) == 0)  # padding gets weight 0
    if attention == "uniform":
        torch.testing.assert_close(alpha[:, 0], real.double() / lengths[:, None], rtol=0, atol=1e-12)


@pytest.mark.parametrize("attention", ["additive", "none", "uniform"])
def test_padding_changes_nothing(attention):
    """Tokens past a source's length (and extra padding columns) leave its outputs unchanged."""
    m = model(attention)
    x, lengths, y = batch()
    logits, alpha = m.decode(x, lengths, 4)
    x2 = torch.cat([x, torch.zeros(5, 3, dtype=torch.long)], 1)
    x2[torch.arange(9)[None, :] >= lengths[:, None]] = 6  # other tokens in the padding
    logits2, alpha2 = m.decode(x2, lengths, 4)
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-12)
    torch.testing.assert_close(alpha2[..., :6], alpha, rtol=0, atol=1e-12)
    assert torch.all(alpha2[..., 6:] == 0)
    x3 = x.clone()
    x3[0, 0] = (x[0, 0] + 1) % 7  # but a real token matters
    assert (m.decode(x3, lengths, 4)[0][0] - logits[0]).abs().max() > 1e-6


def test_attention_weights_follow_eq_6():
    """alpha_1j = softmax_j v_a^T tanh(W_a s_0 + U_a h_j), written out for the first sequence."""
    m = model()
    x, lengths, _ = batch()
    _, alpha = m.decode(x, lengths, 1)
    H, h_n = m.encode(x[:1, :6], lengths[:1])
    s0 = torch.tanh(m.init(h_n))
    e = torch.stack([m.v_a(torch.tanh(m.W_a(s0) + m.U_a(H[:, j]))).squeeze() for j in range(6)])
    torch.testing.assert_close(alpha[0, 0], torch.softmax(e, 0), rtol=0, atol=1e-12)


def test_teacher_forcing_is_causal_and_greedy_matches():
    """Greedy decoding equals teacher forcing on the greedy outputs; later targets do not change earlier logits."""
    m = model()
    x, lengths, _ = batch()
    out, _ = m.generate(x, lengths, 5)
    tf = m(x, lengths, out)
    assert torch.equal(tf.argmax(-1), out)
    y2 = out.clone()
    y2[:, 3:] = (y2[:, 3:] + 1) % 7
    torch.testing.assert_close(m(x, lengths, y2)[:, :4], tf[:, :4], rtol=0, atol=0)


def test_sequences_reverse_and_copy():
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 1, 4])
    x, y = sequences(lengths, 9, "reverse", gen)
    assert x.shape == y.shape == (3, 4)
    for b, n in enumerate(lengths.tolist()):
        assert y[b, :n].tolist() == x[b, :n].flip(0).tolist()
        assert (y[b, n:] == -100).all() and (x[b, n:] == 0).all()
    x, y = sequences(lengths, 9, "copy", gen)
    assert torch.equal(y.clamp(min=0), x)
    x, y = sequences(lengths, 7, "reverse", gen)
    value = loss(model(), (x, lengths, y))
    assert value.dim() == 0 and 0 < value.item() < 10


def test_task_batches_are_seeded():
    t = Task(10, 6)
    a = t.batch("train", 8, torch.Generator().manual_seed(3))
    b = t.batch("train", 8, torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert 1 <= int(a[1].min()) and int(a[1].max()) <= 6 and a[0].shape[1] == int(a[1].max())


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(hidden=0), "hidden"),
        (dict(vocab=1), "vocab"),
        (dict(attention="dot"), "attention"),
        (dict(embed=2.5), "embed"),
    ],
)
def test_config_refuses_bad_values(kw, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        Seq2SeqConfig(**kw)


def test_decode_refuses_bad_input():
    m = model()
    x, lengths, _ = batch()
    with pytest.raises(ValueError, match="^lengths:"):
        m.decode(x, lengths * 0, 3)
    with pytest.raises(ValueError, match="^lengths:"):
        m.decode(x, lengths + 10, 3)
    with pytest.raises(ValueError, match="^x:"):
        m.decode(x + 7, lengths, 3)
    with pytest.raises(ValueError, match="^steps:"):
        m.decode(x, lengths, 0)
    with pytest.raises(ValueError, match="^task:"):
        Task(10, 5, "sort")
    with pytest.raises(ValueError, match="^split:"):
        Task(10, 5).batch("test", 2, torch.Generator())


@pytest.mark.slow
def test_run_writes_results_and_figures(tmp_path):
    out = tmp_path / "run"
    res = run_mod.run("cpu", out, "cpu", say=lambda *a: None, steps=3, hiddens=(4,), max_len=3, eval_n=4, batch=4)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "accuracy.png",
        "attention.png",
        "results.json",
    ]
    saved = json.loads((out / "results.json").read_text())
    assert saved["sizes"]["steps"] == 3 and len(saved["accuracy"]) == 2 * 3
    assert {r["model"] for r in saved["accuracy"]} == {"h=4, attention", "h=4, no attention"}
    assert len(res["example"]["alpha"]) == 3
    assert ex.saved_notes(saved)[0].startswith("saved cpu run")


@pytest.mark.parametrize(
    "kw, name",
    [(dict(preset="laptop"), "preset"), (dict(steps=0), "steps"), (dict(hiddens=()), "hiddens"), (dict(foo=1), "foo")],
)
def test_run_refuses_bad_sizes_before_training(kw, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}:"):
        run_mod.run(out=tmp_path / "x", say=lambda *a: None, **kw)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "argv, flag", [(["--preset", "laptop"], "--preset"), (["--steps", "0"], "--steps"), (["--seed", "-1"], "--seed")]
)
def test_cli_refuses_in_one_line(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_mod.main([*argv, "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err and "Traceback" not in err


def test_cli_refuses_a_users_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("theirs")
    assert run_mod.main(["--out", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out:") and "\n" not in err


def test_gap_statistics():
    perfect = {"n": 100, "length": 1, "seq_right": 100, "tok_right": 100, "tok_sq": 100.0}
    g = ex.seq_gap(perfect, perfect)
    assert g.value == 0 and g.stderr > 0  # two perfect models: no gap, and the test can still be run
    a = {"n": 4, "length": 2, "seq_right": 2, "tok_right": 6, "tok_sq": 2.5}  # per sequence 1, 1/2, 1/2, 1
    b = {"n": 4, "length": 2, "seq_right": 0, "tok_right": 4, "tok_sq": 1.0}  # 1/2 each
    t = ex.token_gap(a, b)
    va = torch.tensor([1.0, 0.5, 0.5, 1.0], dtype=torch.float64).var().item()  # unbiased: 1/12
    assert t.value == pytest.approx(0.25) and t.stderr == pytest.approx((va / 4) ** 0.5, rel=1e-9)
    s = ex.seq_gap(a, b)
    p = 3 / 10  # (2 + 0 + 1) / (4 + 4 + 2)
    assert s.value == 0.5 and s.stderr == pytest.approx((p * (1 - p) / 2) ** 0.5)


def test_validate_refuses_runs_too_long():
    with pytest.raises(ValueError, match="^steps:"):
        ex.check(steps=100_000, length=128, hidden=1024)
    with pytest.raises(ValueError, match="^length:"):
        ex.check(length=1)


@pytest.mark.slow
def test_small_check_passes_and_rejects_its_controls():
    import test_contract

    res = test_contract.default_result("13.1")
    assert res.passed and len(res.claims) == 3 and len(res.controls) == 2
    assert all(not c.agrees for c in res.controls)
    by = {(r["model"], r["length"]): r for r in res.table}
    L = ex.check.__signature__.parameters["length"].default
    assert by["additive", 1]["seq_acc"] == by["none", 1]["seq_acc"] == 1.0  # no gap at length 1
    assert by["none", L]["tok_acc"] < by["none", 1]["tok_acc"]  # without attention, accuracy falls with length

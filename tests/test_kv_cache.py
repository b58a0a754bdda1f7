"""Exercises 13.14 and 13.23: KV-cache bytes; answers by hand, the check and its controls, the exercise's own
rules between options (the contract test covers what every exercise shares)."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from models.gpt import GPT, GPTConfig, KVCache
from models.utils.device import one_thread
from numeric.kvcache import generate_keeping_cache, storage_bytes, written_bytes
from proofs import kv_cache as ex
from proofs.kit import options

TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
TORCH["int8"] = torch.int8


def itemsize(name):  # from torch itself, not from derive.kv's table
    return torch.empty((), dtype=TORCH[name]).element_size()


def heads_and_kv(max_h=16):
    return st.integers(1, max_h).flatmap(
        lambda n: st.tuples(st.just(n), st.sampled_from([k for k in range(1, n + 1) if n % k == 0]))
    )


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and len(dx.steps) >= 12
    assert all(s.status == PROVED for s in dx.steps)


def test_answers_13_14_by_hand():
    rows = ex.answers(options.settings(ex))
    per = 2 * 80 * 64 * 128 * 2
    assert rows[0]["bytes/token"] == per == 2_621_440
    assert per / 10**6 == 2.62144 and per / 2**20 == 2.5
    assert rows[0]["per token"] == "2.62 MB = 2.5 MiB"
    assert (rows[0]["context"], rows[0]["total bytes"]) == (32 * 1024, 32 * 1024 * per)
    assert rows[0]["total bytes"] == 85_899_345_920 == 80 * 2**30
    assert (rows[1]["context"], rows[1]["total bytes"]) == (32_000, 83_886_080_000)
    assert rows[1]["total bytes"] / 2**30 == 78.125
    gqa = [r for r in rows if r["exercise"] == "13.14" and r["n_kv"] == 8]
    assert len(gqa) == 1 and gqa[0]["bytes/token"] == 2 * 80 * 8 * 128 * 2 and gqa[0]["total bytes"] == 10 * 2**30
    mqa = [r for r in rows if r["exercise"] == "13.14" and r["n_kv"] == 1]
    assert mqa[0]["bytes/token"] * 64 == per


def test_answers_13_23_by_hand():
    rows = [r for r in ex.answers(options.settings(ex)) if r["exercise"] == "13.23"]
    assert [(r["attention"], r["n_kv"]) for r in rows] == [("MHA", 12), ("GQA(4)", 4), ("MQA", 1)]
    assert [r["bytes/token"] for r in rows] == [2 * 12 * n * 64 * 2 for n in (12, 4, 1)] == [36864, 12288, 3072]
    assert [r["saving vs MHA"] for r in rows] == ["1x", "3x", "12x"]
    assert [r["total bytes"] for r in rows] == [1024 * b for b in (36864, 12288, 3072)]


def test_answers_follow_the_options():
    cfg = options.settings(ex, layers=32, heads=32, kv_heads="8", head_dim=128, dtype="bf16", context="4096", mqa_gqa=6)
    rows = ex.answers(cfg)
    assert rows[0]["attention"] == "GQA(8)" and rows[0]["bytes/token"] == 2 * 32 * 8 * 128 * 2
    assert rows[0]["total bytes"] == 4096 * 131072 == 512 * 2**20
    assert len([r for r in rows if r["context"] == 4096]) == 3  # GQA(8), then MHA and MQA beside it
    assert [r["n_kv"] for r in rows if r["exercise"] == "13.23"] == [12, 6, 1]
    assert ex.answers(options.settings(ex, kv_heads="mqa"))[0]["n_kv"] == 1


@pytest.mark.parametrize(
    "n, text",
    [
        (2_621_440, "2.62 MB = 2.5 MiB"),
        (80 * 2**30, "85.9 GB = 80 GiB"),
        (999, "999 B = 999 B"),
        (1024, "1.02 kB = 1 KiB"),
    ],
)
def test_human_units(n, text):
    assert ex.human(n) == text


def test_check_compares_exactly_and_states_the_answers():
    res = ex.check(device="cpu")
    assert len(res.claims) >= 12 and all(c.agrees and c.tol == 0 for c in res.claims)
    assert len(res.controls) == 4 and all(c.tol == 0 for c in res.controls)
    text = res.text()
    for s in ("2,621,440 bytes", "2.62144 MB", "2.5 MiB", "80 GiB", "78.125 GiB", "LLaMA-2-70B", "MQA 12x"):
        assert s in text


def test_check_would_fail_with_a_wrong_formula(monkeypatch):
    """The comparison can fail: a formula without the factor 2 makes every claim disagree."""
    right = ex.per_token
    monkeypatch.setattr(ex, "per_token", lambda *a: right(*a) // 2)
    res = ex.check(device="cpu", samples=2)
    assert not res.passed and not any(c.agrees for c in res.claims)


@settings(max_examples=40)
@given(
    st.integers(1, 6),
    heads_and_kv(),
    st.integers(1, 16),
    st.sampled_from(sorted(TORCH)),
    st.integers(1, 9),
    st.integers(1, 3),
)
def test_project_cache_holds_the_formula(layers, hk, hd, dtype, positions, batch):
    heads, n_kv = hk
    cfg = GPTConfig(block_size=positions, vocab_size=2, n_layer=layers, n_head=heads, n_embd=heads * hd, n_kv_head=n_kv)
    cache = KVCache(cfg, batch, positions, dtype=TORCH[dtype])
    by_hand = 2 * layers * n_kv * hd * itemsize(dtype) * batch * positions
    assert cache.nbytes == by_hand == storage_bytes(cache)
    assert ex.per_token(layers, n_kv, hd, dtype) * batch * positions == by_hand
    if n_kv < heads:  # the control: counting query heads instead of KV heads is wrong
        assert cache.nbytes != 2 * layers * heads * hd * itemsize(dtype) * batch * positions


@settings(max_examples=12, deadline=None)
@given(
    st.integers(1, 3),
    heads_and_kv(4),
    st.sampled_from([2, 4]),
    st.sampled_from(["fp32", "bf16", "fp16"]),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 2),
)
def test_generate_fills_the_formula(layers, hk, hd, dtype, new, prompt, batch):
    heads, n_kv = hk
    cfg = GPTConfig(prompt + new, 11, layers, heads, heads * hd, n_kv_head=n_kv)
    model = GPT(cfg).to(TORCH[dtype]).eval()
    idx = torch.randint(0, 11, (batch, prompt), generator=torch.Generator().manual_seed(0))
    with one_thread():  # tiny tensors: OpenMP threads only contend on a shared CPU
        out, cache = generate_keeping_cache(model, idx, new)
    per = 2 * layers * n_kv * hd * itemsize(dtype) * batch
    assert out.shape == (batch, prompt + new)
    assert cache.nbytes == per * (prompt + new)  # room for prompt and new tokens
    assert written_bytes(cache) == per * (prompt + new - 1)  # the last token is never fed back
    assert "new_cache" not in vars(model)  # the spy is removed


def test_spy_does_not_change_generation():
    """NaN in the unwritten positions never leaks: the same tokens as a plain generate()."""
    model = GPT(GPTConfig(16, 11, 2, 4, 16, n_kv_head=2)).eval()
    idx = torch.randint(0, 11, (2, 3), generator=torch.Generator().manual_seed(1))
    with one_thread():
        out, _ = generate_keeping_cache(model, idx, 6)
        assert torch.equal(out, model.generate(idx, 6, temperature=0))


def test_cli_prints_answers(capsys):
    assert ex.main(["--samples", "2"]) == 0
    out = capsys.readouterr().out
    for s in ("Exercise 13.14, 13.23", "2,621,440", "2.62144 MB", "2.5 MiB", "85.8993 GB = 80 GiB", "32,000"):
        assert s in out
    assert "Verdict: PASS" in out


def test_cli_json_and_figure(capsys, tmp_path):
    argv = ["--json", "--layers", "32", "--heads", "32", "--kv-heads", "8", "--dtype", "bf16", "--context", "4K"]
    assert ex.main(argv + ["--samples", "2", "--plot", str(tmp_path / "kv.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["derivation"]["status"] == "proved"
    rows = out["check"]["table"]
    assert [r["context"] for r in rows[:2]] == [4096, 4000]
    assert rows[0]["bytes/token"] == 2 * 32 * 8 * 128 * 2 and rows[0]["total bytes"] == 4096 * 131072
    assert (tmp_path / "kv.png").stat().st_size > 0


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"kv_heads": "5"}, "kv_heads"),
        ({"kv_heads": "0"}, "kv_heads"),
        ({"kv_heads": "gqa"}, "kv_heads"),
        ({"heads": 8, "kv_heads": "16"}, "kv_heads"),
        ({"context": "0"}, "context"),
        ({"context": "-3"}, "context"),
        ({"context": "32Q"}, "context"),
        ({"context": str(2**31) + "K"}, "context"),  # 2^41 tokens
        ({"mqa_heads": 12, "mqa_gqa": 5}, "mqa_gqa"),
        ({"samples": ex.MAX_SAMPLES + 1}, "samples"),
    ],
)
def test_bad_options_raise_naming_parameter(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        options.settings(ex, **opts)


def test_the_largest_context_is_accepted():
    assert [c for c, _ in ex.contexts(str(2**30) + "K")] == [2**40, 2**30 * 1000]


def test_cli_bad_input_names_both_flags(capsys):
    assert ex.main(["--heads", "64", "--kv-heads", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --kv-heads:") and "--heads=64" in err[0]

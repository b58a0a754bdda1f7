"""Exercises 13.12 and 13.17: the 12 L d^2 + 2 V d rule; answers, exact counts, controls, CLI.

Every expected number here is computed by hand in plain integer arithmetic (or is a published
count), never through derive.counts or the module's own formulas."""

import json

import pytest
import torch
from helpers import cli_exit
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine import PROVED
from derive.model_styles import style_params
from models.gpt import GPT, GPTConfig
from numeric.check import Bound
from numeric.meta_models import gpt_gpt2, gpt_llama, gpt_rule_shaped, torch_gpt2, torch_llama
from proofs import param_count as ex
from proofs.kit.options import settings as options


def rule_by_hand(L, d, V):
    return 12 * L * d * d + 2 * V * d


def gpt2_by_hand(L, d, V, h, n):
    """GPT-2 block: c_attn d x 3d (+3d), c_proj d x d (+d), c_fc d x 4d (+4d), c_proj 4d x d (+d),
    two LayerNorms (2d each); token and position tables; final LayerNorm; head tied to wte."""
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    return V * d + n * d + L * block + 2 * d


def llama_by_hand(L, d, V, ff):
    """q, k, v, o (d x d), gate, up (d x ff), down (ff x d), two RMSNorm gains; final norm; untied head."""
    return L * (4 * d * d + 3 * d * ff + 2 * d) + d + V * d + d * V


def attention_by_hand(d, h, kv, dh, bias):
    """q d x h dh, k and v d x kv dh, o h dh x d; biases q h dh, k and v kv dh, o d."""
    return d * h * dh + 2 * d * kv * dh + h * dh * d + ((h * dh + 2 * kv * dh + d) if bias else 0)


def gpt2_general_by_hand(L, d, V, h, n, kv, dh, gff, tie, bias):
    ln = 2 * d if bias else d
    block = attention_by_hand(d, h, kv, dh, bias) + 2 * d * gff + ((gff + d) if bias else 0) + 2 * ln
    return V * d + n * d + L * block + ln + (0 if tie else V * d)


def llama_general_by_hand(L, d, V, h, kv, dh, ff, tie, bias):
    block = attention_by_hand(d, h, kv, dh, bias) + 3 * d * ff + ((2 * ff + d) if bias else 0) + 2 * d
    return V * d + L * block + d + (0 if tie else V * d)


# Llama-2-70B (Hugging Face meta-llama/Llama-2-70b-hf): L=80, d=8192, V=32000, 64 query heads of 128,
# 8 key/value heads, SwiGLU width 28672, RMSNorm, untied embeddings. Counted term by term.
L70, D70, V70, FF70 = 80, 8192, 32000, 28672
LLAMA2_70B = (
    V70 * D70  # token embedding
    + V70 * D70  # untied lm_head
    + L70
    * (
        D70 * D70  # q_proj
        + D70 * 1024  # k_proj: 8 heads x 128
        + D70 * 1024  # v_proj
        + D70 * D70  # o_proj
        + 3 * D70 * FF70  # gate, up, down
        + 2 * D70  # two RMSNorm gains
    )
    + D70  # final norm
)
LLAMA2_70B_AS_MHA = LLAMA2_70B + L70 * 2 * D70 * (D70 - 1024)  # k_proj and v_proj d x d
LLAMA2_70B_FLAGS = dict(layers=80, d_model=8192, vocab=32000, heads=64, kv_heads=8, swiglu_hidden=28672)
LLAMA2_70B_ARGV = ["--layers", "80", "--d-model", "8192", "--vocab", "32000", "--heads", "64", "--kv-heads", "8"]
LLAMA2_70B_ARGV += ["--swiglu-hidden", "28672", "--tie-embeddings", "no"]


def shapes():
    return st.tuples(
        st.integers(1, 3),
        st.integers(1, 4),
        st.integers(1, 6),
        st.integers(1, 200),
        st.integers(1, 40),
        st.integers(1, 64),
    ).map(lambda t: dict(L=t[0], h=t[1], d=t[1] * 2 * t[2], V=t[3], n=t[4], ff=t[5]))


def test_derivation_all_proved():
    dx = ex.derivation()
    assert dx.all_proved and all(s.status == PROVED for s in dx.steps)
    assert len(dx.steps) >= 20


def test_answers_by_hand():
    assert rule_by_hand(24, 1024, 50000) == 404_389_888 == ex.rule(24, 1024, 50000)  # 13.12: ~0.40B
    assert rule_by_hand(32, 4096, 32000) == 6_704_594_944 == ex.rule(32, 4096, 32000)  # 13.17: ~6.7B
    statements = " ".join(s["statement"] for s in ex.derivation().to_dict()["steps"])
    for number in ("404389888", "6704594944", "354560000", "6738415616"):
        assert number in statements


def test_published_counts_by_hand_and_by_model():
    """Hugging Face's counts: GPT-2 small and XL, LLaMA-7B and 13B (none of them are the module's anchors
    except LLaMA-7B, which is built here through the module's other path too)."""
    for L, d, V, h, total in [(12, 768, 50257, 12, 124_439_808), (48, 1600, 50257, 25, 1_557_611_200)]:
        assert gpt2_by_hand(L, d, V, h, 1024) == total
        s = dict(L=L, d=d, V=V, h=h, n=1024)
        assert gpt_gpt2(s) == torch_gpt2(s) == total
    for L, d, h, ff, total in [(32, 4096, 32, 11008, 6_738_415_616), (40, 5120, 40, 13824, 13_015_864_320)]:
        assert llama_by_hand(L, d, 32000, ff) == total
        s = dict(L=L, d=d, V=32000, h=h, n=2048, ff=ff)
        assert gpt_llama(s) == torch_llama(s) == total
    # why 13.17 is within 5%: SwiGLU's 3 d 11008 is 8 d^2 plus 1,048,576 per layer; 65 RMSNorm gains
    assert 3 * 4096 * 11008 - 8 * 4096**2 == 1_048_576
    assert 6_738_415_616 - rule_by_hand(32, 4096, 32000) == 32 * 1_048_576 + 65 * 4096
    assert abs(rule_by_hand(32, 4096, 32000) / 6_738_415_616 - 1) < 0.0051


@settings(max_examples=30, deadline=None)
@given(shapes())
def test_model_counts_match_hand_counts(s):
    L, d, V, h, n, ff = s["L"], s["d"], s["V"], s["h"], s["n"], s["ff"]
    assert gpt_gpt2(s) == torch_gpt2(s) == gpt2_by_hand(L, d, V, h, n) == style_params("gpt2", s)
    assert gpt_llama(s) == torch_llama(s) == llama_by_hand(L, d, V, ff) == style_params("llama", s)
    mats, total = gpt_rule_shaped(s)
    assert mats == rule_by_hand(L, d, V) and total == mats + (2 * L + 1) * d


def general_shapes():
    """Shapes with every option drawn: kv a divisor of h, a head size d/h or an independent even one,
    GELU and SwiGLU widths, tying and biases."""

    def build(t):
        L, h, k, m, V, n, ff, gff, free_dh, dh2, tie, bias = t
        divisors = [x for x in range(1, h + 1) if h % x == 0]
        d = h * 2 * m
        dh = 2 * dh2 if free_dh else d // h
        return dict(L=L, d=d, V=V, h=h, n=n, ff=ff, kv=divisors[k % len(divisors)], dh=dh, gff=gff, tie=tie, bias=bias)

    return st.tuples(
        st.integers(1, 3),
        st.integers(1, 6),
        st.integers(0, 5),
        st.integers(1, 6),
        st.integers(1, 200),
        st.integers(1, 40),
        st.integers(1, 64),
        st.integers(1, 64),
        st.booleans(),
        st.integers(1, 8),
        st.sampled_from([None, True, False]),
        st.sampled_from([None, True, False]),
    ).map(build)


@settings(max_examples=40, deadline=None)
@given(general_shapes())
def test_every_option_counts_match_hand_counts(s):
    L, d, V, h, n, ff, kv, dh, gff = (s[k] for k in ("L", "d", "V", "h", "n", "ff", "kv", "dh", "gff"))
    tie2 = True if s["tie"] is None else s["tie"]
    bias2 = True if s["bias"] is None else s["bias"]
    tie3 = False if s["tie"] is None else s["tie"]
    bias3 = False if s["bias"] is None else s["bias"]
    g = gpt2_general_by_hand(L, d, V, h, n, kv, dh, gff, tie2, bias2)
    m = llama_general_by_hand(L, d, V, h, kv, dh, ff, tie3, bias3)
    assert torch_gpt2(s) == style_params("gpt2", s) == g
    assert torch_llama(s) == style_params("llama", s) == m
    if dh * h == d:  # the project's GPT builds only d_head = d / h
        assert gpt_gpt2(s) == g and gpt_llama(s) == m
    else:
        assert gpt_gpt2(s) is None and gpt_llama(s) is None
    if kv != h:  # grouped-query attention is counted, not silently taken as multi-head
        assert style_params("llama", s | {"kv": h}) - m == L * 2 * (d + bias3) * (h - kv) * dh


def test_llama2_70b_by_hand_through_the_api_and_cli(capsys):
    assert LLAMA2_70B == 68_976_648_192 and LLAMA2_70B_AS_MHA == 78_371_889_152
    assert llama_general_by_hand(80, 8192, 32000, 64, 8, 128, 28672, False, False) == LLAMA2_70B
    # the models, built on the meta device, and the formula
    s = dict(L=80, d=8192, V=32000, h=64, n=4096, ff=28672, kv=8)
    assert gpt_llama(s) == torch_llama(s) == style_params("llama", s) == LLAMA2_70B
    assert gpt_llama(s | {"kv": None}) == LLAMA2_70B_AS_MHA  # what the module said before --kv-heads
    # the check, through the API
    res = ex.check(device="cpu", samples=1, **LLAMA2_70B_FLAGS)
    assert res.passed, res.text()
    row = [r for r in res.table if r["model"].startswith("LLaMA")][0]
    assert row["exact"] == LLAMA2_70B and "kv=8/64" in row["model"]
    mine = [c for c in res.claims if c.claim.startswith("custom") and "LLaMA style" in c.claim]
    assert len(mine) == 2 and all(c.agrees and c.measured == LLAMA2_70B for c in mine)  # GPT and torch.nn
    # negative control: the same exact comparison rejects the multi-head count
    mha = [c for c in res.controls if "LLaMA style torch.nn" in c.claim and "without --kv-heads" in c.claim]
    assert len(mha) == 1 and mha[0].target == LLAMA2_70B_AS_MHA and mha[0].measured == LLAMA2_70B
    assert not mha[0].agrees and mha[0].tol == 0
    anchor = [c for c in res.controls if c.claim.startswith("Llama-2-70B") and "without --kv-heads" in c.claim]
    assert len(anchor) == 1 and anchor[0].measured == LLAMA2_70B_AS_MHA and anchor[0].target == LLAMA2_70B
    assert not anchor[0].agrees
    # the same exact comparison would have rejected the old count as Llama-2-70B's
    assert not Bound.of("old", LLAMA2_70B_AS_MHA, LLAMA2_70B, 0).agrees
    # and through the command line
    assert ex.main(["--json", "--samples", "1", *LLAMA2_70B_ARGV]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS"
    rows = [r for r in out["check"]["table"] if r["model"].startswith("LLaMA")]
    assert [r["exact"] for r in rows] == [LLAMA2_70B]


def test_llama_7b_still_right():
    by_hand = llama_general_by_hand(32, 4096, 32000, 32, 32, 128, 11008, False, False)
    assert by_hand == llama_by_hand(32, 4096, 32000, 11008) == 6_738_415_616
    flags = dict(layers=32, d_model=4096, vocab=32000, heads=32, swiglu_hidden=11008)
    for res in (ex.check(device="cpu", samples=1, exercise="13.17"), ex.check(device="cpu", samples=1, **flags)):
        assert res.passed
        assert [r["exact"] for r in res.table if r["model"].startswith("LLaMA")] == [6_738_415_616]
    # kv-heads equal to heads is multi-head attention: the same count
    assert ex.check(device="cpu", samples=1, kv_heads=32, **flags).table[2]["exact"] == 6_738_415_616


def test_gemma_7b_head_size_and_tying():
    """Gemma-7B: 16 heads of 256 on d = 3072, tied embeddings; the GPT cannot build it, torch.nn can."""
    by_hand = llama_general_by_hand(28, 3072, 256000, 16, 16, 256, 24576, True, False)
    assert by_hand == 8_537_680_896 and by_hand - 256000 * 3072 == 7_751_248_896  # the Gemma report's non-embedding
    flags = dict(layers=28, d_model=3072, vocab=256000, heads=16, head_dim=256, swiglu_hidden=24576)
    res = ex.check(device="cpu", samples=1, tie_embeddings="yes", **flags)
    assert res.passed, res.text()
    assert [r["exact"] for r in res.table if r["model"].startswith("LLaMA")] == [by_hand]
    assert not any(c.claim.startswith("custom") and " GPT = its formula" in c.claim for c in res.claims)
    assert any("built from torch.nn only" in n for n in res.notes)
    ctl = [c for c in res.controls if c.claim.startswith("custom") and "LLaMA" in c.claim and "--head-dim" in c.claim]
    assert len(ctl) == 1 and not ctl[0].agrees
    assert ctl[0].target == llama_general_by_hand(28, 3072, 256000, 16, 16, 192, 24576, True, False)
    # heads need not divide d_model once the head size is given
    assert ex.check(device="cpu", samples=1, d_model=1000, heads=3, head_dim=64).passed


def test_check_covers_gqa_and_head_sizes_by_default():
    """Without any flag the check still counts grouped-query attention and free head sizes exactly."""
    res = ex.check(device="cpu", samples=4)
    names = " ".join(c.claim for c in res.claims if c.agrees)
    assert "Llama-2-70B: LLaMA style GPT = published" in names and "Gemma-7B: LLaMA style torch.nn" in names
    rand = ex.random_shapes(8, 0)
    assert any(s["kv"] != s["h"] for s in rand) and any(s["dh"] * s["h"] != s["d"] for s in rand)


def test_a_count_that_ignores_kv_heads_fails_the_check(monkeypatch):
    """If the torch.nn builder ignored --kv-heads (K and V d x d, as before), the check fails."""
    monkeypatch.setitem(ex.BUILDERS, "llama", (gpt_llama, lambda s: torch_llama(s | {"kv": None})))
    res = ex.check(device="cpu", samples=1, **LLAMA2_70B_FLAGS)
    assert not res.passed
    bad = [c for c in res.claims if not c.agrees]
    assert any("LLaMA style from torch.nn = its formula" in c.claim for c in bad)
    assert any("Llama-2-70B: LLaMA style torch.nn = published" in c.claim for c in bad)


def test_meta_counts_equal_real_allocation():
    """Skipping initialisers on the meta device changes no count, and leaves initialisation working after."""
    meta = gpt_gpt2(dict(L=2, d=16, V=50, h=2, n=8))
    real = GPT(GPTConfig(block_size=8, vocab_size=50, n_layer=2, n_head=2, n_embd=16))
    assert real.num_params() == meta == gpt2_by_hand(2, 16, 50, 2, 8)
    assert next(real.parameters()).device.type == "cpu" and real.wte.weight.std() > 0
    t = torch.zeros(3)
    torch.nn.init.ones_(t)  # would stay zero if the initialiser were still skipped
    assert t.sum() == 3


def test_default_check_numbers():
    res = ex.check(device="cpu")
    assert len(res.controls) >= 8
    exact = [c for c in res.claims if c.tol == 0]
    assert len(exact) >= 20 and all(c.measured == c.target for c in exact)
    within = [c for c in res.claims if "13.17, rule within 5%" in c.claim]
    assert len(within) == 1 and abs(within[0].measured + 0.00502) < 1e-4  # the rule is 0.50% low
    gpt2_5 = [c for c in res.controls if "within 5% of the GPT-2" in c.claim]
    assert len(gpt2_5) == 1 and "13.12" in gpt2_5[0].claim and abs(gpt2_5[0].measured - 0.1405) < 1e-3
    rows = {(r["case"], r["model"].split()[0]): r for r in res.table}
    assert rows["13.12", "GPT-2"]["exact"] == gpt2_by_hand(24, 1024, 50000, 16, 1024) == 354_560_000
    assert rows["13.17", "LLaMA"]["exact"] == llama_by_hand(32, 4096, 32000, 11008)
    for r in res.table:
        assert r["rule-exact"] == r["rule"] - r["exact"]
        assert r["rule"] == rule_by_hand(*((24, 1024, 50000) if r["case"] == "13.12" else (32, 4096, 32000)))
    assert any("Answer 13.12" in n and "404,389,888" in n for n in res.notes)
    assert any("13.17 within 5%: yes" in n for n in res.notes)


def test_a_wrong_rule_fails_the_check(monkeypatch):
    """The exact comparisons can fail: with one V d term the rule's own claims disagree."""
    monkeypatch.setattr(ex, "RULE", 12 * ex.L * ex.d**2 + ex.V * ex.d)
    res = ex.check(device="cpu", samples=1, exercise="13.12")
    assert not res.passed
    assert any(not c.agrees and "12Ld^2 + 2Vd" in c.claim for c in res.claims)


def test_presets_and_custom_shapes():
    cases = lambda **kw: ex.cases(options(ex, **kw))
    assert [label for label, _ in cases()] == ["13.12", "13.17"]
    assert [label for label, _ in cases(exercise="13.17")] == ["13.17"]
    assert cases(exercise="13.17", heads=64)[0][0] == "13.17"  # heads and n_ctx do not change the rule
    (label, s), *rest = cases(layers=48, d_model=1600, vocab=50257, heads=25)
    assert label == "custom" and not rest and s["ff"] == 4352
    res = ex.check(device="cpu", samples=1, layers=48, d_model=1600, vocab=50257, heads=25)
    assert res.passed
    gpt2 = [r for r in res.table if r["model"].startswith("GPT-2")][0]
    assert gpt2["exact"] == gpt2_by_hand(48, 1600, 50257, 25, 1024) == 1_557_611_200  # GPT-2 XL
    assert not any("13.17, rule within 5%" in c.claim for c in res.claims)


def test_unset_leaves_the_value_to_the_exercise_and_zero_is_refused():
    """An unset size (None, the default) is the exercise's value; an unset switch is each style's own."""
    plain = ex.cases(options(ex))
    assert ex.cases(options(ex, layers=None, kv_heads=None, head_dim=None, bias=None, tie_embeddings=None)) == plain
    assert [s["tie"] for _, s in plain] == [None, None]
    (label, s), *rest = ex.cases(options(ex, bias="yes"))
    assert label == "custom" and not rest and s["bias"] is True and s["L"] == 24
    for bad in (dict(layers=0), dict(bias="style")):
        with pytest.raises(ValueError, match=f"^{next(iter(bad))}: "):
            options(ex, **bad)


def test_check_is_seeded():
    a, b = ex.check(device="cpu", samples=3, seed=5), ex.check(device="cpu", samples=3, seed=5)
    assert a.to_dict() == b.to_dict()
    assert ex.random_shapes(4, 1) != ex.random_shapes(4, 2)


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"heads": 5}, "heads"),  # does not divide 13.12's d = 1024
        ({"d_model": 96, "heads": 32}, "heads"),  # head size 3: odd, no RoPE
        ({"kv_heads": 3}, "kv_heads"),  # 13.12's 16 heads
        ({"heads": 8, "kv_heads": 16}, "kv_heads"),
        ({"head_dim": 63}, "head_dim"),  # odd: no RoPE
    ],
)
def test_head_rules_raise_naming_the_option(opts, name):
    with pytest.raises(ValueError, match=rf"^{name}:") as e:
        ex.check(**opts)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ex.answer(**opts)  # --no-check refuses them too


def test_the_device_is_not_used_but_checked():
    with pytest.raises(ValueError, match="^device"):
        ex.check(device="tpu")


def test_kv_heads_message(capsys):
    with pytest.raises(ValueError) as e:
        options(ex, heads=64, kv_heads=7)
    assert str(e.value) == "kv_heads: must divide heads=64, got 7"
    assert cli_exit(ex, ["--heads", "64", "--kv-heads", "7"]) == 2
    assert capsys.readouterr().err.strip() == "error: --kv-heads: must divide --heads=64, got 7"


def test_cli_json_for_one_exercise(capsys):
    assert ex.main(["--json", "--exercise", "13.17", "--samples", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["exercise"] == "13.12"
    assert out["derivation"]["status"] == "proved"
    assert {r["case"] for r in out["check"]["table"]} == {"13.17"}


def test_cli_no_check_answers_for_the_shapes_asked(capsys):
    assert ex.main(["--json", "--no-check", *LLAMA2_70B_ARGV]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "NOT CHECKED" and f"{LLAMA2_70B:,} by its formula" in out["answer"][2]


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--heads", "5"], "--heads"),
        (["--heads", "64", "--kv-heads", "7"], "--kv-heads"),
        (["--head-dim", "5"], "--head-dim"),
    ],
)
def test_cli_head_rules_in_one_line(argv, name, capsys, monkeypatch):
    monkeypatch.setattr(ex, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(ex, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}:") and err.count("\n") == 1

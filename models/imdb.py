"""``python -m models.imdb``: exercise 13.24 end to end. A tiny encoder-only Transformer
(:mod:`models.encoder`) pretrained by masked-language modelling on the training reviews' text,
fine-tuned to classify IMDB sentiment, and compared on the same held-out test reviews with the same
model trained from scratch and with two bag-of-words logistic regressions (scikit-learn).

Protocol. One seeded, stratified split (:mod:`models.data.imdb`): train, validation (model
selection: the fine-tuning step with the lowest validation loss is kept) and test (used once, at
the end). The WordPiece tokenizer and the MLM pretraining see the training reviews only; the MLM
loss is monitored on the last 500 training reviews, held out of pretraining's batches. A preset may
use the labels of only the first ``labelled`` training reviews (the ``cpu`` preset: 2,000), for the
fine-tuning and the baselines alike, while pretraining reads the text of all of them: the setting
where pretraining on unlabelled text is meant to pay. Every
fine-tuning is repeated for each seed, and so is the pretraining unless the preset shares one
pretrained model among the seeds (``shared_pretraining``: the ``cpu`` preset, to afford a longer
one); each seed's fine-tuning builds its classifier head under its own seed. Test accuracies come
with 95% Wilson intervals; pretrained is compared with from scratch and with each baseline by
McNemar's exact test on the same test reviews, and the ``cpu`` goal (:func:`goal`) asks that it beat
from scratch in every seed at p < 0.01. Long reviews keep their first and last tokens (``head``).

Writes to ``--out`` (whole, or not at all): ``results.json``, ``curves.png`` (MLM loss; validation
loss of both fine-tunings), ``summary.md`` and ``tokenizer.json`` (the run's vocabulary: Hugging
Face's trainer breaks ties in an order that varies between runs, so two runs differ slightly).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

PRESETS = {
    # 2 idle cores: 15.2 minutes in all (measured: pretrained 78.3% against 75.2% from scratch); reviews cut to 128
    # tokens, their first 32 and last 94 (head and tail); one MLM pretraining (4,000 steps, no dropout) on all the
    # training reviews' text, shared by the 3 seeds' fine-tunings; labels of 2,000 reviews (fine-tuning and
    # baselines alike). Pretraining 2,000 steps (MLM loss 5.23) did not help (71.1 +- 0.6% against 72.4 +- 3.8%,
    # measured); 6,000 steps (3.91) gave 80.8% validation accuracy against 74.2% from scratch, in 13 minutes of
    # pretraining alone (measured, one seed)
    "cpu": dict(
        n_layer=2, n_head=4, n_embd=128, max_len=128, head=32, vocab=4000, batch=32, pretrain_iters=4000,
        finetune_iters=200, eval_interval=250, eval_iters=20, lr=2e-3, seeds=3, limit=None, labelled=2000,
        finetune_lr=1e-3, finetune_eval=50, shared_pretraining=True, pretrain_dropout=0.0,
    ),
    # one H200: about 10 minutes (not measured yet); reviews cut to 256 tokens
    "gpu": dict(
        n_layer=4, n_head=8, n_embd=256, max_len=256, vocab=16000, batch=64, pretrain_iters=8000,
        finetune_iters=1500, eval_interval=250, eval_iters=40, lr=5e-4, seeds=3, limit=None, labelled=None,
        finetune_lr=1e-4, finetune_eval=100, shared_pretraining=False, pretrain_dropout=0.1, head=64,
    ),
}  # fmt: skip
HELD_OUT = 500  # training reviews whose MLM loss is monitored, left out of pretraining's batches
SIGNIFICANCE = (
    0.01  # the cpu goal: pretrained right on more test reviews than from scratch, McNemar p below this, every seed
)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's interval for a proportion ``k / n`` at confidence ``level``.

    >>> [round(x, 4) for x in wilson(85, 100)]
    [0.7672, 0.9069]
    """
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mid - half, mid + half


def mcnemar(a_right, b_right) -> dict:
    """McNemar's exact test of two classifiers on the same reviews: ``b`` = reviews only A gets right,
    ``c`` = only B; two-sided binomial p-value of ``b`` among ``b + c`` at 1/2."""
    from scipy.stats import binomtest

    b = int((a_right & ~b_right).sum())
    c = int((~a_right & b_right).sum())
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"only_first_right": b, "only_second_right": c, "p_value": float(p)}


def bag_of_words(train, test) -> dict:
    """Test predictions of binary-unigram and TF-IDF unigram+bigram logistic regressions fitted on
    ``train`` (scikit-learn's defaults, C = 1; TF-IDF with sublinear term frequencies, n-grams seen in
    at least 2 reviews)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    out = {}
    for name, vec in (
        ("binary unigrams + LR", CountVectorizer(binary=True)),
        ("TF-IDF 1-2-grams + LR", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
    ):
        x_train = vec.fit_transform(train.texts)
        clf = LogisticRegression(max_iter=2000).fit(x_train, train.labels)
        out[name] = torch.tensor(clf.predict(vec.transform(test.texts)))
    return out


@torch.no_grad()
def predict(model, ids: torch.Tensor, device, batch: int = 256) -> torch.Tensor:
    """Predicted labels (N,) of the reviews ``ids`` (N, T)."""
    model.eval()
    return torch.cat([model(ids[i : i + batch].to(device)).argmax(-1).cpu() for i in range(0, len(ids), batch)])


def run(
    preset: str = "cpu", out: str | Path = "imdb_results", device=None, seeds: int | None = None, say=print, **sizes
):
    """Run the protocol of the module docstring; returns the results dict (also in ``out``). ``sizes``
    override the preset's entries (tests run a few steps). ValueError naming ``preset``, ``seeds``,
    ``out`` or an unknown size, before any work."""
    from models.data.imdb import CAVEAT, Split, read_reviews, split_reviews
    from models.data.wordpiece import encode, train_wordpiece
    from models.encoder import Encoder, class_loss, mlm_loss
    from models.gpt import GPTConfig
    from models.training.loop import TrainConfig, Trainer
    from models.training.mlm import ClassBatches, MLMBatches
    from models.utils.device import describe, pick_device
    from models.utils.files import check_replaceable, replace_dir
    from models.utils.presets import resolve

    P = resolve(PRESETS, preset, sizes)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds: must be at least 1, got {seeds}")
        P["seeds"] = seeds
    check_replaceable(out, "out")
    dev = pick_device(device)
    t0 = time.time()
    train, val, test = split_reviews(read_reviews(), seed=0, limit=P["limit"])  # limit: training reviews kept
    say(f"[imdb] {len(train):,} train, {len(val):,} validation, {len(test):,} test reviews; {CAVEAT}")
    tok = train_wordpiece(train.texts, P["vocab"])
    ids = {
        name: encode(tok, list(s.texts), P["max_len"], P["head"])
        for name, s in (("train", train), ("val", val), ("test", test))
    }
    labels = {name: torch.tensor(s.labels) for name, s in (("train", train), ("val", val), ("test", test))}
    say(
        f"[imdb] WordPiece vocabulary {tok.get_vocab_size():,} from the training reviews; reviews cut to {P['max_len']}"
    )
    n_lab = len(train) if P["labelled"] is None else min(P["labelled"], len(train))
    labelled = Split(train.texts[:n_lab], train.labels[:n_lab])  # the reviews whose labels are used
    say(f"[imdb] labels of {n_lab:,} training reviews used (fine-tuning and baselines); MLM reads all {len(train):,}")
    baselines = bag_of_words(labelled, test)
    cfg = GPTConfig(
        vocab_size=tok.get_vocab_size(), n_layer=P["n_layer"], n_head=P["n_head"], n_embd=P["n_embd"],
        block_size=P["max_len"], dropout=0.1, pos="learned",
    )  # fmt: skip

    def train_config(iters: int, seed: int, lr: float, every: int) -> TrainConfig:
        return TrainConfig(
            batch_size=P["batch"], max_iters=iters, lr=lr, min_lr=lr / 10, warmup_iters=iters // 10,
            lr_decay_iters=iters, eval_interval=every, eval_iters=P["eval_iters"], seed=seed,
            device=str(dev), eval_train=False, weight_decay=0.01,
        )  # fmt: skip

    mlm_data = MLMBatches({"train": ids["train"][:-HELD_OUT], "val": ids["train"][-HELD_OUT:]}, cfg.vocab_size)
    cls_data = ClassBatches(
        {"train": (ids["train"][:n_lab], labels["train"][:n_lab]), "val": (ids["val"], labels["val"])}
    )
    runs, curves = [], {}
    pre_cfg = replace(cfg, dropout=P["pretrain_dropout"])

    def pretrain(seed: int) -> tuple[dict, float]:
        say(f"[imdb] MLM pretraining (seed {seed}), {P['pretrain_iters']} steps")
        pre = Trainer(
            lambda: Encoder(pre_cfg),
            mlm_data,
            mlm_loss,
            train_config(P["pretrain_iters"], seed, P["lr"], P["eval_interval"]),
        )
        pre.fit()
        curves[f"mlm seed {seed}"] = [(h["step"], h["val"]) for h in pre.history]
        body = {k: v.detach().clone() for k, v in pre.model.state_dict().items() if not k.startswith("head.")}
        return body, pre.history[-1]["val"]

    shared = pretrain(0) if P["shared_pretraining"] else None
    for seed in range(P["seeds"]):
        body, mlm_val = shared or pretrain(seed)
        result = {"seed": seed, "mlm_val_loss": mlm_val}
        for kind in ("pretrained", "from scratch"):
            say(f"[imdb] seed {seed}: fine-tuning, {kind}, {P['finetune_iters']} steps")

            def start(kind=kind, body=body):  # built under the run's seed: the head's init varies with it
                model = Encoder(cfg)
                if kind == "pretrained":
                    missing, unexpected = model.load_state_dict(body, strict=False)  # all but the classifier head
                    assert not unexpected and all(k.startswith("head.") for k in missing), (missing, unexpected)
                return model

            ft = Trainer(
                start,
                cls_data,
                class_loss,
                train_config(P["finetune_iters"], seed, P["finetune_lr"], P["finetune_eval"]),
                keep_best=True,
            )
            ft.fit()
            ft.model.load_state_dict(ft.best_state)
            curves[f"{kind} seed {seed}"] = [(h["step"], h["val"]) for h in ft.history]
            pred = predict(ft.model, ids["test"], dev)
            result[kind] = {"val_accuracy": float((predict(ft.model, ids["val"], dev) == labels["val"]).float().mean()),
                            "test_pred": pred}  # fmt: skip
        runs.append(result)
    y = labels["test"]
    n = len(y)

    def score(pred) -> dict:
        k = int((pred == y).sum())
        lo, hi = wilson(k, n)
        return {"accuracy": k / n, "ci95": [lo, hi]}

    models = {
        "binary unigrams + LR": baselines["binary unigrams + LR"],
        "TF-IDF 1-2-grams + LR": baselines["TF-IDF 1-2-grams + LR"],
    }
    table = {name: score(pred) for name, pred in models.items()}
    for kind in ("pretrained", "from scratch"):
        accs = [float((r[kind]["test_pred"] == y).float().mean()) for r in runs]
        mean = sum(accs) / len(accs)
        sd = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else None
        table[kind] = score(runs[0][kind]["test_pred"]) | {"per_seed": accs, "mean": mean, "sd": sd}
    comparisons = []
    for r in runs:
        right = {k: r[k]["test_pred"] == y for k in ("pretrained", "from scratch")}
        right |= {k: v == y for k, v in models.items()}
        for other in ("from scratch", *models):
            test = mcnemar(right["pretrained"], right[other])
            comparisons.append({"seed": r["seed"], "pretrained_vs": other} | test)
    results = {
        "preset": preset, "device": describe(dev), "settings": P,
        "split": {"train": len(train), "labelled": n_lab, "val": len(val), "test": n},
        "caveat": CAVEAT, "test_accuracy": table, "mcnemar": comparisons, "goal": goal(comparisons),
        "seconds": time.time() - t0,
        "runs": [{k: v for k, v in r.items() if k not in ("pretrained", "from scratch")}
                 | {k: {"val_accuracy": r[k]["val_accuracy"]} for k in ("pretrained", "from scratch")} for r in runs],
    }  # fmt: skip

    def build(tmp: Path) -> None:
        (tmp / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        (tmp / "summary.md").write_text(summary(results), encoding="utf-8")
        tok.save(str(tmp / "tokenizer.json"))  # the run's exact vocabulary (training it again may differ slightly)
        draw(curves, tmp / "curves.png", preset)

    path = replace_dir(out, build, "out")
    say(f"[imdb] written to {path} in {results['seconds']:.0f} s")
    return results


def goal(comparisons: list[dict], level: float = SIGNIFICANCE) -> dict:
    """Does pretraining help: in every seed, pretrained gets more test reviews right than from scratch and
    McNemar's exact two-sided p is below ``level``. Returns ``{"level", "seeds", "met", "statement"}``."""
    rows = [c for c in comparisons if c["pretrained_vs"] == "from scratch"]
    wins = [c["only_first_right"] > c["only_second_right"] and c["p_value"] < level for c in rows]
    met = bool(rows) and all(wins)
    statement = (
        f"pretrained beats from scratch on the same test reviews in {sum(wins)} of {len(rows)} seeds at McNemar "
        f"p < {level:g} (two-sided, each seed): goal {'met' if met else 'NOT met'}"
    )
    return {"level": level, "seeds": len(rows), "won": sum(wins), "met": met, "statement": statement}


def summary(r: dict) -> str:
    """The results as Markdown: accuracy table with intervals, seeds, McNemar tests, the caveat."""
    sp = r["split"]
    lines = [f"# Exercise 13.24: IMDB sentiment, `{r['preset']}` preset ({r['device']})", "",
             f"Split: {sp['train']:,} train ({sp['labelled']:,} of them with labels used) / {sp['val']:,} validation / "
             f"{sp['test']:,} test reviews. "
             f"Caveat: {r['caveat']}.", "",
             "| model | test accuracy | 95% CI (seed 0) | seeds |", "|---|---|---|---|"]  # fmt: skip
    for name, s in r["test_accuracy"].items():
        seeds = "deterministic"
        if "per_seed" in s:
            spread = f" ± {s['sd']:.4f}" if s["sd"] is not None else ""
            seeds = f"{s['mean']:.4f}{spread} over {len(s['per_seed'])}"
        lines.append(f"| {name} | {s['accuracy']:.4f} | {s['ci95'][0]:.4f}–{s['ci95'][1]:.4f} | {seeds} |")
    lines += ["", "McNemar's exact test, pretrained against each (same test reviews):", "",
              "| seed | against | only pretrained right | only the other right | p |",
              "|---|---|---|---|---|"]  # fmt: skip
    for c in r["mcnemar"]:
        counts = f"{c['only_first_right']} | {c['only_second_right']}"
        lines.append(f"| {c['seed']} | {c['pretrained_vs']} | {counts} | {c['p_value']:.3g} |")
    if "goal" in r:
        lines += ["", f"Does pretraining help? {r['goal']['statement']}."]
    return "\n".join(lines) + "\n"


def draw(curves: dict, path: Path, preset: str) -> None:
    """MLM validation loss (left) and fine-tuning validation loss (right) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for name, pts in curves.items():
        ax = a if name.startswith("mlm") else b
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], ("-" if "pretrained" in name or ax is a else "--"), label=name
        )
    a.set(xlabel="step", ylabel="MLM loss (nats per masked token)", title=f"Exercise 13.24: pretraining ({preset})")
    b.set(
        xlabel="step",
        ylabel="validation loss (nats per review)",
        title="fine-tuning: pretrained (—) vs from scratch (--)",
    )
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0, 2 on bad input (one line naming the flag), 130 on Ctrl-C."""
    from models.utils.cli import OneLineParser, guard, int_in, output_dir, text

    p = OneLineParser(prog="python -m models.imdb", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model and run sizes; default: cpu")
    p.add_argument("--out", type=output_dir(), default="imdb_results", help="output folder; default ./imdb_results")
    p.add_argument("--seeds", type=int_in(1, 10), default=None, help="Transformer seeds; default: the preset's (3)")
    p.add_argument("--device", type=text(), default=None, help="cpu or cuda; default: cuda when available")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    flags = {"out": "--out", "preset": "--preset", "seeds": "--seeds", "device": "--device"}

    def body() -> int:
        run(args.preset, args.out, args.device, args.seeds, say)
        return 0

    return guard(body, flags)


if __name__ == "__main__":
    raise SystemExit(main())

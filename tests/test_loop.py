"""The generic training loop with a model that is not a GPT: a small classifier of points, its own
batch source (dict batches cut from fixed tensors) and its own loss. It trains, evaluates with
standard errors on fixed batches, checkpoints and resumes to exactly the same losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from models.training.loop import Diverged, TrainConfig, Trainer

D, K = 4, 3  # input width, classes


class Blobs:
    """Points of K Gaussian blobs, 2000 for training and 500 for validation (fixed by ``seed``);
    batches are dicts ``{"x": (B, D) float, "label": (B,) int64}`` drawn with the loop's generator."""

    eval_splits = ("train", "val")

    def __init__(self, seed=0, splits=None):
        g = torch.Generator().manual_seed(seed)
        centers = 2.0 * torch.randn(K, D, generator=g)
        self.data = {}
        for split, n in (("train", 2000), ("val", 500)):
            label = torch.randint(K, (n,), generator=g)
            self.data[split] = (centers[label] + torch.randn(n, D, generator=g), label)
        if splits is not None:
            self.eval_splits = splits
            self.data |= {s: self.data["val"] for s in splits if s not in self.data}

    def to(self, device):
        self.data = {k: (x.to(device), y.to(device)) for k, (x, y) in self.data.items()}
        return self

    def batch(self, split, batch_size, gen):
        if split not in self.data:
            raise ValueError(f"split: unknown {split!r}")
        x, label = self.data[split]
        ix = torch.randint(len(x), (batch_size,), generator=gen).to(x.device)
        return {"x": x[ix], "label": label[ix]}


def xent(model, batch):
    """Mean cross-entropy over the batch, in nats per point."""
    return F.cross_entropy(model(batch["x"]), batch["label"])


def classifier():
    return torch.nn.Sequential(torch.nn.Linear(D, 32), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, K))


def _trainer(out=None, resume=False, source=None, loss=xent, **kw):
    tc = TrainConfig(
        **(
            dict(
                batch_size=16,
                max_iters=20,
                lr=1e-2,
                min_lr=1e-3,
                warmup_iters=2,
                lr_decay_iters=20,
                eval_interval=10,
                eval_iters=4,
                log_interval=1,
                device="cpu",
                out=out,
                resume=resume,
                progress=False,
            )
            | kw
        )
    )
    return Trainer(classifier, source or Blobs(), loss, tc, model_config={"kind": "classifier", "width": 32})


def test_it_trains_and_reports_standard_errors():
    t = _trainer(max_iters=60, eval_interval=30, eval_iters=8)
    before = t.evaluate()  # the untrained model: near chance, log K nats
    s = t.fit()
    first, last = s["history"]
    assert abs(before["val"] - math.log(K)) < 0.5 and last["val"] < 0.4 * before["val"]  # it learns the blobs
    assert last["val"] < first["val"] and last["train"] < 0.4 * before["train"]
    for h in s["history"]:
        assert set(h) >= {"step", "train", "train_se", "val", "val_se", "lr", "elapsed", "run_s"}
        assert 0 < h["val_se"] < h["val"] and 0 < h["train_se"] < h["train"]
    assert s["params"] == (D + 1) * 32 + 33 * K and s["steps"] == 60 and s["best_val"] == last["val"]


def test_evaluation_is_the_mean_and_its_standard_error_over_fixed_batches():
    t = _trainer(eval_iters=5)
    ev = t.evaluate()
    assert t.evaluate() == ev  # the same batches each time
    gen = torch.Generator().manual_seed(t.tc.seed + 10_000)
    t.model.eval()
    with torch.no_grad():
        for split in ("train", "val"):
            losses = torch.tensor([xent(t.model, t.source.batch(split, 16, gen)).item() for _ in range(5)])
            assert ev[split] == pytest.approx(losses.mean().item(), rel=1e-6)
            assert ev[split + "_se"] == pytest.approx((losses.std() / math.sqrt(5)).item(), rel=1e-4)
    assert ev["train"] != ev["val"]  # control: the splits are told apart


def test_checkpoint_resumes_to_exactly_the_same_losses(tmp_path):
    full = _trainer(max_iters=20).fit()
    out = tmp_path / "run"
    _trainer(out=str(out), max_iters=10).fit()
    assert torch.load(out / "ckpt.pt", weights_only=True)["model_config"] == {"kind": "classifier", "width": 32}
    resumed = _trainer(out=str(out), resume=True, max_iters=20).fit()
    tail = lambda s: [loss for step, loss in s["train_losses"] if step > 10]  # noqa: E731
    assert len(tail(full)) == 10 and tail(resumed) == tail(full)  # bit for bit, dropout included
    assert [h["step"] for h in resumed["history"]] == [10, 20]  # the first evaluation came from the checkpoint
    assert [h["val"] for h in resumed["history"]] == [h["val"] for h in full["history"]]
    assert tail(_trainer(max_iters=20, seed=7).fit()) != tail(full)  # control: another seed differs


def test_resume_with_another_model_config_is_refused(tmp_path):
    out = tmp_path / "run"
    _trainer(out=str(out), max_iters=10).fit()
    tc = TrainConfig(batch_size=16, max_iters=20, device="cpu", out=str(out), resume=True, progress=False)
    with pytest.raises(ValueError, match="model config differs"):
        Trainer(classifier, Blobs(), xent, tc, model_config={"kind": "classifier", "width": 64})
    assert Trainer(classifier, Blobs(), xent, tc, model_config={"kind": "classifier", "width": 32}).step == 10


def test_a_built_module_and_extra_evaluation_splits():
    tc = TrainConfig(batch_size=8, max_iters=4, eval_interval=4, eval_iters=2, device="cpu", progress=False)
    torch.manual_seed(0)
    s = Trainer(classifier(), Blobs(splits=("val", "ood")), xent, tc).fit()
    assert set(s["history"][0]) >= {"val", "val_se", "ood", "ood_se"} and "train" not in s["history"][0]
    with pytest.raises(ValueError, match="eval_splits: must include 'val'"):
        Trainer(classifier(), Blobs(splits=("train", "ood")), xent, tc)


def test_memory_estimate_refused_and_nan_loss_diverges():
    tc = TrainConfig(batch_size=8, max_iters=4, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"^--width 10\^20: needs about"):
        Trainer(classifier, Blobs(), xent, tc, memory=("--width 10^20", 1e30))
    Trainer(classifier, Blobs(), xent, tc, memory=("--width 32", 1e3))  # control: a small estimate passes
    with pytest.raises(Diverged, match="training diverged: loss nan at step 1"):
        _trainer(loss=lambda m, b: xent(m, b) * float("nan")).fit()


def test_compile_blocks_needs_repeated_layers():
    with pytest.raises(ValueError, match="^compile: 'blocks' needs"):
        _trainer(compile="blocks")

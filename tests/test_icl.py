"""Exercise 13.8's parts: the in-context regressor (models.icl), its prompts, baselines, shuffled control and run."""

import json

import pytest
import torch

from models.gpt import GPTConfig
from models.icl import InContextRegressor, interleave
from models.training import icl_run as R


def _prompts(n=6, d=3, points=7, seed=0, dtype=torch.float64):
    return R.sample_prompts(n, d, points, torch.Generator().manual_seed(seed), dtype=dtype)


def _model(d=3, points=7):
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=2 * points, vocab_size=1, n_layer=2, n_head=2, n_embd=16)
    return InContextRegressor(d, points, cfg).double().eval()


def test_interleave_puts_x_tokens_then_pair_tokens():
    xs, ys = _prompts()
    z = interleave(xs, ys)
    assert z.shape == (6, 14, 4)
    assert torch.equal(z[:, 0::2, :3], xs) and torch.equal(z[:, 1::2, :3], xs)
    assert torch.equal(z[:, 0::2, 3], torch.zeros_like(ys)) and torch.equal(z[:, 1::2, 3], ys)


def test_prediction_i_never_sees_its_own_value_or_later_pairs():
    xs, ys = _prompts()
    model = _model()
    with torch.no_grad():
        base = model(xs, ys)
        for i in range(7):
            ys2, xs2 = ys.clone(), xs.clone()
            ys2[:, i:] += 100.0  # its own value and every later one
            xs2[:, i + 1 :] -= 50.0  # every later point
            out = model(xs2, ys2)
            assert torch.allclose(out[:, : i + 1], base[:, : i + 1], atol=1e-12)
            if i + 1 < 7:
                assert not torch.allclose(out[:, i + 1 :], base[:, i + 1 :])  # later positions do see them


def test_bad_shapes_and_sizes_are_named():
    model = _model()
    xs, ys = _prompts()
    with pytest.raises(ValueError, match="^xs: "):
        model(xs[..., :2], ys)
    with pytest.raises(ValueError, match="^ys: "):
        model(xs, ys[:, :3])
    with pytest.raises(ValueError, match="^d: "):
        InContextRegressor(0, 3, GPTConfig(block_size=6, vocab_size=1, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="^block_size: "):
        InContextRegressor(2, 4, GPTConfig(block_size=6, vocab_size=1, n_layer=1, n_head=1, n_embd=8))


def test_least_squares_fits_its_examples_and_is_exact_from_k_equal_d():
    xs, ys = _prompts(n=50, d=3, points=7)
    pred = R.least_squares(xs, ys)
    assert torch.equal(pred[:, 0], torch.zeros(50, dtype=torch.float64))
    assert (pred[:, 3:] - ys[:, 3:]).abs().max() < 1e-10  # k >= d: w is determined
    assert (pred[:, 1:3] - ys[:, 1:3]).abs().max() > 1e-3  # k < d: it is not
    # at k = 1 the min-norm fit is w_est = y_1 x_1 / |x_1|^2
    w1 = ys[:, 0, None] * xs[:, 0] / (xs[:, 0] ** 2).sum(-1, keepdim=True)
    assert torch.allclose(pred[:, 1], (w1 * xs[:, 1]).sum(-1), atol=1e-12)


def test_averaging_is_the_mean_of_y_x_over_the_examples_before():
    xs, ys = _prompts()
    pred = R.averaging(xs, ys)
    for i in range(1, 7):
        w = (ys[:, :i, None] * xs[:, :i]).mean(1)
        assert torch.allclose(pred[:, i], (w * xs[:, i]).sum(-1), atol=1e-12)
    assert torch.equal(pred[:, 0], torch.zeros(6, dtype=torch.float64))


def test_exact_errors():
    assert [R.exact_least_squares(4, k) for k in (0, 1, 2, 4, 8)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert R.exact_averaging(4, 0) == 1.0 and R.exact_averaging(4, 5) == 1.0 and R.exact_averaging(4, 10) == 0.5
    assert R.key_points(5, 11) == [1, 2, 5, 10] and R.key_points(1, 3) == [1, 2]


def test_shuffled_pairs_of_a_sequence_come_from_distinct_prompts():
    B, n = 9, 7
    xs = torch.arange(B, dtype=torch.float64)[:, None, None].expand(B, n, 2).clone()  # x holds the prompt's id
    ys = torch.arange(B, dtype=torch.float64)[:, None].expand(B, n).clone()
    xsh, ysh = R.shuffle_across_prompts(xs, ys)
    assert torch.equal(xsh[..., 0], ysh)  # pairs stay whole
    for b in range(B):
        assert len(set(ysh[b].tolist())) == n  # every pair from another prompt
    assert sorted(ysh[:, 3].tolist()) == list(range(B))  # a permutation at each position
    with pytest.raises(ValueError, match="^xs: "):
        R.shuffle_across_prompts(xs[:5], ys[:5])


def test_source_draws_from_the_generator_only_and_names_a_bad_split():
    src = R.LinearPrompts(3, 7).to(torch.device("cpu"))
    a = src.batch("train", 4, torch.Generator().manual_seed(1))
    b = src.batch("val", 4, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (4, 7, 3)
    with pytest.raises(ValueError, match="^split: "):
        src.batch("test", 4, torch.Generator())


def test_paired_test_sees_a_real_difference_and_not_a_null_one():
    g = torch.Generator().manual_seed(0)
    zero = torch.rand(4000, 3, generator=g) + 0.5
    errors = {"a": zero * 0.5, "b": zero, "c": zero + 0.01 * torch.randn(4000, 3, generator=g)}
    assert R.paired_below(errors, "a", "b", 2).agrees
    assert not R.paired_below(errors, "c", "b", 2).agrees


def test_sizes_are_checked_by_name():
    P = dict(R.PRESETS["cpu"])
    for key, bad, pat in [("n_points", 10, "^n_points: "), ("n_head", 3, "^n_head: "), ("lr", -1.0, "^lr: "),
                          ("eval_prompts", 5, "^eval_prompts: "), ("iters", 0, "^iters: ")]:  # fmt: skip
        with pytest.raises(ValueError, match=pat):
            R.check_sizes(P | {key: bad})
    with pytest.raises(ValueError, match="^preset: "):
        R.run("tpu", "unused")
    with pytest.raises(ValueError, match="^no_such: "):
        R.run("cpu", "unused", no_such=1)


@pytest.mark.slow
def test_a_tiny_run_writes_results_and_figure(tmp_path):
    out = tmp_path / "icl"
    sizes = dict(d=2, n_points=5, n_layer=1, n_head=2, n_embd=16, batch=16, iters=4, eval_interval=2,
                 eval_iters=1, eval_prompts=40)  # fmt: skip
    res = R.run("cpu", out, "cpu", 0, lambda m: None, **sizes)
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["d"] == 2 and set(saved["curves"]) == set(R.METHODS)
    assert len(saved["curves"]["model"]["mean"]) == 5 and [p["k"] for p in saved["key_points"]] == [1, 2, 4]
    assert saved["curves"]["least squares"]["mean"][2] < 1e-9 and res["settings"]["iters"] == 4
    assert (out / "errors.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_bad_flags_in_one_line(capsys):
    for argv, flag in [(["--preset", "tpu"], "--preset"), (["--iters", "0"], "--iters"), (["--seed", "-1"], "--seed")]:
        with pytest.raises(SystemExit) as e:
            R.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and flag in err

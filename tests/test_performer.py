"""FAVOR+ (models.performer): orthogonal Gaussian features, positive unbiased kernel estimates,
the linear-time reordering equal to the explicit n x n formula, and the approximation of softmax
attention with an error bound that shrinks like r^(-1/2)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from models.performer import (
    PerformerAttention,
    exact_attention,
    favor_attention,
    orthogonal_gaussian,
    positive_features,
    trig_features,
)
from numeric.stats import Estimate, compare

F64 = torch.float64
RATE = 1e-9  # false-alarm rate of every Monte Carlo comparison here


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def explicit_favor(q, k, v, w, causal=False):
    """The quadratic form: A = phi(Q) phi(K)^T (n x n, unstabilised), rows normalised, times V."""
    s = q.size(-1) ** -0.25
    a = positive_features(q * s, w) @ positive_features(k * s, w).transpose(-2, -1)
    if causal:
        a = a.tril()
    return (a / a.sum(-1, keepdim=True)) @ v


# -- orthogonal Gaussian features ---------------------------------------------------------------


@pytest.mark.parametrize("r, d", [(8, 8), (20, 8), (3, 8), (64, 16)])
def test_rows_orthogonal_within_blocks_and_shape(r, d):
    w = orthogonal_gaussian(r, d, gen(1), dtype=F64)
    assert w.shape == (r, d) and w.dtype == F64
    for b in range(math.ceil(r / d)):
        blk = w[b * d : (b + 1) * d]
        gram = blk @ blk.T
        off = gram - torch.diag(torch.diagonal(gram))
        assert off.abs().max() <= 1e-12 * gram.diagonal().max()  # orthogonal up to float64 rounding
    norms = w.norm(dim=1)
    assert norms.std() > 0  # chi-distributed norms, not all equal


def test_seeded_and_reproducible():
    assert torch.equal(orthogonal_gaussian(24, 8, gen(5)), orthogonal_gaussian(24, 8, gen(5)))
    assert not torch.equal(orthogonal_gaussian(24, 8, gen(5)), orthogonal_gaussian(24, 8, gen(6)))


def test_rows_are_marginally_standard_gaussian():
    # A Haar row times an independent chi_d norm is exactly N(0, I_d): E[w^2] = 1 and E[w^4] = 3.
    # Var(w^2) = 3 - 1 = 2 and Var(w^4) = 105 - 9 = 96 give the standard errors. Control: rows of
    # norm sqrt(d) (no chi scaling) have E[w^4] = 3d/(d+2) = 2.4 at d = 8, which is rejected.
    d = 8
    w = orthogonal_gaussian(d * 6000, d, gen(2), dtype=F64).reshape(-1)  # 384,000 coordinates
    N = w.numel()
    m2, m4 = w.pow(2).mean().item(), w.pow(4).mean().item()
    assert compare(Estimate(m2, math.sqrt(2 / N), N), 1.0, "E[w^2]", RATE).agrees
    assert compare(Estimate(m4, math.sqrt(96 / N), N), 3.0, "E[w^4]", RATE).agrees
    rows = w.reshape(-1, d)
    fixed = (rows / rows.norm(dim=1, keepdim=True) * math.sqrt(d)).reshape(-1)
    f4 = fixed.pow(4).mean().item()
    assert not compare(Estimate(f4, math.sqrt(96 / N), N), 3.0, "E[w^4], no chi norms", RATE).agrees


# -- positive features --------------------------------------------------------------------------


@pytest.mark.parametrize("stabilize", [None, "row", "global"])
def test_features_positive_and_stabilised(stabilize):
    x = torch.randn(2, 30, 8, generator=gen(3)) * 3  # large norms: exp would span many decades
    w = orthogonal_gaussian(32, 8, gen(4))
    phi = positive_features(x, w, stabilize)
    assert phi.shape == (2, 30, 32) and (phi >= 0).all() and torch.isfinite(phi).all()
    top = 1 / math.sqrt(32)
    if stabilize == "row":  # each row's largest feature is exp(0) / sqrt(r)
        assert torch.allclose(phi.amax(-1), torch.full((2, 30), top))
    if stabilize == "global":
        assert torch.allclose(phi.amax((-2, -1)), torch.full((2,), top))


@pytest.mark.parametrize("orthogonal", [False, True])
def test_kernel_estimate_unbiased(orthogonal):
    # E[exp(w.x - |x|^2/2) exp(w.y - |y|^2/2)] = exp(x.y) for w ~ N(0, I). Per term, the relative
    # variance is exp(|x+y|^2) - 1. Orthogonal rows are correlated within a block, so the samples
    # are block means (blocks are independent). Control: a 5 % larger value is rejected.
    d = 4
    x = torch.tensor([0.3, -0.2, 0.4, 0.1], dtype=F64)
    y = torch.tensor([0.2, 0.1, -0.3, 0.3], dtype=F64)
    g = gen(7)
    w = (
        orthogonal_gaussian(d * 100_000, d, g, dtype=F64)
        if orthogonal
        else torch.randn(400_000, d, generator=g, dtype=F64)
    )
    terms = torch.exp(w @ (x + y) - (x @ x + y @ y) / 2).reshape(-1, d).mean(1)  # block means
    est = Estimate(terms.mean().item(), terms.std().item() / math.sqrt(terms.numel()), terms.numel())
    truth = math.exp(x @ y)
    assert compare(est, truth, "E[phi(x).phi(y)]", RATE).agrees
    assert not compare(est, 1.05 * truth, "5 % too large", RATE).agrees
    # and phi itself: r features give the mean of r such terms
    phi = positive_features(x[None], w[:64]) @ positive_features(y[None], w[:64]).T
    assert torch.allclose(phi, torch.exp(w[:64] @ (x + y) - (x @ x + y @ y) / 2).mean().reshape(1, 1))


def test_trig_features_can_be_negative_positive_never():
    x = torch.randn(64, 8, generator=gen(8), dtype=F64)
    w = orthogonal_gaussian(8, 8, gen(9), dtype=F64)
    assert ((trig_features(x, w) @ trig_features(x, w).T) < 0).any()
    assert ((positive_features(x, w) @ positive_features(x, w).T) >= 0).all()


# -- the linear-time reordering is exact ----------------------------------------------------------


@given(
    n=st.integers(1, 24),
    d=st.integers(1, 8),
    r=st.integers(1, 20),
    dv=st.integers(1, 6),
    scale=st.floats(0.1, 2.0),
    causal=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_reordering_equals_explicit_quadratic_form(n, d, r, dv, scale, causal, seed):
    # phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1) = (phi(Q) phi(K)^T) V / rowsum, with stabilisers
    g = gen(seed)
    q, k = (torch.randn(2, n, d, generator=g, dtype=F64) * scale for _ in range(2))
    v = torch.randn(2, n, dv, generator=g, dtype=F64)
    w = orthogonal_gaussian(r, d, g, dtype=F64)
    got = favor_attention(q, k, v, w, causal=causal)
    want = explicit_favor(q, k, v, w, causal=causal)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_stabiliser_keeps_large_inputs_finite():
    # |x|^2/2 ~ 450 would overflow exp without the subtracted maxima; the output stays a convex
    # combination of the value rows.
    g = gen(10)
    q, k = (torch.randn(50, 16, generator=g) * 15 for _ in range(2))
    v = torch.randn(50, 16, generator=g)
    y = favor_attention(q, k, v, orthogonal_gaussian(64, 16, g))
    assert torch.isfinite(y).all()
    assert (y <= v.amax(0) + 1e-4).all() and (y >= v.amin(0) - 1e-4).all()


# -- approximation of softmax attention ----------------------------------------------------------


def test_error_bound_shrinks_with_r():
    # One kernel estimate has relative standard deviation eps = sqrt((exp(|x+y|^2) - 1) / r) (iid
    # rows; orthogonal rows are no worse). The output row is a ratio N / D of two such averages, and
    # to first order its relative error is at most |dN/N| + |dD/D|, about 2 eps: the stated bound is
    # 2 c / sqrt(r) with c^2 = exp(mean |x+y|^2) - 1 (about e^2 - 1 here), for the mean over redraws.
    n, d = 64, 32
    g = gen(11)
    q, k = (torch.randn(n, d, generator=g, dtype=F64) * d**-0.25 for _ in range(2))
    v = torch.randn(n, d, generator=g, dtype=F64)
    ref = exact_attention(q, k, v)
    s2 = ((q[:, None] + k[None]) * d**-0.25).pow(2).sum(-1).mean().item()
    c = math.sqrt(math.exp(s2) - 1)
    errs = {}
    for r in (32, 512):
        e = [
            ((favor_attention(q, k, v, orthogonal_gaussian(r, d, g, dtype=F64)) - ref).norm() / ref.norm()).item()
            for _ in range(6)
        ]
        errs[r] = sum(e) / len(e)
        assert errs[r] <= 2 * c / math.sqrt(r), (r, errs[r], 2 * c / math.sqrt(r))
    assert errs[512] < errs[32] / 2  # sqrt(512 / 32) = 4 expected; 2 leaves room for noise


def test_causal_approximates_causal_softmax():
    n, d = 64, 16
    g = gen(12)
    q, k = (torch.randn(n, d, generator=g, dtype=F64) * d**-0.25 for _ in range(2))
    v = torch.randn(n, d, generator=g, dtype=F64)
    ref = exact_attention(q, k, v, causal=True)
    y = favor_attention(q, k, v, orthogonal_gaussian(2048, d, g, dtype=F64), causal=True)
    assert torch.allclose(y[0], ref[0])  # the first query sees only itself: exact for any features
    # the same first-order bound as above, 2 c / sqrt(r), derived from the kernel estimator's variance
    s2 = ((q[:, None] + k[None]) * d**-0.25).pow(2).sum(-1).mean().item()
    bound = 2 * math.sqrt(math.exp(s2) - 1) / math.sqrt(2048)
    assert ((y - ref).norm() / ref.norm()).item() <= bound
    wrong = favor_attention(q, k, v, orthogonal_gaussian(2048, d, g, dtype=F64), causal=False)
    assert ((wrong - ref).norm() / ref.norm()).item() > bound  # negative control: non-causal is rejected


# -- causality: no later position can change an earlier output ------------------------------------


def _issue_case(later: bool):
    """The issue's smallest case (float32, n = 2): k[0, 0] (or, ``later``, k[0, 1]) set to 35 e_0."""
    w = orthogonal_gaussian(64, 16, gen(0))
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 16) for _ in range(3))
    k[0, int(later)] = 35 * torch.eye(16)[0]
    return q, k, v, w


def _old_global_causal(q, k, v, w):
    """The plausible wrong answer (the code before the fix): one stabiliser over every key."""
    s = q.size(-1) ** -0.25
    qp, kp = positive_features(q * s, w, "row"), positive_features(k * s, w, "global")
    den = (qp * torch.cumsum(kp, dim=-2)).sum(-1, keepdim=True)
    num = (qp.unsqueeze(-2) @ torch.cumsum(kp.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)).squeeze(-2)
    return num / den.masked_fill(den == 0, 1.0)


def _prefix_kept(attn, q, k, v, w, t, q2, k2, v2):
    """Outputs at positions <= t are bit-for-bit the same when positions > t are replaced."""
    return torch.equal(attn(q, k, v, w)[..., : t + 1, :], attn(q2, k2, v2, w)[..., : t + 1, :])


@pytest.mark.parametrize("later", [False, True])
def test_issue_case_one_token_prefix_is_its_own_value(later):
    # Row 0 sees key 0 only, so it is v[0, 0] for any features. With k[0, 0] = 35 e_0 the exponent
    # of key 0 is about -189 (|k s|^2/2 = 153), the later key 1 sets the old global maximum near 0,
    # and key 0's features underflow: the old code gave zeros (checked in the negative control).
    # Log-space terms carry a relative rounding error of about eps |z| per operation, hence the
    # tolerance 8 eps max|z| (|z| <= 190 here, so about 2e-4 at worst; 7e-6 is observed).
    q, k, v, w = _issue_case(later)
    y = favor_attention(q, k, v, w, causal=True)
    assert torch.isfinite(y).all()
    zmax = (k * 16**-0.25 @ w.T - (k * 16**-0.25).pow(2).sum(-1, keepdim=True) / 2).abs().max().item()
    tol = 8 * torch.finfo(torch.float32).eps * zmax
    assert torch.allclose(y[0, 0], v[0, 0], rtol=tol, atol=tol * v[0, 0].abs().max().item())
    # the same prefix with no later position at all
    assert torch.allclose(y[0, :1], favor_attention(q[:, :1], k[:, :1], v[:, :1], w, causal=True)[0], rtol=tol, atol=0)


def test_old_global_stabiliser_fails_the_prefix_check():
    # negative control: the same check rejects the old computation on the issue's case (key 0 large,
    # key 1 replaced by a copy of key 0, which lowers the global maximum) but passes the new one
    q, k, v, w = _issue_case(later=False)
    k2 = k.clone()
    k2[0, 1] = k[0, 0]
    assert not torch.any(_old_global_causal(q, k, v, w)[0, 0])  # the bug: silent zeros
    assert not _prefix_kept(_old_global_causal, q, k, v, w, 0, q, k2, v)
    causal = lambda q, k, v, w: favor_attention(q, k, v, w, causal=True)
    assert _prefix_kept(causal, q, k, v, w, 0, q, k2, v)


@given(
    n=st.integers(2, 8),
    d=st.integers(2, 8),
    r=st.integers(1, 16),
    dv=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
)
def test_causal_prefix_outputs_ignore_later_positions(n, d, r, dv, data, seed):
    # Every op of the causal path is either per row (features, the row maximum c_i, the sums over
    # features) or a sequential prefix scan over keys (logcumsumexp on the CPU), so with the same
    # shapes the first t + 1 rows are computed from bit-identical operands: torch.equal, not allclose.
    t = data.draw(st.integers(0, n - 2), label="t")
    base = data.draw(st.floats(0.1, 10.0), label="prefix scale")  # 10: key exponents near -100s
    late = data.draw(st.floats(0.0, 100.0), label="later scale")  # 100: exponents near -1e4
    g = gen(seed)
    q, k = (torch.randn(1, n, d, generator=g) * base for _ in range(2))
    v = torch.randn(1, n, dv, generator=g)
    w = orthogonal_gaussian(r, d, g)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):
        x[:, t + 1 :] = torch.randn(x[:, t + 1 :].shape, generator=g) * late
    if data.draw(st.booleans(), label="later key on a feature row"):
        k2[0, -1] = w[0] * d**0.25  # k s = w_0: the largest possible exponent |w_0|^2/2 for feature 0
    causal = lambda q, k, v, w: favor_attention(q, k, v, w, causal=True)
    assert _prefix_kept(causal, q, k, v, w, t, q2, k2, v2)
    assert torch.isfinite(causal(q, k, v, w)).all() and torch.isfinite(causal(q2, k2, v2, w)).all()


def test_causal_gradients_finite_and_correct_at_zero_values():
    # V is split as a - b with a, b > 0 for the log-space sums; the split must not spoil gradients,
    # also where v is exactly 0 (after a ReLU, say). gradcheck compares with finite differences.
    g = gen(14)
    q, k, v = (torch.randn(1, 5, 3, generator=g, dtype=F64) for _ in range(3))
    v[0, 1, 0] = 0.0
    v[0, 3] = 0.0  # a whole row of zeros
    w = orthogonal_gaussian(6, 3, g, dtype=F64)
    for x in (q, k, v):
        x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, k, v: favor_attention(q, k, v, w, causal=True), (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_non_finite_input_raises_instead_of_a_hidden_zero(causal):
    q, k, v = (torch.randn(1, 4, 3, generator=gen(15)) for _ in range(3))
    k[0, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^q, k, v:"):
        favor_attention(q, k, v, orthogonal_gaussian(8, 3, gen(16)), causal=causal)


def test_non_causal_denominator_cannot_underflow():
    # w = 5 I (r = d = 2) and x = q s, y = k s. The query's exponents are [0, -150] after its row
    # maximum; the keys' are about [-120, 0] after the old global maximum, so every product
    # phi(q)_f phi(k)_f is below e^-120, under float32's smallest subnormal (e^-103), and the old
    # code returned 0 in silence. Keys divided by their per-feature maximum (e^{K_f} carried to the
    # query side) give D >= 1; the reference is the unstabilised formula in float64.
    s = 2**-0.25
    w = 5 * torch.eye(2)
    q = torch.tensor([[30.0, 0.0]]) / s
    k = torch.tensor([[-12.0, 12.0], [-11.0, 12.0]]) / s
    v = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    want = explicit_favor(q.double(), k.double(), v.double(), w.double())
    assert torch.allclose(favor_attention(q, k, v, w).double(), want, rtol=1e-5, atol=1e-6)


def test_exact_attention_matches_sdpa():
    g = gen(13)
    q, k, v = (torch.randn(2, 3, 20, 8, generator=g) for _ in range(3))
    for causal in (False, True):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert torch.allclose(exact_attention(q, k, v, causal=causal), want, atol=1e-5)


# -- the module ----------------------------------------------------------------------------------


def test_module_shapes_redraw_and_gradients():
    torch.manual_seed(0)  # nn.Linear initialisation only; features come from explicit generators
    m = PerformerAttention(32, 4, 16, generator=gen(1))
    x = torch.randn(2, 10, 32, generator=gen(2), requires_grad=True)
    y = m(x)
    assert y.shape == (2, 10, 32)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    w0 = m.w.clone()
    a = m.redraw(gen(3)).clone()
    assert not torch.equal(a, w0) and a.shape == (16, 8)
    assert torch.equal(m.redraw(gen(3)), a)  # same seed, same features
    assert "w" in m.state_dict()


def test_causal_module_ignores_the_future():
    torch.manual_seed(0)
    m = PerformerAttention(16, 2, 32, causal=True, generator=gen(1)).double()
    x = torch.randn(1, 12, 16, generator=gen(2), dtype=F64)
    x2 = x.clone()
    x2[:, 7:] += 5.0
    assert torch.allclose(m(x)[:, :7], m(x2)[:, :7], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: PerformerAttention(30, 4, 8), "n_heads"),
        (lambda: PerformerAttention(0, 1, 8), "d"),
        (lambda: PerformerAttention(8, 2, 0), "r"),
        (lambda: PerformerAttention(8, -1, 4), "n_heads"),
        (lambda: orthogonal_gaussian(0, 4), "r"),
        (lambda: orthogonal_gaussian(4, 0), "d"),
        (lambda: positive_features(torch.ones(3, 4), torch.ones(5, 3)), "w"),
        (lambda: positive_features(torch.ones(3, 4), torch.ones(5, 4), "col"), "stabilize"),
        (lambda: favor_attention(torch.ones(3, 4), torch.ones(3, 4), torch.ones(2, 4), torch.ones(5, 4)), "q, k, v"),
        (
            lambda: favor_attention(
                torch.ones(3, 4), torch.ones(3, 4), torch.ones(3, 4), torch.ones(5, 4), features="relu"
            ),
            "features",
        ),
        (
            lambda: favor_attention(
                torch.ones(2, 4), torch.ones(3, 4), torch.ones(3, 4), torch.ones(5, 4), causal=True
            ),
            "causal",
        ),
        (lambda: PerformerAttention(8, 2, 4)(torch.ones(1, 3, 6)), "x"),
    ],
)
def test_bad_sizes_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    w = orthogonal_gaussian(64, 16, gen(1, "cuda"), dtype=F64)
    assert w.device.type == "cuda"
    g = gen(2)
    q, k, v = (torch.randn(2, 100, 16, generator=g, dtype=F64) for _ in range(3))
    cpu = favor_attention(q, k, v, w.cpu())
    gpu = favor_attention(q.cuda(), k.cuda(), v.cuda(), w)
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12)
    m = PerformerAttention(32, 4, 16).cuda()
    m.redraw(gen(3, "cuda"))
    assert m(torch.randn(2, 10, 32, device="cuda")).shape == (2, 10, 32)

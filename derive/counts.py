"""Parameter and FLOP counts of a decoder-only Transformer as sympy expressions (no torch here).

Every function takes sizes as sympy symbols or plain integers and returns a sympy expression,
so the same formula is displayed in a derivation and substituted to an exact integer for a
check. The module-level symbols are positive integers: ``d`` (model width, ``n_embd``), ``h``
(query heads), ``h_kv`` (key/value heads), ``L`` (layers), ``V`` (vocabulary), ``n_ctx``
(context length) and ``d_ff`` (MLP hidden width). The head size is ``d / h`` unless a ``d_head``
is given (as in Gemma, whose 16 heads of 256 make 4096, not d = 3072). That ``h`` divides ``d``
(when ``d_head`` is not given) and ``h_kv`` divides ``h`` is an assumption sympy never checks:
concrete integers are validated here.

The layouts follow ``models.gpt``: attention has Q, K, V and an output projection (fused or
not, the count is the same); the GELU MLP is ``d -> d_ff -> d``; SwiGLU has three ``d x d_ff``
matrices; LayerNorm has a gain (and a bias when ``bias``), RMSNorm a gain only; the output
layer has no bias and may share the token embedding.

FLOPs are forward FLOPs per token, 2 per multiply-add (the convention of Kaplan et al. 2020
and of ``torch.utils.flop_counter``). Embedding lookups, norms, softmax and nonlinearities
are not counted.

>>> attention_params()  # with biases, for any h dividing d
4*d**2 + 4*d
>>> attention_params(bias=False, n_kv=h_kv)  # grouped-query attention
2*d**2 + 2*d**2*h_kv/h
>>> mlp_params()  # GELU MLP at 4x expansion, with biases
8*d**2 + 5*d
>>> L * block_matmul_params()  # Kaplan's N: weights that multiply activations
12*L*d**2
>>> forward_flops_per_token(12 * L * d**2, attention="kaplan")
24*L*d**2 + 2*L*d*n_ctx + 2*V*d
>>> attention_params(512, 8)
1050624
>>> attention_params(3072, 16, bias=False, d_head=256)  # Gemma-7B: 16 heads of 256, not d/h = 192
50331648
"""

from __future__ import annotations

import sympy as sp

d, h, h_kv, L, V, n_ctx, d_ff = sp.symbols("d h h_kv L V n_ctx d_ff", positive=True, integer=True)

MLP_KINDS = ("gelu", "swiglu")
NORM_KINDS = ("layernorm", "rmsnorm")
POS_KINDS = ("learned", "sinusoidal", "rope", "none")
# Attention FLOPs per token and layer, in units of n_ctx * d (QK^T and AV together):
ATTENTION = {
    "kaplan": 2,  # Kaplan et al. 2020: 2 L n_ctx d (= the causal average, up to n_ctx + 1 vs n_ctx)
    "dense": 4,  # the full n x n score matrix, as FlopCounterMode counts even with a causal mask
    "none": 0,  # the "2N" approximation
}


def _int_or_expr(name: str, v):
    """Return ``v`` as a sympy object; a concrete number must be a positive integer."""
    e = sp.sympify(v)
    if e.is_number and not (e.is_integer and e.is_positive):
        raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    return e


def _check_divides(small_name: str, small, big_name: str, big) -> None:
    if small.is_number and big.is_number and big % small != 0:
        raise ValueError(f"{small_name}: must divide {big_name}={big}, got {small}")


def head_dim(d=d, h=h):
    """d_head = d / h (h must divide d)."""
    d, h = _int_or_expr("d", d), _int_or_expr("h", h)
    _check_divides("h", h, "d", d)
    return d / h


def _head_size(d, h, d_head):
    """d_head as given, or d / h (then h must divide d)."""
    return head_dim(d, h) if d_head is None else _int_or_expr("d_head", d_head)


def attention_head_params(d=d, h=h, d_head=None):
    """W_Q^i, W_K^i, W_V^i of one head: three d x d_head matrices (d_head = d/h by default, 3 d^2 / h weights)."""
    return 3 * _int_or_expr("d", d) * _head_size(d, h, d_head)


def attention_params(d=d, h=h, bias: bool = True, n_kv=None, d_head=None):
    """Q (d x h d_head), K and V (d x n_kv d_head each) and the output projection (h d_head x d), plus
    their biases when ``bias``. ``n_kv=None`` means n_kv = h (standard multi-head attention);
    ``d_head=None`` means d_head = d / h, so Q and the output projection are d x d. A given
    ``d_head`` need not be d / h (h then need not divide d)."""
    d, h = _int_or_expr("d", d), _int_or_expr("h", h)
    dk = _head_size(d, h, d_head)
    kv = h if n_kv is None else _int_or_expr("n_kv", n_kv)
    _check_divides("n_kv", kv, "h", h)
    q = d if d_head is None else h * dk  # width of Q and of the output projection's input
    weights = d * q + 2 * d * kv * dk + q * d
    biases = q + 2 * kv * dk + d if bias else 0
    return sp.expand(weights + biases)


def mlp_params(d=d, d_ff=None, bias: bool = True, kind: str = "gelu"):
    """GELU: d x d_ff and d_ff x d (d_ff = 4d by default). SwiGLU: three d x d_ff matrices
    (gate, value, output; d_ff = 8d/3 by default, the same 8 d^2 as a 4d GELU MLP)."""
    if kind not in MLP_KINDS:
        raise ValueError(f"kind: unknown MLP {kind!r}; choose from {MLP_KINDS}")
    d = _int_or_expr("d", d)
    if d_ff is None:
        d_ff = 4 * d if kind == "gelu" else sp.Rational(8, 3) * d
    else:
        d_ff = _int_or_expr("d_ff", d_ff)
    n_in = 1 if kind == "gelu" else 2  # matrices from d to d_ff
    weights = (n_in + 1) * d * d_ff
    biases = n_in * d_ff + d if bias else 0
    return sp.expand(weights + biases)


def norm_params(d=d, kind: str = "layernorm", bias: bool = True):
    """LayerNorm: gain and bias (2d), gain only without bias (d); RMSNorm: gain only (d)."""
    if kind not in NORM_KINDS:
        raise ValueError(f"kind: unknown norm {kind!r}; choose from {NORM_KINDS}")
    d = _int_or_expr("d", d)
    return 2 * d if (kind == "layernorm" and bias) else d


def embedding_params(V=V, d=d, n_ctx=n_ctx, pos: str = "learned"):
    """The token table (V x d) and, for learned positions, the position table (n_ctx x d).
    Sinusoidal and rotary positions have no parameters."""
    if pos not in POS_KINDS:
        raise ValueError(f"pos: unknown {pos!r}; choose from {POS_KINDS}")
    V, d = _int_or_expr("V", V), _int_or_expr("d", d)
    return V * d + (_int_or_expr("n_ctx", n_ctx) * d if pos == "learned" else 0)


def block_params(
    d=d, h=h, bias: bool = True, mlp: str = "gelu", norm: str = "layernorm", n_kv=None, d_ff=None, d_head=None
):
    """One Transformer block: attention, MLP and two norms."""
    return sp.expand(
        attention_params(d, h, bias, n_kv, d_head) + mlp_params(d, d_ff, bias, mlp) + 2 * norm_params(d, norm, bias)
    )


def block_matmul_params(d=d, h=h, mlp: str = "gelu", n_kv=None, d_ff=None, d_head=None):
    """The weights of one block that multiply activations (no biases, no norm gains): the N of
    Kaplan et al. per layer, 12 d^2 for standard attention and a 4d GELU MLP."""
    return sp.expand(attention_params(d, h, False, n_kv, d_head) + mlp_params(d, d_ff, False, mlp))


def non_embedding_params(
    L=L,
    d=d,
    h=h,
    V=V,
    bias: bool = True,
    mlp: str = "gelu",
    norm: str = "layernorm",
    n_kv=None,
    d_ff=None,
    prenorm: bool = True,
    tie: bool = True,
    d_head=None,
):
    """L blocks, the final norm (pre-norm models only) and an untied output layer (V x d, no bias);
    the same split as ``GPT.num_params(non_embedding=True)``."""
    L = _int_or_expr("L", L)
    final = norm_params(d, norm, bias) if prenorm else 0
    head = 0 if tie else _int_or_expr("V", V) * _int_or_expr("d", d)
    return sp.expand(L * block_params(d, h, bias, mlp, norm, n_kv, d_ff, d_head) + final + head)


def model_params(
    L=L,
    d=d,
    h=h,
    V=V,
    n_ctx=n_ctx,
    bias: bool = True,
    mlp: str = "gelu",
    norm: str = "layernorm",
    n_kv=None,
    d_ff=None,
    prenorm: bool = True,
    tie: bool = True,
    pos: str = "learned",
    d_head=None,
):
    """Every parameter once: embeddings plus :func:`non_embedding_params`."""
    rest = non_embedding_params(L, d, h, V, bias, mlp, norm, n_kv, d_ff, prenorm, tie, d_head)
    return sp.expand(embedding_params(V, d, n_ctx, pos) + rest)


def attention_flops_per_token(L=L, n_ctx=n_ctx, d=d, attention: str = "kaplan"):
    """FLOPs of QK^T and AV per token: ``ATTENTION[attention] * L * n_ctx * d``."""
    if attention not in ATTENTION:
        raise ValueError(f"attention: unknown convention {attention!r}; choose from {sorted(ATTENTION)}")
    return ATTENTION[attention] * _int_or_expr("L", L) * _int_or_expr("n_ctx", n_ctx) * _int_or_expr("d", d)


def forward_flops_per_token(N, L=L, n_ctx=n_ctx, d=d, V=V, attention: str = "kaplan"):
    """2 N for the block matmuls (N = :func:`block_matmul_params` times L), the attention term,
    and 2 d V for the output layer. The embedding is a lookup: 0 FLOPs."""
    out = 2 * _int_or_expr("V", V) * _int_or_expr("d", d)
    return sp.expand(2 * sp.sympify(N) + attention_flops_per_token(L, n_ctx, d, attention) + out)

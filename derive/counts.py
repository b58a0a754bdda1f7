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

MLP_KINDS = ("gelu", "swiglu", "none")
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
    """d_head = d / h (h must divide d).

    The head size of multi-head attention, ``d_k = d_v = d_model / h`` (Vaswani et al. 2017,
    Section 3.2.2). Raises ValueError when concrete ``d``, ``h`` are not positive integers or
    ``h`` does not divide ``d``; for symbols the division is assumed.

    Examples
    --------
    >>> head_dim(), head_dim(768, 12)
    (d/h, 64)
    >>> head_dim(768, 10)
    Traceback (most recent call last):
    ...
    ValueError: h: must divide d=768, got 10
    """
    d, h = _int_or_expr("d", d), _int_or_expr("h", h)
    _check_divides("h", h, "d", d)
    return d / h


def _head_size(d, h, d_head):
    """d_head as given, or d / h (then h must divide d)."""
    return head_dim(d, h) if d_head is None else _int_or_expr("d_head", d_head)


def attention_head_params(d=d, h=h, d_head=None):
    """W_Q^i, W_K^i, W_V^i of one head: three d x d_head matrices (d_head = d/h by default, 3 d^2 / h weights).

    No biases and no share of the output projection (see :func:`attention_params` for the layer).

    Examples
    --------
    >>> attention_head_params()
    3*d**2/h
    >>> attention_head_params(768, 12)
    147456
    """
    return 3 * _int_or_expr("d", d) * _head_size(d, h, d_head)


def attention_params(d=d, h=h, bias: bool = True, n_kv=None, d_head=None):
    """Q (d x h d_head), K and V (d x n_kv d_head each) and the output projection (h d_head x d), plus
    their biases when ``bias``. ``n_kv=None`` means n_kv = h (standard multi-head attention);
    ``d_head=None`` means d_head = d / h, so Q and the output projection are d x d. A given
    ``d_head`` need not be d / h (h then need not divide d).

    Returns the expanded count; ``n_kv = 1`` is multi-query attention (Shazeer 2019), ``1 < n_kv
    < h`` grouped-query attention (Ainslie et al. 2023). Raises ValueError for a concrete size
    that is not a positive integer, an ``h`` that does not divide ``d`` (when ``d_head`` is
    not given) or an ``n_kv`` that does not divide ``h``.

    Examples
    --------
    >>> attention_params(bias=False)  # W_Q, W_K, W_V, W_O: 4 d^2
    4*d**2
    >>> attention_params(4096, 32, bias=False, n_kv=8)  # Mistral-7B: GQA, 8 KV heads of 128
    41943040
    """
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
    (gate, value, output; d_ff = 8d/3 by default, the same 8 d^2 as a 4d GELU MLP). ``"none"``: no
    MLP at all (an attention-only Transformer, Elhage et al. 2021), 0.

    With ``bias``, each matrix has a bias of its output width (``d_ff`` per input matrix, ``d``
    for the output). The SwiGLU default follows Shazeer (2020, "GLU Variants Improve
    Transformer"), which shrinks d_ff by 2/3 to keep the parameter count; it is an integer only
    when 3 divides 8d, so pass the model's own ``d_ff`` (LLaMA-7B: 11008 at d = 4096). Raises
    ValueError for an unknown ``kind`` (one of :data:`MLP_KINDS`) or a size that is not a
    positive integer.

    Examples
    --------
    >>> mlp_params(), mlp_params(bias=False, kind="swiglu")
    (8*d**2 + 5*d, 8*d**2)
    >>> mlp_params(4096, 11008, bias=False, kind="swiglu")
    135266304
    >>> mlp_params(kind="none")
    0
    """
    if kind not in MLP_KINDS:
        raise ValueError(f"kind: unknown MLP {kind!r}; choose from {MLP_KINDS}")
    if kind == "none":
        return sp.Integer(0)
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
    """LayerNorm: gain and bias (2d), gain only without bias (d); RMSNorm: gain only (d).

    Raises ValueError for an unknown ``kind`` (one of :data:`NORM_KINDS`).

    Examples
    --------
    >>> norm_params(), norm_params(kind="rmsnorm"), norm_params(768)
    (2*d, d, 1536)
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind: unknown norm {kind!r}; choose from {NORM_KINDS}")
    d = _int_or_expr("d", d)
    return 2 * d if (kind == "layernorm" and bias) else d


def embedding_params(V=V, d=d, n_ctx=n_ctx, pos: str = "learned"):
    """The token table (V x d) and, for learned positions, the position table (n_ctx x d).
    Sinusoidal and rotary positions have no parameters.

    Raises ValueError for an unknown ``pos`` (one of :data:`POS_KINDS`).

    Examples
    --------
    >>> embedding_params(), embedding_params(pos="rope")
    (V*d + d*n_ctx, V*d)
    >>> embedding_params(50257, 768, 1024)  # GPT-2 small: wte and wpe
    39383808
    """
    if pos not in POS_KINDS:
        raise ValueError(f"pos: unknown {pos!r}; choose from {POS_KINDS}")
    V, d = _int_or_expr("V", V), _int_or_expr("d", d)
    return V * d + (_int_or_expr("n_ctx", n_ctx) * d if pos == "learned" else 0)


def block_params(
    d=d, h=h, bias: bool = True, mlp: str = "gelu", norm: str = "layernorm", n_kv=None, d_ff=None, d_head=None
):
    """One Transformer block: attention, MLP and two norms (one norm when ``mlp="none"``: an
    attention-only block has no MLP and no norm before it).

    The sum of :func:`attention_params`, :func:`mlp_params` and :func:`norm_params` per norm
    with the same options (``mlp`` and ``norm`` name the kinds), expanded.

    Examples
    --------
    >>> block_params()
    12*d**2 + 13*d
    >>> block_params(768, 12)  # one GPT-2 small block
    7087872
    >>> block_params(mlp="none")  # attention only
    4*d**2 + 6*d
    """
    norms = 1 if mlp == "none" else 2
    return sp.expand(
        attention_params(d, h, bias, n_kv, d_head) + mlp_params(d, d_ff, bias, mlp) + norms * norm_params(d, norm, bias)
    )


def block_matmul_params(d=d, h=h, mlp: str = "gelu", n_kv=None, d_ff=None, d_head=None):
    """The weights of one block that multiply activations (no biases, no norm gains): the N of
    Kaplan et al. per layer, 12 d^2 for standard attention and a 4d GELU MLP.

    Kaplan et al. 2020 (arXiv:2001.08361), Table 1: ``N = 2 d n_layer (2 d_attn + d_ff)``, which is
    ``12 L d^2`` at ``d_attn = d`` and ``d_ff = 4d``.

    Examples
    --------
    >>> L * block_matmul_params()
    12*L*d**2
    >>> block_matmul_params(mlp="swiglu", n_kv=1)  # SwiGLU MLP; MQA: K and V are d x d/h
    10*d**2 + 2*d**2/h
    """
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
    the same split as ``GPT.num_params(non_embedding=True)``.

    With ``tie`` (the default) the output layer is the token table and is counted in
    :func:`embedding_params`, not here. The block options are those of :func:`block_params`.

    Examples
    --------
    >>> non_embedding_params()
    12*L*d**2 + 13*L*d + 2*d
    >>> non_embedding_params(12, 768, 12, 50257)  # GPT-2 small (tied)
    85056000
    """
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
    """Every parameter once: embeddings plus :func:`non_embedding_params`.

    A tied output layer is the token table, so it is counted once, in the embeddings.

    Examples
    --------
    >>> model_params(12, 768, 12, 50257, 1024)  # GPT-2 small: its 124M
    124439808
    """
    rest = non_embedding_params(L, d, h, V, bias, mlp, norm, n_kv, d_ff, prenorm, tie, d_head)
    return sp.expand(embedding_params(V, d, n_ctx, pos) + rest)


def attention_flops_per_token(L=L, n_ctx=n_ctx, d=d, attention: str = "kaplan"):
    """FLOPs of QK^T and AV per token: ``ATTENTION[attention] * L * n_ctx * d``.

    ``"kaplan"`` is Kaplan et al.'s ``2 n_layer n_ctx d_attn`` (Table 1; a causal average),
    ``"dense"`` the whole n_ctx x n_ctx score matrix as ``FlopCounterMode`` counts it, ``"none"``
    zero. Raises ValueError for another convention.

    Examples
    --------
    >>> attention_flops_per_token(), attention_flops_per_token(attention="dense")
    (2*L*d*n_ctx, 4*L*d*n_ctx)
    """
    if attention not in ATTENTION:
        raise ValueError(f"attention: unknown convention {attention!r}; choose from {sorted(ATTENTION)}")
    return ATTENTION[attention] * _int_or_expr("L", L) * _int_or_expr("n_ctx", n_ctx) * _int_or_expr("d", d)


def forward_flops_per_token(N, L=L, n_ctx=n_ctx, d=d, V=V, attention: str = "kaplan"):
    """2 N for the block matmuls (N = :func:`block_matmul_params` times L), the attention term,
    and 2 d V for the output layer. The embedding is a lookup: 0 FLOPs.

    With ``attention="kaplan"`` this is Kaplan et al. 2020's ``C_forward = 2N + 2 n_layer n_ctx
    d_attn`` (Table 1) plus the output layer they leave out; ``N`` is passed in (a number or an
    expression), so any block layout can be used.

    Examples
    --------
    >>> forward_flops_per_token(L * block_matmul_params())
    24*L*d**2 + 2*L*d*n_ctx + 2*V*d
    >>> forward_flops_per_token(0, attention="none")  # what the "2N" rule leaves out
    2*V*d
    """
    out = 2 * _int_or_expr("V", V) * _int_or_expr("d", d)
    return sp.expand(2 * sp.sympify(N) + attention_flops_per_token(L, n_ctx, d, attention) + out)

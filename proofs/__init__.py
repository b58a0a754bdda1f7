"""One module per exercise; ``python -m proofs`` lists, runs and reports them.

``REGISTRY`` maps an exercise number to its module name; modules are imported lazily so
that listing stays fast. Later issues add their exercises here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY: dict[str, str] = {
    "13.1": "seq2seq_bottleneck",
    "13.2": "permutation_equivariance",
    "13.3": "dot_product_variance",
    "13.4": "heads_capacity",
    "13.5": "causal_mask",
    "13.6": "positional_encoding",
    "13.7": "bert_vs_gpt",
    "13.8": "in_context_learning",
    "13.9": "attention_memory",
    "13.10": "flash_attention",
    "13.11": "attention_by_hand",
    "13.12": "param_count",
    "13.13": "training_compute",
    "13.14": "kv_cache",
    "13.15": "sinusoidal_values",
    "13.16": "rope_matrix",
    "13.18": "chinchilla",
    "13.19": "sdpa_by_hand",
    "13.20": "sdpa_switch",
    "13.21": "learned_positions",
    "13.22": "rmsnorm_swiglu",
    "13.23": "mqa_decoding",
    "13.24": "imdb_encoder",
    "13.25": "speculative_decoding",
    "13.26": "pe_offset_linearity",
    "13.27": "rope_relative",
    "13.28": "softmax_onehot_limit",
    "13.29": "inference_flops",
    "13.30": "mha_params",
    "13.31": "prenorm_postnorm",
    "13.32": "performer_complexity",
}

ALIASES: dict[str, str] = {"13.17": "13.12"}  # exercises answered by another's module


def _key(number: str) -> tuple[int, ...]:
    return tuple(int(p) for p in number.split("."))


def numbers() -> list[str]:
    """Registered exercise numbers in numeric order."""
    return sorted(REGISTRY, key=_key)


def load(number_or_name: str) -> ModuleType:
    """Import an exercise's module by number ("13.3") or name ("dot_product_variance")."""
    key = ALIASES.get(number_or_name, number_or_name)
    name = REGISTRY.get(key, key)
    if name not in REGISTRY.values():
        raise ValueError(f"exercise: unknown {number_or_name!r}; run 'python -m proofs' for the list")
    return importlib.import_module(f"proofs.{name}")

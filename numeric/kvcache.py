"""Measuring a decoder's key/value cache: what ``generate`` allocated, what it wrote, and the bytes behind
it (the caches are duck-typed: ``k`` and ``v`` lists of tensors, as ``models.gpt.KVCache``)."""

from __future__ import annotations


def generate_keeping_cache(model, idx, tokens: int):
    """``model.generate(idx, tokens, temperature=0)`` and the ``KVCache`` it allocated. The cache is
    filled with NaN when allocated, so afterwards its non-NaN entries are exactly what was written."""
    made = []
    allocate = model.new_cache

    def spy(batch, capacity):
        cache = allocate(batch, capacity)
        for t in cache.k + cache.v:
            t.fill_(float("nan"))
        made.append(cache)
        return cache

    model.new_cache = spy
    try:
        out = model.generate(idx, tokens, temperature=0)
    finally:
        del model.new_cache
    (cache,) = made
    return out, cache


def storage_bytes(cache) -> int:
    """Bytes of the storage behind the cache's key and value tensors (views count their whole storage).

    >>> import torch
    >>> from types import SimpleNamespace
    >>> storage_bytes(SimpleNamespace(k=[torch.zeros(2, 3)], v=[torch.zeros(2, 3, dtype=torch.float16)]))
    36
    """
    return sum(t.untyped_storage().nbytes() for t in cache.k + cache.v)


def written_bytes(cache) -> int:
    """Bytes of the cache that generation wrote (its non-NaN entries, after :func:`generate_keeping_cache`).

    >>> import torch
    >>> from types import SimpleNamespace
    >>> cache = SimpleNamespace(k=[torch.full((4,), float("nan"))], v=[torch.zeros(4)])
    >>> cache.k[0][0] = 1.0
    >>> written_bytes(cache)  # one key and four values, 4 bytes each
    20
    """
    return sum(int((~t.isnan()).sum()) * t.element_size() for t in cache.k + cache.v)

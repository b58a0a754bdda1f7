"""The sizes a check measures at, given as one comma-separated option (``--d 64,128``)."""

from __future__ import annotations


def int_list(
    name: str, text: str, maximum: int, why: str = "", multiple: int = 1, max_count: int = 0, count_why: str = ""
) -> list[int]:
    """The sorted distinct integers of ``text`` (``"128,64"``; empty parts are skipped), each in
    [1, ``maximum``] (``why`` says where the maximum comes from) and a multiple of ``multiple``, at
    most ``max_count`` of them when it is positive (``count_why`` says why).

    Raises ValueError ``name: ...`` naming the option and the first value refused.

    >>> int_list("d", "128, 64,,64", 2048)
    [64, 128]
    >>> int_list("d", "64,x", 2048)
    Traceback (most recent call last):
    ...
    ValueError: d: expected comma-separated integers, got '64,x'
    >>> int_list("d", "4096", 2048, "time")
    Traceback (most recent call last):
    ...
    ValueError: d: each must be at most 2,048 (time), got 4,096
    """
    out = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            v = int(part.strip())
        except ValueError:
            raise ValueError(f"{name}: expected comma-separated integers, got {text[:80]!r}") from None
        if v < 1:
            raise ValueError(f"{name}: each must be at least 1, got {v:,}")
        if v > maximum:
            raise ValueError(f"{name}: each must be at most {maximum:,}{f' ({why})' if why else ''}, got {v:,}")
        if v % multiple:
            raise ValueError(f"{name}: each must be a multiple of {multiple}, got {v}")
        out.append(v)
    out = sorted(set(out))
    if 0 < max_count < len(out):
        raise ValueError(f"{name}: at most {max_count} distinct values ({count_why}), got {len(out):,}")
    return out

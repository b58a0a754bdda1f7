"""A run's sizes: a named preset with some of its entries overridden, checked before any work."""

from __future__ import annotations


def resolve(presets: dict[str, dict], preset: str, sizes: dict) -> dict:
    """A copy of ``presets[preset]`` with ``sizes`` in place of its entries. ValueError naming ``preset``
    when it is unknown, or naming the first key of ``sizes`` that no preset has.

    >>> resolve({"cpu": {"steps": 10, "lr": 0.1}}, "cpu", {"steps": 3})
    {'steps': 3, 'lr': 0.1}
    """
    if preset not in presets:
        raise ValueError(f"preset: unknown {preset!r}; choose from {', '.join(sorted(presets))}")
    P = dict(presets[preset])
    unknown = sorted(set(sizes) - set(P))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a size of the presets ({', '.join(P)})")
    return P | sizes


def check_positive(P: dict, floats: tuple[str, ...] = ("lr",)) -> None:
    """ValueError naming the first entry of ``P`` that is not a positive integer (or, for the keys in ``floats``,
    a positive finite number).

    >>> check_positive({"iters": 10, "lr": 3e-4})
    >>> check_positive({"iters": 0})
    Traceback (most recent call last):
    ...
    ValueError: iters: must be a positive integer, got 0
    """
    import math

    for k, v in P.items():
        if k in floats:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{k}: must be a positive finite number, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{k}: must be a positive integer, got {v!r}")

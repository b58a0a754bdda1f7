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

"""Device choice and seeded generators for the checks (implemented in :mod:`models.device`,
which the trainer shares)."""

from models.device import ENV_VAR, describe, generator, pick_device

__all__ = ["ENV_VAR", "describe", "generator", "pick_device"]

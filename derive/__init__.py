"""Symbolic derivations checked step by step with sympy (no torch import here)."""

from derive.engine import PROVED, SPOT_CHECKED, Derivation, Step, StepFailed

__all__ = ["PROVED", "SPOT_CHECKED", "Derivation", "Step", "StepFailed"]

"""Symbolic derivations checked step by step with sympy (no torch import here)."""

from derive.engine import DEFINITION, PROVED, SPOT_CHECKED, Derivation, Step, StepFailed

__all__ = ["DEFINITION", "PROVED", "SPOT_CHECKED", "Derivation", "Step", "StepFailed"]

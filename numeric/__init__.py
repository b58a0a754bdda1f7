"""Monte Carlo and measurements on the CPU or CUDA, with honest uncertainty."""

from models.utils.device import describe, generator, pick_device
from numeric.check import Bound, CheckResult
from numeric.montecarlo import Moments, stream
from numeric.stats import Estimate, Verdict, compare, samples_for_power, z_for

__all__ = [
    "Bound",
    "CheckResult",
    "Estimate",
    "Moments",
    "Verdict",
    "compare",
    "describe",
    "generator",
    "pick_device",
    "samples_for_power",
    "stream",
    "z_for",
]

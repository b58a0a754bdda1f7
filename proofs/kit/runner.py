"""Run one exercise end to end (derivation, check, figure) for ``python -m proofs all`` and the
report, catching and recording any failure rather than raising it."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from proofs.kit.plotting import draw
from proofs.kit.record import record


@dataclass
class Outcome:
    """What one run of an exercise produced: the derivation and the check result (None where the
    run failed before them), the figure written (or None), the failure's cause, and the seconds."""

    mod: ModuleType
    derivation: object = None
    result: object = None
    figure: Path | None = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """The derivation's status (proved, proved from a stated lemma, spot-checked) or FAILED."""
        return self.derivation.status if self.derivation is not None else "FAILED"

    @property
    def verdict(self) -> str:
        """PASS only when the check ran, passed, and nothing failed."""
        return "FAIL" if self.error or self.result is None or not self.result.passed else "PASS"

    def record(self, **extra) -> dict:
        """The shared result record (:func:`proofs.kit.record.record`), with the failure if any."""
        if self.error:
            extra |= {"error": self.error}
        return record(self.mod, self.derivation, self.result, **extra)


def run_one(mod: ModuleType, device=None, seed: int = 0, figure_path=None) -> Outcome:
    """Run exercise ``mod`` at its default options and samples: derivation, check, and the figure of
    the check's result when ``figure_path`` is given and the exercise has one."""
    out, t0 = Outcome(mod), time.perf_counter()
    try:
        out.derivation = mod.derivation()
        out.result = mod.check(device=device, seed=seed)
        if figure_path is not None and hasattr(mod, "figure"):
            out.figure = draw(mod, out.result, figure_path)
    except Exception as e:  # recorded and reported as a failure, with the cause
        out.error = f"{type(e).__name__}: {e}"
        out.traceback = traceback.format_exc()
    out.seconds = time.perf_counter() - t0
    return out

"""The one result record that ``--json``, ``python -m proofs all`` and the report print."""

from __future__ import annotations

from types import ModuleType


def verdict(res, failed: bool = False) -> str:
    """PASS or FAIL when a check ran, NOT CHECKED when none did; FAIL when the run ``failed``."""
    if failed:
        return "FAIL"
    return "NOT CHECKED" if res is None else ("PASS" if res.passed else "FAIL")


def record(mod: ModuleType, derivation, res, answer: list[str] | None = None, **extra) -> dict:
    """Derivation (a dict), the answer for the options asked (when printed), the check (a dict, or
    None when none ran) and the verdict, then any ``extra`` fields (the report adds the page's
    files, the time taken and a failure's cause). A failure (``extra["error"]``) reads FAIL."""
    out = {"exercise": mod.NUMBER, "claim": mod.CLAIM, "derivation": derivation.to_dict() if derivation else None}
    if answer is not None:
        out["answer"] = answer
    out |= {"check": res.to_dict() if res else None, "verdict": verdict(res, bool(extra.get("error")))}
    return out | extra

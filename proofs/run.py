"""Run one exercise (derivation, check, optional figure) and collect a plain result dict."""

from __future__ import annotations

import time
import traceback

from proofs import REGISTRY, load


def run_one(number: str, device=None, seed: int = 0, figure_path=None) -> dict:
    """Run exercise ``number``; failures are caught and recorded, never raised."""
    mod = load(number)
    out = {"exercise": number, "name": REGISTRY[number], "claim": mod.CLAIM}
    t0 = time.perf_counter()
    try:
        d = mod.derivation()
        out["derivation"] = d
        out["derivation_status"] = d.status
        res = mod.check(device=device, samples=mod.DEFAULT_SAMPLES, seed=seed)
        out["check"] = res
        out["verdict"] = res.verdict
        if figure_path is not None and hasattr(mod, "figure"):
            out["figure"] = mod.figure(figure_path, device=device, seed=seed)
    except Exception as e:  # recorded and reported as a failure, with the cause
        out.setdefault("derivation_status", "FAILED")
        out["verdict"] = "FAIL"
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    out["seconds"] = time.perf_counter() - t0
    return out

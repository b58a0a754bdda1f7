"""The command line every proof module shares.

A proof module defines ``NUMBER``, ``CLAIM``, ``DEFAULT_SAMPLES``, ``derivation()``,
``check(device=None, samples=..., seed=0, **options)`` and optionally ``figure(path, device=None,
seed=0, **options)``, ``OPTIONS`` (a list of :class:`Option`) and ``validate(**options)`` (raises
ValueError on bad options before any work); its ``main`` calls :func:`run`.
Bad input prints one line naming the parameter and exits 2, with no traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from dataclasses import dataclass
from types import ModuleType

from derive.engine import StepFailed
from models.cli import OneLineParser, positive_int


@dataclass(frozen=True)
class Option:
    """An extra command-line option, passed to ``check`` and ``figure`` as ``dest``."""

    flag: str
    type: type
    default: object
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def parser_for(mod: ModuleType) -> argparse.ArgumentParser:
    spec = getattr(mod, "__spec__", None)  # under `python -m`, __name__ is "__main__"
    name = (spec.name if spec else mod.__name__).rsplit(".", 1)[-1]
    p = OneLineParser(prog=f"python -m proofs.{name}", description=f"Exercise {mod.NUMBER}: {mod.CLAIM}")
    p.add_argument("--latex", action="store_true", help="print the derivation as a LaTeX document")
    p.add_argument("--json", action="store_true", help="print derivation and check as JSON")
    p.add_argument("--plot", metavar="PATH", help="save the figure to PATH (png, pdf, svg)")
    p.add_argument("--device", help="cpu or cuda (default: $PROOFS_DEVICE, else cuda if present)")
    p.add_argument(
        "--samples",
        type=positive_int("samples"),
        default=mod.DEFAULT_SAMPLES,
        help=f"Monte Carlo sample count (default {mod.DEFAULT_SAMPLES:,})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the explicit generator (default 0)")
    p.add_argument("--no-check", action="store_true", help="print the derivation only")
    for o in getattr(mod, "OPTIONS", []):
        p.add_argument(o.flag, type=o.type, default=o.default, help=f"{o.help} (default {o.default})")
    return p


def options_of(mod: ModuleType, args: argparse.Namespace) -> dict:
    return {o.dest: getattr(args, o.dest) for o in getattr(mod, "OPTIONS", [])}


def run(mod: ModuleType, argv: list[str] | None = None) -> int:
    """Parse ``argv``, print the derivation and its check; 0 if both hold, 1 if not, 2 on bad input."""
    args = parser_for(mod).parse_args(argv)
    opts = options_of(mod, args)
    try:
        if hasattr(mod, "validate"):  # bad options fail fast, before any work, even with --no-check
            mod.validate(**opts)
        t0 = time.perf_counter()
        d = mod.derivation()
        t_derive = time.perf_counter() - t0
        res = None
        if not args.no_check:
            res = mod.check(device=args.device, samples=args.samples, seed=args.seed, **opts)
        if args.plot:
            if not hasattr(mod, "figure"):
                raise ValueError("plot: this exercise has no figure")
            extra = {"samples": args.samples} if "samples" in inspect.signature(mod.figure).parameters else {}
            mod.figure(args.plot, device=args.device, seed=args.seed, **opts, **extra)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StepFailed as e:  # a derivation step sympy disproved: a failure of the claim, not of the input
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    ok = res is None or res.passed  # a spot-checked step is reported as such; a false step raised above
    if args.json:
        out = {
            "exercise": mod.NUMBER,
            "claim": mod.CLAIM,
            "derivation": d.to_dict(),
            "check": res.to_dict() if res else None,
            "verdict": ("PASS" if ok else "FAIL"),
        }
        print(json.dumps(out, indent=2, default=float))
    elif args.latex:
        print(d.latex_document())
    else:
        print(f"Exercise {mod.NUMBER}: {mod.CLAIM}\n")
        print(d.text())
        print(f"  (derivation checked in {t_derive:.2f} s; status: {d.status})\n")
        if res is not None:
            print(res.text())
        if args.plot:
            print(f"Figure written to {args.plot}")
    return 0 if ok else 1

"""The command line every proof module shares.

A proof module defines ``NUMBER``, ``CLAIM``, ``DEFAULT_SAMPLES``, ``derivation()``,
``check(device=None, samples=..., seed=0, **options)`` and optionally ``figure(path, device=None,
seed=0, **options)``, ``OPTIONS`` (a list of :class:`Option`), ``validate(**options)`` (raises
ValueError on bad options before any work), ``UNUSED_FLAGS`` (shared flags it ignores, each with
the reason, refused when given), ``answer(**options)`` (the numbers for the options
asked, cheap: printed with ``--no-check``) and ``MAX_SAMPLES`` (with ``SAMPLES_WHY``, the reason);
a module that draws nothing at random sets ``DEFAULT_SAMPLES = None`` and refuses ``--samples``.
Its ``main`` calls :func:`run`. Bad input prints one line naming the flag as typed and exits 2,
with no traceback, before the derivation or the check runs.
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
from models.utils.cli import OneLineParser, figure_file, finite_float, guard, int_in, positive_int, seed_int, text

DEFAULT_MAX_SAMPLES = 10**7


@dataclass(frozen=True)
class Option:
    """An extra command-line option, passed to ``check`` and ``figure`` as ``dest``.

    ``type`` is int, float, str or an argparse type function; ints and floats are checked at parse
    time against ``lo`` and ``hi`` (``why`` says where ``hi`` comes from: memory or time), and floats
    must be finite."""

    flag: str
    type: object
    default: object
    help: str
    lo: float | None = None
    hi: float | None = None
    why: str = ""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def converter(self):
        if self.type is int:
            return int_in(self.lo, self.hi, self.why)
        if self.type is float:
            return finite_float(self.lo, self.hi)
        if self.type is str:
            return str
        return self.type


def _name(mod: ModuleType) -> str:
    spec = getattr(mod, "__spec__", None)  # under `python -m`, __name__ is "__main__"
    return (spec.name if spec else mod.__name__).rsplit(".", 1)[-1]


def parser_for(mod: ModuleType) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m proofs.{_name(mod)}", description=f"Exercise {mod.NUMBER}: {mod.CLAIM}")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--latex", action="store_true", help="print the derivation as a LaTeX document")
    form.add_argument("--json", action="store_true", help="print derivation and check as JSON")
    p.set_defaults(plot=None)
    if hasattr(mod, "figure"):  # no --plot where there is no figure: argparse refuses it at once
        p.add_argument(
            "--plot",
            metavar="PATH",
            type=figure_file(),
            help="save the figure to PATH (.png, .pdf or .svg; an existing file is replaced only if a figure of ours)",
        )
    p.add_argument("--device", type=text(), help="cpu or cuda (default: $PROOFS_DEVICE, else cuda if present)")
    if mod.DEFAULT_SAMPLES is None:
        samples_help = "not used: this exercise draws nothing at random"
    else:
        hi = getattr(mod, "MAX_SAMPLES", DEFAULT_MAX_SAMPLES)
        why = getattr(mod, "SAMPLES_WHY", "the check's time grows with the samples")
        samples_help = f"samples of the check (default {mod.DEFAULT_SAMPLES:,}; at most {hi:,}: {why})"
    p.add_argument("--samples", type=positive_int(), default=None, help=samples_help)
    p.add_argument("--seed", type=seed_int(), default=None, help="seed of the explicit generator (default 0)")
    p.add_argument("--no-check", action="store_true", help="print the derivation (and the answer) only")
    for o in getattr(mod, "OPTIONS", []):
        p.add_argument(o.flag, type=o.converter(), default=None, help=f"{o.help} (default {o.default})")
    return p


def options_of(mod: ModuleType, args: argparse.Namespace) -> dict:
    """The module's options, each as given or its declared default."""
    return {o.dest: (o.default if getattr(args, o.dest) is None else getattr(args, o.dest)) for o in mod_options(mod)}


def mod_options(mod: ModuleType) -> list[Option]:
    return list(getattr(mod, "OPTIONS", []))


def _refuse_unused(mod: ModuleType, args: argparse.Namespace) -> None:
    """Every flag given must change what is computed and printed; refuse those that would not."""
    for flag, why in getattr(mod, "UNUSED_FLAGS", {}).items():  # a module says which shared flags it ignores
        if getattr(args, flag[2:]) is not None:
            raise ValueError(f"{flag}: not used by this exercise ({why})")
    if mod.DEFAULT_SAMPLES is None and args.seed is not None:
        raise ValueError("--seed: this exercise draws nothing at random, so a seed changes nothing")
    if args.samples is not None:
        if mod.DEFAULT_SAMPLES is None:
            raise ValueError("--samples: this exercise draws nothing at random, so there is nothing to sample")
        hi = getattr(mod, "MAX_SAMPLES", DEFAULT_MAX_SAMPLES)
        if args.samples > hi:
            why = getattr(mod, "SAMPLES_WHY", "the check's time grows with the samples")
            raise ValueError(f"--samples: must be at most {hi:,} ({why}), got {args.samples:,}")
    if args.no_check and args.plot is not None and args.samples is not None:
        if "samples" not in inspect.signature(mod.figure).parameters:
            raise ValueError("--samples: this exercise's figure draws no samples, and --no-check skips the check")
    if not args.no_check or args.plot is not None:  # the check, or the figure, uses every option
        return
    for flag in ("--samples", "--seed", "--device"):
        if getattr(args, flag[2:]) is not None:
            raise ValueError(f"{flag}: only the check uses it, and --no-check skips the check; drop one")
    if not hasattr(mod, "answer"):
        for o in mod_options(mod):
            if getattr(args, o.dest) is not None:
                raise ValueError(f"{o.flag}: only the check uses it, and --no-check skips the check; drop one")


def record(mod: ModuleType, d, res, answer=None) -> dict:
    """The result record that ``--json`` prints: derivation, answer, check and verdict.
    The verdict is PASS or FAIL when a check ran, NOT CHECKED when none did."""
    verdict = "NOT CHECKED" if res is None else ("PASS" if res.passed else "FAIL")
    out = {"exercise": mod.NUMBER, "claim": mod.CLAIM, "derivation": d.to_dict()}
    if answer is not None:
        out["answer"] = answer
    return out | {"check": res.to_dict() if res else None, "verdict": verdict}


def run(mod: ModuleType, argv: list[str] | None = None) -> int:
    """Parse ``argv``, print the derivation and its check; 0 if both hold, 1 if not, 2 on bad input
    (one line naming the flag, before any work), 130 on Ctrl-C."""
    args = parser_for(mod).parse_args(argv)
    flags = {o.dest: o.flag for o in mod_options(mod)}
    flags |= {"samples": "--samples", "seed": "--seed", "device": "--device", "plot": "--plot", "path": "--plot"}
    return guard(lambda: _run(mod, args), flags)


def _run(mod: ModuleType, args: argparse.Namespace) -> int:
    from models.utils.device import pick_device

    _refuse_unused(mod, args)
    opts = options_of(mod, args)
    samples = args.samples if args.samples is not None else mod.DEFAULT_SAMPLES
    seed = args.seed if args.seed is not None else 0
    if args.device is not None:
        pick_device(args.device)  # an unknown device fails here, not after the derivation
    if hasattr(mod, "validate"):  # bad options fail fast, before any work, even with --no-check
        kw = {"samples": samples} if "samples" in inspect.signature(mod.validate).parameters else {}
        mod.validate(**opts, **kw)
    t0 = time.perf_counter()
    try:
        d = mod.derivation()
    except StepFailed as e:  # a derivation step sympy disproved: a failure of the claim, not of the input
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    t_derive = time.perf_counter() - t0
    res = answer = None
    if args.no_check:
        answer = mod.answer(**opts) if hasattr(mod, "answer") else None
    else:
        res = mod.check(device=args.device, samples=samples, seed=seed, **opts)
    if args.plot:
        extra = {"samples": samples} if "samples" in inspect.signature(mod.figure).parameters else {}
        mod.figure(args.plot, device=args.device, seed=seed, **opts, **extra)
    ok = res is None or res.passed  # a spot-checked step is reported as such; a false step returned above
    if args.json:
        print(json.dumps(record(mod, d, res, answer), indent=2, default=float))
    elif args.latex:
        print(d.latex_document())
    else:
        print(f"Exercise {mod.NUMBER}: {mod.CLAIM}\n")
        print(d.text())
        print(f"  (derivation checked in {t_derive:.2f} s; status: {d.status})\n")
        if answer is not None:
            print("Answer for the options asked:")
            print("\n".join(f"  {line}" for line in answer))
            print()
        if res is not None:
            print(res.text())
        else:
            print("Check: NOT CHECKED (--no-check)")
        if args.plot:
            print(f"Figure written to {args.plot}")
    return 0 if ok else 1

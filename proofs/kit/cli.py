"""The command line every exercise shares: ``python -m proofs.<name> [--json|--latex] [--plot PATH]
[--device D] [--samples N] [--seed S] [--no-check] [--check] [the exercise's options]``. ``--latex``
prints the derivation without running the check unless ``--check`` is given.

The flags come from the module's declarations (:mod:`proofs.kit.options`): ``NUMBER``, ``CLAIM``,
``DEFAULT_SAMPLES`` (None: nothing random, so ``--samples`` and ``--seed`` are refused),
``MAX_SAMPLES``/``SAMPLES_WHY``, ``OPTIONS``, ``UNUSED_FLAGS`` (shared flags it ignores, with the
reason, refused when given), and whether it has ``figure`` (``--plot``) and ``answer`` (printed
with ``--no-check``). Bad input prints one line naming the flag as typed and exits 2, with no
traceback, before the derivation or the check runs; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import ModuleType

from derive import prose
from derive.engine import StepFailed
from models.utils.cli import OneLineParser, figure_file, guard, positive_int, seed_int, text
from proofs.kit.options import max_samples, options_of, settings
from proofs.kit.plotting import draw
from proofs.kit.record import record

SHARED_FLAGS = {"samples": "--samples", "seed": "--seed", "device": "--device", "plot": "--plot", "path": "--plot"}


def name_of(mod: ModuleType) -> str:
    """The module's short name, also under ``python -m`` (where ``__name__`` is ``__main__``)."""
    spec = getattr(mod, "__spec__", None)
    return (spec.name if spec else mod.__name__).rsplit(".", 1)[-1]


def parser_for(mod: ModuleType) -> argparse.ArgumentParser:
    """The exercise's argument parser: the shared flags, then one flag per declared option."""
    about = f"Exercise {mod.NUMBER}: {prose.to_text(mod.CLAIM)}"
    p = OneLineParser(prog=f"python -m proofs.{name_of(mod)}", description=about)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--latex", action="store_true", help="print the derivation as a LaTeX document")
    form.add_argument("--json", action="store_true", help="print derivation and check as JSON")
    p.set_defaults(plot=None)
    if hasattr(mod, "figure"):  # no --plot where there is no figure: argparse refuses it at once
        p.add_argument(
            "--plot",
            metavar="PATH",
            type=figure_file(),
            help="save the figure of the check to PATH (.png, .pdf or .svg; an existing file is replaced only if "
            "a figure of ours)",
        )
    unused = dict(getattr(mod, "UNUSED_FLAGS", {}))  # shared flags this exercise refuses, with the reason
    if mod.DEFAULT_SAMPLES is None:
        unused.setdefault("--samples", "this exercise draws nothing at random")
        unused.setdefault("--seed", "this exercise draws nothing at random")
    hi, why = max_samples(mod)
    helps = {
        "--device": "cpu or cuda (default: $PROOFS_DEVICE, else cuda if present)",
        "--samples": f"samples of the check (default {mod.DEFAULT_SAMPLES or 0:,}; at most {hi:,}: {why})",
        "--seed": "seed of the explicit generator (default 0)",
    }
    for flag, kind in (("--device", text()), ("--samples", positive_int()), ("--seed", seed_int())):
        used = f"not used: {unused[flag]} (refused)" if flag in unused else helps[flag]
        p.add_argument(flag, type=kind, default=None, help=used)
    p.add_argument("--no-check", action="store_true", help="print the derivation (and the answer) only")
    p.add_argument(
        "--check", action="store_true", help="with --latex: run the check too (not printed; the exit status follows it)"
    )
    for o in options_of(mod):
        default = "" if o.default is None else f" (default {o.default})"  # None: the help says what is used
        p.add_argument(o.flag, type=o.converter(), default=None, help=o.help + default)
    return p


def _refuse_unused(mod: ModuleType, args: argparse.Namespace) -> None:
    """Every flag given must change what is computed and printed; refuse those that would not."""
    for flag, why in getattr(mod, "UNUSED_FLAGS", {}).items():
        if getattr(args, flag[2:]) is not None:
            raise ValueError(f"{flag}: not used by this exercise ({why})")
    if mod.DEFAULT_SAMPLES is None and args.seed is not None:
        raise ValueError("--seed: this exercise draws nothing at random, so a seed changes nothing")
    if args.check and not args.latex:
        raise ValueError("--check: only with --latex (the check runs by default otherwise)")
    if args.check and args.no_check:
        raise ValueError("--check: contradicts --no-check; drop one")
    skip = _skipping(args)
    if not skip:
        return
    if args.plot is not None:
        raise ValueError(f"--plot: the figure draws the check's result, and {skip}; drop one")
    for flag in ("--samples", "--seed", "--device"):
        if getattr(args, flag[2:]) is not None:
            raise ValueError(f"{flag}: only the check uses it, and {skip}; drop one")
    if not hasattr(mod, "answer"):
        for o in options_of(mod):
            if getattr(args, o.dest) is not None:
                raise ValueError(f"{o.flag}: only the check uses it, and {skip}; drop one")


def _skipping(args: argparse.Namespace) -> str:
    """Why the check is skipped ('' when it runs): --no-check, or --latex without --check."""
    if args.no_check:
        return "--no-check skips the check"
    if args.latex and not args.check:
        return "--latex skips the check unless --check is given"
    return ""


def run(mod: ModuleType, argv: list[str] | None = None) -> int:
    """Parse ``argv``, print the derivation and its check; 0 if both hold, 1 if not, 2 on bad input
    (one line naming the flag, before any work), 130 on Ctrl-C."""
    args = parser_for(mod).parse_args(argv)
    flags = {o.dest: o.flag for o in options_of(mod)} | SHARED_FLAGS
    return guard(lambda: _run(mod, args), flags)


def main_for(name: str):
    """The ``main(argv=None) -> int`` of exercise module ``name`` (pass ``__name__``): :func:`run` over
    it, so that ``python -m proofs.<name>`` and ``mod.main([...])`` share this command line."""

    def main(argv: list[str] | None = None) -> int:
        return run(sys.modules[name], argv)

    return main


def _run(mod: ModuleType, args: argparse.Namespace) -> int:
    from models.utils.device import pick_device

    _refuse_unused(mod, args)
    given = {o.dest: getattr(args, o.dest) for o in options_of(mod) if getattr(args, o.dest) is not None}
    seed = 0 if args.seed is None else args.seed
    if args.device is not None:
        pick_device(args.device)  # an unknown device fails here, not after the derivation
    checking = not _skipping(args) or hasattr(mod, "answer")  # validate's rules (and data) serve the check only
    o = settings(mod, args.device, args.samples, seed, rules=checking, **given)  # bad options fail here
    t0 = time.perf_counter()
    try:
        d = mod.derivation()
    except StepFailed as e:  # a derivation step sympy disproved: a failure of the claim, not of the input
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    t_derive = time.perf_counter() - t0
    res = answer = None
    if _skipping(args):
        answer = mod.answer(**given) if hasattr(mod, "answer") else None
    else:
        res = mod.check(**o.keywords())
    if args.plot:
        draw(mod, res, args.plot)
    if args.json:
        print(json.dumps(record(mod, d, res, answer), indent=2, default=float))
    elif args.latex:
        print(d.latex_document())
    else:
        _print(mod, d, t_derive, answer, res, args.plot)
    return 0 if res is None or res.passed else 1  # a spot-checked step is reported as such


def _print(mod: ModuleType, d, t_derive: float, answer, res, plot) -> None:
    print(f"Exercise {mod.NUMBER}: {prose.to_text(mod.CLAIM)}\n")
    print(d.text())
    print(f"  (derivation checked in {t_derive:.2f} s; status: {d.status})\n")
    if answer is not None:
        print("Answer for the options asked:")
        print("\n".join(f"  {line}" for line in answer))
        print()
    print(res.text() if res is not None else "Check: NOT CHECKED (--no-check)")
    if plot:
        print(f"Figure written to {plot}")

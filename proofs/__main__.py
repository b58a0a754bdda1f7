"""``python -m proofs`` lists the exercises; ``all`` runs every one; ``report`` writes a report;
``python -m proofs 13.3 [flags]`` (or the module's name) runs one exercise with its module's flags."""

from __future__ import annotations

import json
import sys
import time

from derive import prose
from models.utils.cli import OneLineParser, guard, output_dir, seed_int, text
from proofs import ALIASES, REGISTRY, load, numbers


def _list() -> int:
    for n in numbers():
        mod = load(n)
        print(f"{n:>6}  {REGISTRY[n]:<24} {prose.to_text(mod.CLAIM)}")
    for alias, n in sorted(ALIASES.items()):
        print(f"{alias:>6}  {REGISTRY[n]:<24} (answered with exercise {n})")
    print("\nRun one: python -m proofs.<name>   all: python -m proofs all   report: python -m proofs report")
    return 0


def _all(args) -> int:
    from models.utils.device import describe, pick_device
    from proofs.kit.runner import run_one

    dev = pick_device(args.device)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print  # --json: stdout holds only the JSON
    say(f"Running {len(REGISTRY)} exercises on {describe(dev)} with seed {args.seed}\n")
    failures, records, t0 = [], [], time.perf_counter()
    for n in numbers():
        r = run_one(load(n), device=str(dev), seed=args.seed)
        line = f"{n:>6} {REGISTRY[n]:<24} derivation {r.status:<26} check {r.verdict:<5} {r.seconds:6.2f} s"
        say(line + (f"  ({r.error})" if r.error else ""))
        records.append(r.record(name=REGISTRY[n], seconds=r.seconds))
        if r.verdict != "PASS":
            failures.append(n)
    took = time.perf_counter() - t0
    say(f"\n{len(REGISTRY) - len(failures)}/{len(REGISTRY)} passed in {took:.1f} s on {describe(dev)}")
    if failures:
        say("FAILED: " + ", ".join(failures))
    if args.json:  # the same records as each exercise's --json and the report's results.json
        print(json.dumps(records, indent=2, default=float))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m proofs [all|report|EXERCISE ...]``: 0 when every exercise passes, 1 if one fails, 2 on bad
    input. ``EXERCISE`` is a number (13.3) or a name (dot_product_variance) and takes that module's flags."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] not in ("all", "report") and not argv[0].startswith("-"):
        try:
            mod = load(argv[0])
        except ValueError as e:
            print(f"python -m proofs: error: {e}", file=sys.stderr)
            return 2
        return mod.main(argv[1:])
    p = OneLineParser(prog="python -m proofs", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    a = sub.add_parser("all", help="run every derivation and check")
    r = sub.add_parser("report", help="write a page per exercise, an index and results.json")
    r.add_argument(
        "--out",
        type=output_dir(),
        default="report",
        help="output folder (default ./report): new, empty, or an earlier report; a folder of yours is refused",
    )
    r.add_argument("--pdf", action="store_true", help="also compile booklet.pdf of every exercise (needs pdflatex)")
    a.add_argument("--json", action="store_true", help="print every exercise's result record as a JSON list")
    for q in (a, r):
        q.add_argument("--device", type=text(), help="cpu or cuda (default: $PROOFS_DEVICE, else cuda if present)")
        q.add_argument("--seed", type=seed_int(), default=0, help="seed (default 0)")
    args = p.parse_args(argv)
    return guard(lambda: _main(args), {"out": "--out", "device": "--device", "seed": "--seed", "pdf": "--pdf"})


def _main(args) -> int:
    if args.cmd == "all":
        return _all(args)
    if args.cmd == "report":
        from proofs.kit.report import write_report

        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        out, passed = write_report(args.out, device=args.device, seed=args.seed, say=say, pdf=args.pdf)
        print(f"Report written to {out}" + ("" if passed else " (some exercises FAILED: see its index.md)"))
        return 0 if passed else 1
    return _list()


if __name__ == "__main__":
    raise SystemExit(main())

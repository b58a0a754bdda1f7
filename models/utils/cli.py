"""Command-line conventions shared by every entry point.

Bad input prints one line that names the flag as the user typed it and exits with status 2,
never a traceback, and before any expensive work:

- the argparse types below refuse a value at parse time (argparse names the flag:
  ``argument --lr: must be finite, got nan``);
- :func:`guard` runs a command's body and turns a ValueError (an API error naming a parameter,
  ``n_kv_head: ...``) into ``error: --n-kv-head: ...`` using the command's map of parameter names
  to flags, a file-system error into one line naming the path, and Ctrl-C into exit 130.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Mapping

from models.utils.files import check_output_dir, check_output_file, figure_format

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2 (no usage dump).
    Flags must be typed in full (no abbreviations), so a message names exactly what was typed."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """Print ``prog: error: message`` on one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())}\n")


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None


def int_in(lo: int | None = None, hi: int | None = None, why: str = ""):
    """An argparse type for integers in [lo, hi] (either end open when None); ``why`` explains hi."""

    def conv(s: str) -> int:
        v = _int(s)
        if lo is not None and v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi:,}{f' ({why})' if why else ''}, got {v:,}")
        return v

    return conv


def positive_int(hi: int | None = None, why: str = ""):
    """An argparse type for integers in [1, hi]."""
    return int_in(1, hi, why)


def seed_int():
    """An argparse type for seeds: integers in [0, 2^63 - 1]."""
    return int_in(0, MAX_SEED, "a signed 64-bit seed")


def finite_float(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    """An argparse type for finite floats in the interval from lo to hi (closed unless ``*_open``)."""

    def conv(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {s!r}")
        check_range(v, lo, hi, lo_open, hi_open, argparse.ArgumentTypeError)
        return v

    return conv


def check_range(v: float, lo=None, hi=None, lo_open=False, hi_open=False, error=ValueError, name: str = "") -> float:
    """Raise ``error`` (prefixed by ``name:`` when given) unless lo <= v <= hi (strict where open)."""
    pre = f"{name}: " if name else ""
    if not math.isfinite(v):
        raise error(f"{pre}must be a finite number, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise error(f"{pre}must be {'above' if lo_open else 'at least'} {lo:g}, got {v:g}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise error(f"{pre}must be {'below' if hi_open else 'at most'} {hi:g}, got {v:g}")
    return v


def text():
    """An argparse type for a non-empty string."""

    def conv(s: str) -> str:
        if not s.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        return s

    return conv


def _path_type(check: Callable):
    def conv(s: str) -> str:
        try:
            check(s, "")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).lstrip(": ")) from None
        return s

    return conv


def output_file():
    """An argparse type for a file to write: its folder exists and is writable, it is not a folder."""
    return _path_type(check_output_file)


def figure_file():
    """An argparse type for a figure to write: .png, .pdf or .svg, in a writable folder, replacing
    nothing but a figure this toolkit wrote."""

    def check(s: str, what: str) -> None:
        check_output_file(s, what, mine=True)
        figure_format(s, what)

    return _path_type(check)


def output_dir():
    """An argparse type for a folder to write: not a file, and its nearest existing folder is writable."""
    return _path_type(check_output_dir)


def input_file():
    """An argparse type for a file to read: it exists and is a regular file."""

    def check(s: str, _what: str) -> None:
        from pathlib import Path

        if not s.strip():
            raise ValueError("empty path")
        if not Path(s).is_file():
            raise ValueError(f"no file at {s!r}" + (" (it is a folder)" if Path(s).is_dir() else ""))

    return _path_type(check)


def flag_of(name: str) -> str:
    """The flag of an API parameter: ``n_kv_head`` -> ``--n-kv-head``."""
    return "--" + name.replace("_", "-")


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """Rewrite a leading ``name:`` (an API parameter) as the flag the user typed, ``--flag:``."""
    m = re.match(r"(\w+):", message)
    if m and m[1] in flags:
        message = flags[m[1]] + message[m.end(1) :]
    return re.sub(r"(?<![\w-])(\w+)=", lambda g: (flags.get(g[1]) or g[1]) + "=", message)  # "n_embd=128" too


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


def guard(body: Callable[[], int], flags: Mapping[str, str] | None = None) -> int:
    """Run ``body()`` and return its exit status; what a user can cause ends in one line on stderr:

    - ValueError (bad input; FileNotFoundError too): ``error: --flag: ...``, status 2;
    - other OSError (a folder not writable, a disk full): ``error: PATH: reason``, status 2;
    - running out of memory: ``error: out of memory ...``, status 2;
    - Ctrl-C: ``interrupted``, status 130.
    ``flags`` maps API parameter names to the flags as typed (default: ``--`` plus the name with dashes).
    """
    flags = flags or {}
    try:
        return body()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, FileNotFoundError) as e:
        msg = name_flags(_one_line(e), flags)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "memory" in str(e)):
            raise
        print(f"error: out of memory ({_one_line(e)[:160]}); try smaller sizes", file=sys.stderr)
        return 2
    except OSError as e:
        where = e.filename if e.filename is not None else ""
        print(f"error: {where}{': ' if where else ''}{_one_line(e.strerror or e)}", file=sys.stderr)
        return 2


def preset_run_main(argv, *, prog: str, doc: str, presets: Mapping, run: Callable, out: str) -> int:
    """The command line of a preset experiment (``models.training.icl_run``, ``induction_run``): ``--preset``,
    ``--out`` (default ``out``), ``--iters``, ``--seed`` and ``--device``, passed to
    ``run(preset, out, device, seed, say, **sizes)`` with progress on stderr. Exit 0, 2 on bad input (one line
    naming the flag), 130 on Ctrl-C."""
    p = OneLineParser(prog=prog, description=doc.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(presets), default="cpu", help="model and run sizes; default: cpu")
    p.add_argument("--out", type=output_dir(), default=out, help=f"output folder; default ./{out}")
    p.add_argument("--iters", type=int_in(1, 10**6, "time"), default=None, help="training steps; default: the preset's")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the weights and training data; default 0")
    p.add_argument("--device", type=text(), default=None, help="cpu or cuda; default: cuda when available")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    sizes = {} if args.iters is None else {"iters": args.iters}

    def body() -> int:
        run(args.preset, args.out, args.device, args.seed, say, **sizes)
        return 0

    return guard(body, {"out": "--out", "preset": "--preset", "iters": "--iters", "device": "--device"})

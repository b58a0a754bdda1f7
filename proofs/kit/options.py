"""An exercise's options, declared once and read by the command line, ``check``, ``answer`` and
the figure.

An exercise lists its options as ``OPTIONS = [Option(flag, type, default, help, lo, hi, why), ...]``
and decorates ``check`` (and ``answer``) with :func:`with_options`. The decorated function takes
``device``, ``samples``, ``seed`` and the options as keywords, each defaulting to its declaration;
the decorator fills the defaults, checks every value against its declaration (type, bounds, choices),
runs the module's ``validate(o)`` (cross-option rules, memory and time bounds), and only then calls
the body with one :class:`Settings` object ``o``. So validation always runs, whatever path reached
the check: the command line, ``python -m proofs all``, the report, a test or a notebook.

Errors are ``ValueError("name: ...")`` naming the option as the API spells it (``max_dk``); the
command line rewrites the name to the flag as typed (``--max-dk``).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from models.utils.cli import finite_float, int_in

DEFAULT_MAX_SAMPLES = 10**7
SAMPLES_WHY = "the check's time grows with the samples"


@dataclass(frozen=True)
class Option:
    """One option of an exercise: ``--flag`` on the command line, ``dest`` in the API.

    ``type`` is int, float or str; ints and floats must lie in [``lo``, ``hi``] (``why`` says where
    ``hi`` comes from: memory or time), floats must be finite, and a str with ``choices`` must be one
    of them; ``lo_open`` excludes ``lo`` itself (a positive float: ``lo=0, lo_open=True``). ``default``
    is the value used when the option is not given; ``None`` means "the exercise's own choice" (the
    help says which), and then ``None`` is also accepted from the API."""

    flag: str
    type: type
    default: object
    help: str
    lo: float | None = None
    hi: float | None = None
    why: str = ""
    choices: tuple[str, ...] | None = None
    lo_open: bool = False

    @property
    def dest(self) -> str:
        """The keyword name: ``--max-dk`` -> ``max_dk``."""
        return self.flag.lstrip("-").replace("-", "_")

    def converter(self) -> Callable[[str], object]:
        """The argparse type that turns the typed string into a checked value."""
        if self.type is int:
            return int_in(self.lo, self.hi, self.why)
        if self.type is float:
            return finite_float(self.lo, self.hi, lo_open=self.lo_open)
        return self._text

    def _text(self, s: str) -> str:
        if self.choices is not None and s not in self.choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(self.choices)}, got {s!r}")
        return s

    def coerce(self, value: object) -> object:
        """``value`` checked as the command line would check it; ValueError ``dest: ...`` if not."""
        if value is None and self.default is None:
            return None
        if self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{self.dest}: expected an integer, got {value!r}")
        if self.type is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{self.dest}: expected a number, got {value!r}")
        if self.type is str and not isinstance(value, str):
            raise ValueError(f"{self.dest}: expected a string, got {value!r}")
        try:
            return self.converter()(repr(float(value)) if self.type is float else str(value))
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{self.dest}: {e}") from None


class Settings:
    """The checked settings of one run: ``device`` (as given: None, "cpu", "cuda"), ``samples``
    (None when the exercise draws nothing at random), ``seed``, and one attribute per option."""

    def __init__(self, device, samples, seed, options: dict):
        self.device, self.samples, self.seed = device, samples, seed
        self.options = dict(options)
        for k, v in options.items():
            setattr(self, k, v)

    def keywords(self) -> dict:
        """Everything as keywords, to call a decorated ``check`` or ``answer`` again."""
        return {"device": self.device, "samples": self.samples, "seed": self.seed, **self.options}

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.keywords().items())})"


def options_of(mod: ModuleType) -> list[Option]:
    """The options ``mod`` declares (none when it declares none)."""
    return list(getattr(mod, "OPTIONS", []))


def max_samples(mod: ModuleType) -> tuple[int, str]:
    """The largest ``samples`` the exercise accepts, and why (memory or time)."""
    return getattr(mod, "MAX_SAMPLES", DEFAULT_MAX_SAMPLES), getattr(mod, "SAMPLES_WHY", SAMPLES_WHY)


def min_samples(mod: ModuleType) -> tuple[int, str]:
    """The smallest ``samples`` the exercise accepts (``MIN_SAMPLES``, default 1), and why (``MIN_SAMPLES_WHY``:
    the statistics need that many to estimate a standard error or to have power against the controls)."""
    return getattr(mod, "MIN_SAMPLES", 1), getattr(mod, "MIN_SAMPLES_WHY", "")


def settings(mod: ModuleType, device=None, samples=None, seed=0, rules: bool = True, **given) -> Settings:
    """Check ``given`` against ``mod``'s declarations, fill the defaults, and with ``rules`` run
    ``mod.validate`` (rules across options, memory bounds, data that must be there: what only the
    check needs, so a caller that will not run it, such as ``--latex``, may pass ``rules=False``).

    Raises ValueError naming the option: an unknown option, a value of the wrong type, out of
    bounds or not among the choices, or one that ``validate`` refuses."""
    declared = {o.dest: o for o in options_of(mod)}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"{unknown[0]}: not an option of exercise {mod.NUMBER} (it has: {', '.join(declared) or 'none'})"
        )
    values = {k: o.coerce(given[k]) if k in given else o.default for k, o in declared.items()}
    if mod.DEFAULT_SAMPLES is None:
        if samples is not None:
            raise ValueError("samples: this exercise draws nothing at random, so there is nothing to sample")
    else:
        samples = mod.DEFAULT_SAMPLES if samples is None else samples
        hi, why = max_samples(mod)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples: must be a positive integer, got {samples!r}")
        lo, lo_why = min_samples(mod)
        if samples < lo:
            why = f" ({lo_why})" if lo_why else ""
            raise ValueError(f"samples: need at least {lo:,}{why}, got {samples:,}")
        if samples > hi:
            raise ValueError(f"samples: must be at most {hi:,} ({why}), got {samples:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed: must be an integer from 0 to 2^63 - 1, got {seed!r}")
    o = Settings(device, samples, seed, values)
    if rules and hasattr(mod, "validate"):
        mod.validate(o)
    return o


def with_options(fn: Callable[[Settings], object]) -> Callable:
    """Decorate an exercise's ``check(o)`` or ``answer(o)``: the result takes ``device``, ``samples``,
    ``seed`` and the declared options as keywords, checks them with :func:`settings`, and calls
    ``fn`` with the :class:`Settings`, under ``torch.random.fork_rng`` so that torch's global random
    state (CPU and CUDA) is the caller's again afterwards. A returned result records the settings it was made with
    (``res.settings``), so that the figure can draw it without running the check again."""
    mod = sys.modules[fn.__module__]

    @functools.wraps(fn)
    def call(device=None, samples=None, seed=0, **options):
        import torch

        o = settings(mod, device, samples, seed, **options)
        with torch.random.fork_rng():  # a check may seed torch (the Trainer does): the caller's RNG comes back
            out = fn(o)
        if hasattr(out, "settings"):
            out.settings = o
        return out

    params = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in _shared(mod)]
    params += [inspect.Parameter(o.dest, inspect.Parameter.KEYWORD_ONLY, default=o.default) for o in options_of(mod)]
    call.__signature__ = inspect.Signature(params)  # help(check) shows every option with its default
    call.body = fn
    return call


def _shared(mod: ModuleType) -> list[tuple[str, object]]:
    return [("device", None), ("samples", getattr(mod, "DEFAULT_SAMPLES", None)), ("seed", 0)]

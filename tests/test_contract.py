"""One contract, checked over every registered exercise (in the manner of sympy's test_args.py):
an exercise added to ``proofs.REGISTRY`` passes or fails here without new test code.

Every exercise must
- import without side effects (torch's global state, output, files) and declare ``NUMBER``,
  ``CLAIM``, ``DEFAULT_SAMPLES`` and its options;
- derive its claim with every step proved, proved from a lemma its assumptions state, spot-checked
  (labelled so) or a definition;
- have a ``check`` that passes at the default seed on the CPU, with at least one negative control,
  every one rejected, and a stated seed and sample count;
- print a ``--json`` record with the verdict, list its options in ``--help``, draw its figure (if it
  has one) from the check's result, and refuse bad input through the shared path: one line naming
  the flag as typed, exit 2, before any work.

The default checks run once per module (a module-scoped cache) and the CLI tests reuse them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_exit, require_corpus

from derive import prose
from derive.engine import Derivation
from numeric.check import CheckResult
from proofs import REGISTRY, load, numbers
from proofs.kit.cli import parser_for
from proofs.kit.options import Option, options_of
from proofs.kit.plotting import draw
from proofs.kit.report import caption

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = numbers()
STATUSES = {"proved", "proved from a stated lemma", "spot-checked", "definition"}
_RESULTS: dict[str, CheckResult] = {}
# exercises whose default check takes seconds: their check, --json and figure cases are `slow`
SLOW = {
    "13.1",
    "13.3",
    "13.4",
    "13.5",
    "13.6",
    "13.8",
    "13.10",
    "13.13",
    "13.18",
    "13.19",
    "13.20",
    "13.21",
    "13.22",
    "13.23",
    "13.25",
    "13.26",
    "13.27",
    "13.28",
    "13.29",
    "13.32",
}


_DERIVATIONS: dict[str, Derivation] = {}


def derivation_of(number: str) -> Derivation:
    """The exercise's derivation (computed once per session)."""
    if number not in _DERIVATIONS:
        _DERIVATIONS[number] = load(number).derivation()
    return _DERIVATIONS[number]


def marked(numbers: list[str]) -> list:
    """``numbers`` for a parametrize, the slow exercises marked ``slow`` (``pytest -m "not slow"`` skips them)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in numbers]


def default_result(number: str) -> CheckResult:
    """The exercise's check at its defaults, seed 0, on the CPU (computed once per session)."""
    if number not in _RESULTS:
        mod = load(number)
        if any(o.dest == "data" for o in options_of(mod)):  # the trained exercises read tiny Shakespeare
            require_corpus()
        _RESULTS[number] = mod.check(device="cpu", seed=0)
    return _RESULTS[number]


def uses_device(mod) -> bool:
    """False for an exercise that runs nowhere in particular (13.12 builds on the meta device)."""
    return "--device" not in getattr(mod, "UNUSED_FLAGS", {})


def test_the_registry_is_not_empty_and_names_are_unique():
    assert len(REGISTRY) >= 17 and len(set(REGISTRY.values())) == len(REGISTRY)


def test_importing_every_exercise_has_no_side_effects(tmp_path):
    """In a fresh interpreter: importing each module leaves torch's RNG, default dtype, thread
    count and grad mode as they were, prints nothing and writes no file."""
    names = list(REGISTRY.values())
    code = f"""
import torch, sys, io, os, importlib
state = lambda: (torch.random.get_rng_state().tolist(), torch.get_default_dtype(), torch.get_num_threads(),
                 torch.is_grad_enabled())
for name in {names!r}:
    before, out = state(), io.StringIO()
    sys.stdout = out
    importlib.import_module("proofs." + name)
    sys.stdout = sys.__stdout__
    assert state() == before, name + ": changed torch's global state on import"
    assert out.getvalue() == "", name + ": printed on import"
assert os.listdir(".") == [], os.listdir(".")
print("ok")
"""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


@pytest.mark.parametrize("number", NUMBERS)
def test_declarations(number):
    mod = load(number)
    assert number in mod.NUMBER.split(", ") and isinstance(mod.CLAIM, str) and len(mod.CLAIM) > 20
    prose.check(mod.CLAIM)  # the claim is prose: its maths typeset between $...$, like the derivation's
    cap = caption(mod)  # so is the figure's caption, the first sentence of its docstring
    assert len(cap) > 20 and prose.check(cap), cap
    assert mod.DEFAULT_SAMPLES is None or (isinstance(mod.DEFAULT_SAMPLES, int) and mod.DEFAULT_SAMPLES >= 1)
    opts = options_of(mod)
    assert all(isinstance(o, Option) and o.flag.startswith("--") and o.help for o in opts)
    assert len({o.dest for o in opts}) == len(opts)
    for o in opts:  # every default passes its own declaration
        assert o.coerce(o.default) == o.default, o.flag
    assert callable(getattr(mod.check, "body", None)), "check must be decorated with proofs.kit.options.with_options"
    assert mod.__doc__ and len(mod.__doc__) > 200, "the module docstring states and derives the claim"


@pytest.mark.parametrize("number", NUMBERS)
def test_derivation_steps_are_proved_or_labelled(number):
    d = derivation_of(number)
    assert isinstance(d, Derivation) and len(d.steps) >= 2
    assert {s.status for s in d.steps} <= STATUSES
    assert d.status in ("proved", "proved from a stated lemma", "spot-checked")
    resting = ("spot-checked", "proved from a stated lemma")
    assert (d.status == "proved") == all(s.status not in resting for s in d.steps)


@pytest.mark.parametrize("number", marked(NUMBERS))
def test_check_passes_at_the_default_seed_with_rejected_controls(number):
    mod, res = load(number), default_result(number)
    assert res.passed, res.text()
    assert res.claims and all(c.agrees for c in res.claims)
    assert res.controls, "a check needs a negative control: a plausible wrong answer it rejects"
    assert not any(c.agrees for c in res.controls)
    assert res.seed == 0 and (res.device.startswith("cpu") or not uses_device(mod)), res.device
    assert res.samples == mod.DEFAULT_SAMPLES or (mod.DEFAULT_SAMPLES is not None and res.samples is not None)
    assert res.settings is not None and res.settings.seed == 0


@pytest.mark.parametrize("number", marked(NUMBERS))
def test_json_record_carries_the_verdict(number, capsys, monkeypatch):
    mod, res = load(number), default_result(number)
    monkeypatch.setattr(mod, "check", lambda **kw: res)  # the record of this very result, not a rerun
    assert cli_exit(mod, ["--json"] + (["--device", "cpu"] if uses_device(mod) else [])) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["exercise"] == mod.NUMBER and rec["verdict"] == "PASS" and rec["check"] == json.loads(res.json())
    assert rec["derivation"]["status"] in ("proved", "proved from a stated lemma", "spot-checked")
    assert cli_exit(mod, ["--json", "--no-check"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "NOT CHECKED"


@pytest.mark.parametrize("number", NUMBERS)
def test_help_lists_every_option(number, capsys):
    mod = load(number)
    text = parser_for(mod).format_help()
    for flag in ["--json", "--latex", "--device", "--samples", "--seed", "--no-check"]:
        assert flag in text
    for o in options_of(mod):
        assert o.flag in text, o.flag
    assert ("--plot" in text) == hasattr(mod, "figure")


@pytest.mark.parametrize("number", marked([n for n in NUMBERS if hasattr(load(n), "figure")]))
def test_figure_draws_the_check_result(number, tmp_path):
    path = draw(load(number), default_result(number), tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def _bad_values(o: Option) -> list[str]:
    if o.type is int:
        return (
            ["abc", "1.5"]
            + ([str(int(o.lo) - 1)] if o.lo is not None else [])
            + ([str(int(o.hi) + 1)] if o.hi is not None else [])
        )
    if o.type is float:
        return ["nan", "inf", "abc"] + ([str(o.hi * 2 + 1)] if o.hi is not None and o.hi > 0 else [])
    return ["no-such-choice"] if o.choices else []


CASES = [(n, o.flag, v) for n in NUMBERS for o in options_of(load(n)) for v in _bad_values(o)]
CASES += [(n, flag, v) for n in NUMBERS for flag, v in [("--samples", "0"), ("--seed", "-1"), ("--device", "tpu")]]


@pytest.mark.parametrize("number, flag, value", CASES)
def test_bad_input_is_refused_in_one_line_naming_the_flag(number, flag, value, capsys, monkeypatch):
    mod = load(number)
    monkeypatch.setattr(mod, "derivation", lambda: pytest.fail("ran the derivation before refusing"))
    assert cli_exit(mod, [flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err and "Traceback" not in err, err


@pytest.mark.parametrize("number", NUMBERS)
def test_api_refuses_unknown_options_and_bad_types_naming_them(number):
    mod = load(number)
    with pytest.raises(ValueError, match=r"^no_such_option: "):
        mod.check(no_such_option=1)
    for o in options_of(mod):
        with pytest.raises(ValueError, match=rf"^{o.dest}: "):
            mod.check(**{o.dest: [] if o.type is not str else 1})


def test_no_registered_exercise_rests_on_a_spot_check():
    """Today every derivation is proved, or proved from a lemma it states (13.3): none is spot-checked."""
    spot = {n: derivation_of(n).status for n in NUMBERS}
    assert not [n for n, status in spot.items() if status == "spot-checked"], spot


def test_a_check_gives_torch_s_random_state_back():
    """13.24's check seeds torch (its toy encoder is built under the seed); the shared decorator forks the RNG."""
    import torch

    before = torch.random.get_rng_state()
    load("13.24").check(device="cpu", seed=0, samples=10_000, steps=1)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("number", [n for n in NUMBERS if getattr(load(n), "MIN_SAMPLES", 1) > 1])
def test_too_few_samples_are_refused_naming_samples(number):
    mod = load(number)
    with pytest.raises(ValueError, match="^samples: need at least"):
        mod.check(device="cpu", seed=0, samples=mod.MIN_SAMPLES - 1)

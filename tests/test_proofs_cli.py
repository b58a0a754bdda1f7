"""`python -m proofs`: the list, `all` (exit status follows the verdicts) and `report` (written whole)."""

import json
import subprocess
import sys

import pytest
from helpers import QUICK, cli_exit

import proofs
import proofs.kit.runner
from numeric.check import Bound, CheckResult
from proofs.__main__ import main
from proofs.kit.report import caption, write_report


@pytest.mark.slow  # a real process
def test_list_names_every_registered_exercise():
    out = subprocess.run([sys.executable, "-m", "proofs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for number, name in proofs.REGISTRY.items():
        assert number in out.stdout and name in out.stdout
    for alias in proofs.ALIASES:
        assert alias in out.stdout


def test_load_by_number_or_name_and_unknown():
    assert proofs.load("13.30") is proofs.load("mha_params")
    assert proofs.load("13.17") is proofs.load("13.12") and proofs.load("13.23") is proofs.load("mqa_decoding")
    with pytest.raises(ValueError, match="^exercise"):
        proofs.load("13.99")


@pytest.mark.slow
def test_all_and_report_fail_when_a_check_fails(quick, capsys, monkeypatch, tmp_path):
    assert main(["all", "--device", "cpu"]) == 0
    assert "2/2 passed" in capsys.readouterr().out
    mod = proofs.load("13.31")
    failing = CheckResult("forced", "cpu", 1, 0, claims=[Bound.of("one equals two", 1.0, 2.0, 0.0)])
    monkeypatch.setattr(mod, "check", lambda **kw: failing)
    assert main(["all", "--device", "cpu"]) == 1
    assert "FAILED: 13.31" in capsys.readouterr().out
    out = tmp_path / "rep"  # the report of a failing exercise is written, and the exit status says so
    assert main(["report", "--device", "cpu", "--out", str(out)]) == 1
    assert json.loads((out / "results.json").read_text())["passed"] is False


def test_report_is_complete_and_machine_readable(quick, tmp_path):
    lines = []
    out, passed = write_report(tmp_path / "rep", device="cpu", say=lines.append)
    assert passed and len(lines) == 2 and "13.31" in lines[1] and "PASS" in lines[1]  # one progress line each
    res = json.loads((out / "results.json").read_text())
    assert res["passed"] and [e["exercise"] for e in res["exercises"]] == ["13.30", "13.31"]
    for name in QUICK.values():
        page = (out / f"{name}.md").read_text()
        assert page.startswith("# Exercise") and f"*{caption(proofs.load(name))}*" in page  # the figure's caption
        assert (out / f"{name}.tex").read_text().startswith("\\documentclass")
        assert (out / f"{name}.png").stat().st_size > 1000
    index = (out / "index.md").read_text()
    assert "| 13.31 | prenorm_postnorm | proved | PASS |" in index and '<img src="prenorm_postnorm.png"' in index


@pytest.mark.slow
def test_report_failure_leaves_the_old_report_intact(quick, tmp_path, monkeypatch):
    out, _ = write_report(tmp_path / "rep", device="cpu")
    before = (out / "results.json").read_text()
    calls = []

    def crash(mod, **kw):
        calls.append(mod)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(mod, **kw)

    real = proofs.kit.runner.run_one
    monkeypatch.setattr(sys.modules["proofs.kit.report"], "run_one", crash)
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "rep", device="cpu")
    assert (out / "results.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no half-written folder left


def test_bad_arguments_exit_2(capsys):
    assert main(["report", "--device", "tpu"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --device")
    assert main(["frobnicate"]) == 2  # neither a command nor an exercise
    assert "unknown 'frobnicate'" in capsys.readouterr().err


@pytest.mark.slow  # a real process
def test_latex_flag_prints_the_derivation_document():
    """``--latex`` prints exactly the derivation's document (tests/test_latex.py compiles each one)."""
    tex = subprocess.run(
        [sys.executable, "-m", "proofs.mha_params", "--latex", "--no-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert tex.strip() == proofs.load("13.30").derivation().latex_document().strip()


def test_report_pdf_without_pdflatex_is_refused_before_any_work(quick, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules["proofs.kit.booklet"].shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules["proofs.kit.report"], "run_one", lambda *a, **k: pytest.fail("ran an exercise"))
    assert main(["report", "--pdf", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --pdf: pdflatex is not installed") and len(err.splitlines()) == 1
    assert not (tmp_path / "rep").exists()


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex not installed")
def test_report_pdf_booklet_has_a_figure_on_each_exercise_page(quick, tmp_path):
    from test_latex import MAX_OVERFULL_PT, compile_tex, overfull_pt

    from proofs.kit.booklet import booklet_tex

    out, passed = write_report(tmp_path / "rep", device="cpu", pdf=True)
    pdf = out / "booklet.pdf"
    assert passed and pdf.read_bytes().startswith(b"%PDF") and (out / "booklet.tex").exists()
    assert not any((out / f"booklet.{ext}").exists() for ext in ("aux", "log"))  # pdflatex's by-products gone
    src = (out / "booklet.tex").read_text()
    assert src.count("\\includegraphics") == len(QUICK) and src.count("\\clearpage") == len(QUICK)
    if __import__("shutil").which("pdfimages"):  # poppler: the page each exercise starts on holds an image
        listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True)
        with_image = {int(line.split()[0]) for line in listing.stdout.splitlines()[2:]}
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        pages = text.split("\f")
        starts = {n: next(i + 1 for i, pg in enumerate(pages) if f"Exercise {n}:" in pg) for n in QUICK}
        assert set(starts.values()) <= with_image and starts["13.30"] > 1, (starts, with_image)
    log = compile_tex(src, out)  # the same source: nothing runs off the page
    assert max(overfull_pt(log), default=0.0) <= MAX_OVERFULL_PT
    assert booklet_tex([], "cpu", 0).count("\\clearpage") == 0


def test_a_disproved_step_fails_with_one_line(capsys, monkeypatch):
    from derive.engine import StepFailed

    mod = proofs.load("13.30")

    def broken():
        raise StepFailed("step 3 (sum over heads) fails: differs by 1")

    monkeypatch.setattr(mod, "derivation", broken)
    assert mod.main(["--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["FAILED: step 3 (sum over heads) fails: differs by 1"]


# -- every flag is used or refused; a run without a check never says PASS ------------------------------


def test_no_check_prints_the_answer_for_the_options_given(capsys):
    import proofs.kv_cache as kv

    argv = ["--layers", "32", "--heads", "32", "--head-dim", "128", "--context", "2048", "--no-check"]
    assert kv.main(argv) == 0
    out = capsys.readouterr().out
    assert "1,073,741,824" in out and "NOT CHECKED" in out and "PASS" not in out
    assert kv.main(argv + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["verdict"] == "NOT CHECKED" and res["check"] is None
    assert any("1,073,741,824" in line for line in res["answer"])
    # control: the textbook's own numbers (80 layers, 64 heads) do not contain that answer
    assert kv.main(["--no-check"]) == 0
    assert "1,073,741,824" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "name,argv,answer",
    [
        ("param_count", ["--layers", "80", "--d-model", "8192", "--vocab", "32000", "--heads", "64"], "68,976,648,192"),
        ("sinusoidal_values", ["--d-model", "6", "--positions", "2"], "cos(2/21.5443469003188)"),
        ("chinchilla", ["--flops", "1e24"], "C = 1e+24 FLOPs"),
    ],
)
def test_every_calculator_answers_without_its_check(name, argv, answer, capsys):
    mod = proofs.load(name)
    extra = ["--kv-heads", "8", "--swiglu-hidden", "28672"] if name == "param_count" else []
    assert mod.main(argv + extra + ["--no-check"]) == 0
    out = capsys.readouterr().out
    assert "NOT CHECKED" in out and "Verdict: PASS" not in out
    assert answer.split("(")[0] in out, out[-1500:]


@pytest.mark.parametrize(
    "name,argv,flag",
    [
        ("dot_product_variance", ["--max-dk", "8", "--no-check"], "--max-dk"),
        ("rope_relative", ["--dim", "8", "--no-check"], "--dim"),
        ("dot_product_variance", ["--samples", "20000", "--no-check"], "--samples"),
        ("mha_params", ["--seed", "3", "--no-check"], "--seed"),
        ("rope_matrix", ["--device", "cpu", "--no-check"], "--device"),
        ("sinusoidal_values", ["--samples", "5"], "--samples"),  # draws nothing at random
        ("attention_by_hand", ["--samples", "2"], "--samples"),
        ("dot_product_variance", ["--plot", "x.png", "--no-check"], "--plot"),  # the figure draws the check
    ],
)
def test_flags_that_would_be_ignored_are_refused(name, argv, flag, capsys):
    mod = proofs.load(name)
    assert cli_exit(mod, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag}:"), err


@pytest.mark.parametrize(
    "name,argv,flag",
    [
        ("attention_by_hand", ["--json", "--latex"], "--latex"),
        ("attention_by_hand", ["--seed", "5"], "--seed"),
        ("chinchilla", ["--seed", "5"], "--seed"),
        ("chinchilla", ["--device", "cpu"], "--device"),
        ("param_count", ["--device", "cpu"], "--device"),
    ],
)
def test_shared_flags_an_exercise_ignores_are_refused(name, argv, flag, capsys):
    assert cli_exit(proofs.load(name), argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0], err


def test_a_bad_device_from_the_environment_is_named_as_such(capsys, monkeypatch):
    monkeypatch.setenv("PROOFS_DEVICE", "bogus")
    assert cli_exit(proofs.load("rope_matrix"), []) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: PROOFS_DEVICE: unknown device 'bogus' (try 'cpu' or 'cuda')"]


@pytest.mark.slow
def test_all_json_prints_the_same_record_as_each_exercise(quick, capsys):
    """`proofs all --json` and `python -m proofs.<name> --json` print one record, built by one function."""
    assert main(["all", "--device", "cpu", "--json"]) == 0
    out = capsys.readouterr()
    records = json.loads(out.out)  # stdout holds only the JSON; the progress lines went to stderr
    assert "2/2 passed" in out.err and [r["exercise"] for r in records] == list(QUICK)
    mod = proofs.load("13.30")
    assert cli_exit(mod, ["--json", "--device", "cpu"]) == 0
    alone = json.loads(capsys.readouterr().out)
    together = records[0]
    assert together.pop("name") == "mha_params" and together.pop("seconds") > 0
    assert together == alone


def test_latex_runs_the_check_only_when_asked(capsys, monkeypatch):
    mod = proofs.load("13.30")
    monkeypatch.setattr(mod, "check", lambda **kw: pytest.fail("--latex ran the check"))
    assert mod.main(["--latex"]) == 0
    assert capsys.readouterr().out.startswith("\\documentclass")
    failing = CheckResult("forced", "cpu", 1, 0, claims=[Bound.of("one equals two", 1.0, 2.0, 0.0)])
    monkeypatch.setattr(mod, "check", lambda **kw: failing)
    assert mod.main(["--latex", "--check"]) == 1  # the check ran; its verdict sets the exit status
    assert capsys.readouterr().out.startswith("\\documentclass")
    for argv, flag in ((["--check"], "--check"), (["--latex", "--samples", "9"], "--samples")):
        assert cli_exit(mod, argv) == 2
        assert capsys.readouterr().err.startswith(f"error: {flag}:")


@pytest.mark.parametrize("first", ["13.3", "dot_product_variance"])
def test_an_exercise_runs_by_number_or_name(first, capsys):
    assert main([first, "--no-check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exercise"] == "13.3"
    assert main([first, "--max-dk", "3"]) == 2  # the module's own flags and rules
    assert "--max-dk" in capsys.readouterr().err
    assert main(["13.99"]) == 2
    assert "unknown '13.99'; run 'python -m proofs' for the list" in capsys.readouterr().err

"""Small helpers shared by the test files (importable because pytest puts tests/ on sys.path)."""


def cli_exit(mod, argv) -> int:
    """The exit status of ``mod.main(argv)``, whether it returns it or argparse raises SystemExit."""
    try:
        return mod.main(argv)
    except SystemExit as e:  # argparse's own errors (a non-integer, say) exit this way
        return e.code


QUICK = {"13.30": "mha_params", "13.31": "prenorm_postnorm"}  # two fast exercises for `all` and the report


def require_corpus() -> None:
    """Skip, saying why, when tiny Shakespeare is neither named by $TINY_SHAKESPEARE nor cached. When the
    variable names a file that is missing, the test runs and fails: CI sets it, so a wrong path shows."""
    import os

    import pytest

    from models.data.chars import ENV_VAR, cache_path

    if not os.environ.get(ENV_VAR) and not cache_path().is_file():
        pytest.skip("tiny Shakespeare not found: set TINY_SHAKESPEARE (see the README's quick start)")

"""Small helpers shared by the test files (importable because pytest puts tests/ on sys.path)."""


def cli_exit(mod, argv) -> int:
    """The exit status of ``mod.main(argv)``, whether it returns it or argparse raises SystemExit."""
    try:
        return mod.main(argv)
    except SystemExit as e:  # argparse's own errors (a non-integer, say) exit this way
        return e.code


QUICK = {"13.30": "mha_params", "13.31": "prenorm_postnorm"}  # two fast exercises for `all` and the report

"""The machinery every exercise shares, apart from the exercises themselves.

An exercise module in ``proofs/`` declares ``NUMBER``, ``CLAIM``, ``DEFAULT_SAMPLES`` and its
``OPTIONS`` (:mod:`proofs.kit.options`), and defines ``derivation() -> Derivation``,
``check(o) -> CheckResult`` decorated with :func:`~proofs.kit.options.with_options`, optionally
``validate(o)`` (cross-option rules; always run), ``figure(res) -> Figure`` (draws the check's
result, :mod:`proofs.kit.plotting`) and ``answer(o) -> list[str]`` (the numbers asked for, printed
with ``--no-check``), and sets ``main = main_for(__name__)`` (:func:`proofs.kit.cli.main_for`), the
shared command line that ``python -m proofs.<name>`` runs.

- :mod:`~proofs.kit.options`: options declared once; the settings every path validates.
- :mod:`~proofs.kit.cli`: the shared command line.
- :mod:`~proofs.kit.record`: the one result record (``--json``, ``proofs all``, the report).
- :mod:`~proofs.kit.runner`: run one exercise, recording failures.
- :mod:`~proofs.kit.report`: the report folder.
- :mod:`~proofs.kit.plotting`: figure set-up and saving.
"""

"""The examples in the docstrings run: every module of derive/, numeric/, models/ and proofs/ is
imported and its doctests are executed (pytest itself collects only tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("derive", "numeric", "models", "proofs")


def _modules() -> list[str]:
    out = []
    for pkg in PACKAGES:
        root = importlib.import_module(pkg)
        out.append(pkg)
        out += [m.name for m in pkgutil.walk_packages(root.__path__, pkg + ".") if not m.name.endswith("__main__")]
    return sorted(out)


MODULES = _modules()


def test_every_package_is_walked():
    assert {"derive.engine", "numeric.stats", "models.utils.timing", "proofs.kit.options"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"

"""Shared test settings: GPU tests skip cleanly without CUDA; hypothesis is derandomised in CI."""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def quick(monkeypatch):
    """A registry of two fast exercises (helpers.QUICK) for `python -m proofs all` and the report."""
    import sys

    from helpers import QUICK

    import proofs
    import proofs.__main__  # noqa: F401
    import proofs.kit.report  # noqa: F401

    for mod in ("proofs", "proofs.__main__", "proofs.kit.report"):
        monkeypatch.setattr(sys.modules[mod], "REGISTRY", dict(QUICK))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

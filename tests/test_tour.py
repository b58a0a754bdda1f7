"""docs/tour.ipynb runs top to bottom without an error (executed in a temporary folder, never in the repo)."""

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = Path(__file__).resolve().parents[1] / "docs" / "tour.ipynb"


def test_tour_is_stored_without_outputs():
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "store the tour clean (no outputs)"


@pytest.mark.slow
def test_tour_runs(tmp_path, monkeypatch):
    # kernel "python3" is ipykernel's own spec (jupyter_client finds it in sys.prefix, or falls back to
    # ipykernel's built-in one), and jupyter_client starts it with sys.executable: this interpreter
    copy = tmp_path / "tour.ipynb"
    shutil.copy(TOUR, copy)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PROOFS_DEVICE", "cpu")
    monkeypatch.setenv("PYTHONPATH", str(TOUR.parents[1]))  # the project, whether installed or not
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, startup_timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.get("data", {}) for o in outputs if o.output_type in ("execute_result", "display_data")]
    assert any("text/latex" in d for d in shown), "a derivation shows as LaTeX"
    assert any("text/html" in d and "PASS" in d["text/html"] for d in shown), "a check shows as an HTML report"
    assert any("image/png" in d for d in shown), "a figure shows inline"

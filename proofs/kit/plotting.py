"""The plotting set-up every exercise's figure shares: a headless backend, a figure with axes,
and a save that writes the file whole (signed, so that a later run may replace it).

An exercise's ``figure(res)`` draws the :class:`~numeric.check.CheckResult` its check returned
(``res.settings`` holds the options it ran with) and returns the matplotlib Figure; the caller
saves it with :func:`save`. Nothing is recomputed for the figure that the check already measured.
"""

from __future__ import annotations

from pathlib import Path


def subplots(ncols: int = 1, width: float = 6.4, height: float = 4.2, **kwargs):
    """A new figure with ``ncols`` axes side by side, ``width`` x ``height`` inches in all, on the
    Agg backend (no display needed). Returns ``(fig, ax)`` or ``(fig, axes)`` as matplotlib does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), **kwargs)


def title(res, what: str) -> str:
    """A figure title naming the exercise's check, what is drawn, the samples and the device."""
    drawn = "$N = " + f"{res.samples:,}".replace(",", "{,}") + "$, " if res.samples is not None else ""
    return f"{what} ({drawn}{res.device})"


def errors_against_tolerances(res, label_keys: tuple[str, ...], error_key: str, tol_key: str, what: str):
    """A figure of the check's measured errors beside the tolerances they must stay under, one pair
    of bars per row of ``res.table`` (labelled by ``label_keys``), on a log axis."""
    import textwrap

    import numpy as np

    rows = res.table
    fig, ax = subplots(width=max(6.4, 1.5 * len(rows)), height=4.6)
    x = np.arange(len(rows))
    floor = 1e-18  # an exact zero drawn at the bottom of the log axis
    ax.bar(x - 0.2, [max(r[error_key], floor) for r in rows], 0.4, label=f"measured {error_key}", color="C0")
    ax.bar(x + 0.2, [r[tol_key] for r in rows], 0.4, label=f"{tol_key} (stated in advance)", color="C7")
    ax.set_xticks(x, ["\n".join(textwrap.fill(str(r[k]), 18) for k in label_keys) for r in rows], fontsize=7)
    ax.set(yscale="log", ylabel="absolute difference", title=title(res, what))
    ax.legend(fontsize=8)
    return fig


def save(fig, path) -> Path:
    """Write ``fig`` to ``path`` (.png, .pdf or .svg) whole, never over a file that is not a figure
    of ours (:func:`models.utils.files.save_figure`), and close it. Returns the path written."""
    from models.utils.files import save_figure

    return save_figure(fig, path)


def draw(mod, res, path) -> Path:
    """Draw exercise ``mod``'s figure of the check result ``res`` and save it to ``path``."""
    return save(mod.figure(res), path)

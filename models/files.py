"""Writing outputs whole or not at all, and never over what the user owns.

- :func:`write_atomic` writes a file beside its target and renames it into place.
- :func:`replace_dir` builds a folder beside its target and swaps it in. It replaces only a folder
  this toolkit wrote (recognised by the marker file :data:`MARKER` inside it) or an empty one; a
  user's folder or file at that name is refused with a ValueError, and nothing is deleted.
- :func:`check_output_file` and :func:`check_output_dir` find an unwritable target before any work
  (they probe the folder by creating a file, which is also right for root, whom mode bits do not stop).

Temporary names are ``.NAME.<random>`` beside the target, with the writing process's id in their
marker; a later run removes stale ones (whose process is gone) and only those.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = ".written-by-transformer-proofs"  # inside every folder replace_dir writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _parent(path: Path, what: str) -> Path:
    parent = path.parent
    if not parent.exists():
        raise ValueError(f"{what}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what}: {str(parent)!r} is not a folder")
    return parent


def _probe(folder: Path, what: str) -> None:
    """Create and remove a temporary file in ``folder``: the only test of writability that holds for root."""
    try:
        fd, name = tempfile.mkstemp(prefix=".probe.", dir=folder)
    except OSError as e:
        raise ValueError(f"{what}: cannot write in {str(folder)!r} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(name)


def check_output_file(path: str | os.PathLike, what: str = "path") -> Path:
    """Raise ValueError (naming ``what``) unless a file can be written at ``path``: a non-empty
    name whose folder exists and is writable, and that is not itself a folder."""
    if str(path).strip() == "":
        raise ValueError(f"{what}: empty path")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what}: {str(path)!r} is a folder; give a file name")
    _probe(_parent(path, what), what)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "out") -> Path:
    """Raise ValueError (naming ``what``) unless a folder can be written at ``path``: its parent
    exists (or can be made) and is writable, and ``path`` is not a regular file."""
    if str(path).strip() == "":
        raise ValueError(f"{what}: empty path")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}: {str(path)!r} is a file, not a folder")
    existing = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"{what}: {str(existing)!r} is not a folder")
    _probe(existing, what)
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None], what: str = "path") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and move it into place only if
    ``write`` returns normally; on error nothing is left at ``path``'s name. The file gets the
    usual permissions (0666 less the umask). Raises ValueError (naming ``what``) when ``path``
    cannot be written."""
    path = check_output_file(path, what)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str, what: str = "path") -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), what)


def save_figure(fig, path: str | os.PathLike, what: str = "plot") -> Path:
    """Save a matplotlib figure atomically (format from the suffix: png, pdf, svg, ...) and close it."""
    import matplotlib.pyplot as plt

    try:
        path = check_output_file(path, what)
        fmt = path.suffix.lstrip(".").lower() or "png"
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ValueError(f"{what}: unknown figure format {fmt!r} in {str(path)!r}; use .png, .pdf or .svg")
        return write_atomic(path, lambda p: fig.savefig(p, format=fmt, dpi=120, bbox_inches="tight"), what)
    finally:
        plt.close(fig)


def ours(folder: Path) -> bool:
    """True when ``folder`` holds the marker of a folder this toolkit wrote."""
    return (folder / MARKER).is_file()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove ``.NAME.*`` folders beside ``target`` that this toolkit made (marker inside) and
    whose writing process has gone: what a killed run left behind. Nothing else is touched."""
    for p in target.parent.glob(f".{target.name}.*"):
        marker = p / MARKER
        if not (p.is_dir() and not p.is_symlink() and marker.is_file()):
            continue
        try:
            pid = int(marker.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            continue
        if not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def check_replaceable(target: str | os.PathLike, what: str = "out") -> Path:
    """The resolved ``target`` if :func:`replace_dir` may write it (absent, empty, or written by this
    toolkit, in a writable place); else a ValueError naming ``what``. Call it before long work."""
    target = Path(check_output_dir(target, what)).resolve()
    if target.is_dir() and any(target.iterdir()) and not ours(target):
        raise ValueError(
            f"{what}: {str(target)!r} is a folder this toolkit did not write and it is not empty; "
            "give a new or empty folder"
        )
    return target


def replace_dir(target: str | os.PathLike, build: Callable[[Path], None], what: str = "out") -> Path:
    """Build a folder in a temporary sibling and put it at ``target`` only when ``build`` succeeds.

    ``target`` may be absent, an empty folder, or a folder an earlier run of this toolkit wrote
    (it then holds :data:`MARKER`); anything else (a user's folder with files in it, a file) is
    refused with a ValueError naming ``what``, before ``build`` runs. On failure any earlier
    output stays as it was. Returns the resolved target."""
    target = check_replaceable(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        (tmp / MARKER).write_text(f"{os.getpid()}\nwritten by transformer-proofs; safe to replace\n")
        build(tmp)
        old = None
        if target.is_dir() and any(target.iterdir()):  # ours (checked above): move aside, then remove
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            (old / MARKER).write_text(f"{os.getpid()}\n")
            os.rename(target, old / "previous")
        elif target.is_dir():
            target.rmdir()  # empty: nothing is lost
        try:
            os.rename(tmp, target)
        except OSError:
            if old is not None:  # put the earlier output back before reporting the failure
                os.rename(old / "previous", target)
            raise
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target

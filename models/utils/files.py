"""Writing outputs whole or not at all, and never over what the user owns.

- :func:`write_atomic` writes a file beside its target and renames it into place.
- :func:`replace_dir` builds a folder beside its target and swaps it in. It replaces only a folder
  this toolkit wrote (recognised by the marker file :data:`MARKER` inside it) or an empty one; a
  user's folder or file at that name is refused with a ValueError, and nothing is deleted.
- :func:`check_output_file` and :func:`check_output_dir` find an unwritable target before any work
  (they probe the folder by creating a file, which is also right for root, whom mode bits do not stop).

Temporary names are ``.NAME.tmp-<random>`` beside the target, with the writing process's id in their
own marker; a later run removes stale ones (whose process is gone) and only those.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = ".written-by-transformer-proofs"  # inside every folder replace_dir writes: pid, note, then every path
TEMP_MARKER = ".transformer-proofs-in-progress"  # inside a folder while it is being built (pid)
SIGNATURE = "transformer-proofs"  # in the metadata of every figure save_figure writes
FIGURE_METADATA = {"png": {"Software": SIGNATURE}, "pdf": {"Creator": SIGNATURE}, "svg": {"Creator": SIGNATURE}}


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


def written_by_us(path: Path) -> bool:
    """True when the regular file ``path`` carries this toolkit's signature (:data:`SIGNATURE`, which
    :func:`save_figure` writes into a figure's metadata) in its first or last 64 KiB."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            f.seek(max(0, path.stat().st_size - (1 << 16)))
            tail = f.read()
    except OSError:
        return False
    return SIGNATURE.encode() in head or SIGNATURE.encode() in tail


def check_output_file(path: str | os.PathLike, what: str = "path", mine: bool = False) -> Path:
    """Raise ValueError (naming ``what``) unless a file can be written at ``path``: a non-empty
    name, not ending in a slash, whose folder exists and is writable, and that is not a folder, a
    link, a device or a pipe. With ``mine``, an existing file must also be one this toolkit wrote
    (:func:`written_by_us`): what a user names as an output never replaces a file of theirs."""
    if str(path).strip() == "":
        raise ValueError(f"{what}: empty path")
    if str(path).endswith(os.sep):
        raise ValueError(f"{what}: {str(path)!r} names a folder; give a file name")
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file"
        raise ValueError(f"{what}: {str(path)!r} is {kind}; give a new file name")
    if mine and path.exists() and not written_by_us(path):
        raise ValueError(f"{what}: {str(path)!r} exists and this toolkit did not write it; give a new file name")
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
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (:func:`write_atomic`); returns the path."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), what)


def figure_format(path: str | os.PathLike, what: str = "plot") -> str:
    """The format of a figure file from its suffix: png, pdf or svg (ValueError naming ``what`` otherwise)."""
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in FIGURE_METADATA:
        raise ValueError(f"{what}: {str(path)!r} must end in .png, .pdf or .svg, the formats a figure is written in")
    return fmt


def save_figure(fig, path: str | os.PathLike, what: str = "plot") -> Path:
    """Save a matplotlib figure atomically (png, pdf or svg, from the suffix), signed in its
    metadata so that a later run may replace it, and close it."""
    import matplotlib.pyplot as plt

    try:
        path = check_output_file(path, what, mine=True)
        fmt = figure_format(path, what)
        meta = FIGURE_METADATA[fmt]
        save = lambda p: fig.savefig(p, format=fmt, dpi=120, bbox_inches="tight", metadata=meta)  # noqa: E731
        return write_atomic(path, save, what)
    finally:
        plt.close(fig)


def _listing(folder: Path) -> list[str]:
    """Every path inside ``folder`` (files and folders, relative, sorted), the marker left out."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name not in (MARKER, TEMP_MARKER))


def ours(folder: Path) -> bool:
    """True when ``folder`` holds this toolkit's marker and nothing besides what the marker lists:
    a file a user added to an earlier report makes it theirs as well, and it is not replaced."""
    marker = folder / MARKER
    if not marker.is_file() or marker.is_symlink():
        return False
    try:
        listed = marker.read_text(encoding="utf-8").splitlines()[2:]
    except (OSError, UnicodeDecodeError):
        return False
    return _listing(folder) == sorted(listed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove ``.NAME.tmp-*`` folders beside ``target`` that this toolkit made (they hold
    :data:`TEMP_MARKER`, never found in a finished output or a copy of one) and whose writing
    process has gone: what a killed run left behind. Nothing else is touched."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        marker = p / TEMP_MARKER
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
    toolkit and untouched since, in a writable place); else a ValueError naming ``what``. Call it
    before long work; :func:`replace_dir` calls it again just before the swap."""
    target = Path(check_output_dir(target, what)).resolve()
    if target.is_dir() and any(target.iterdir()) and not ours(target):
        raise ValueError(f"{what}: {str(target)!r} holds files this toolkit did not write; give a new or empty folder")
    return target


def _temp_dir(target: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    (tmp / TEMP_MARKER).write_text(f"{os.getpid()}\n")
    return tmp


def replace_dir(target: str | os.PathLike, build: Callable[[Path], None], what: str = "out") -> Path:
    """Build a folder in a temporary sibling and put it at ``target`` only when ``build`` succeeds.

    ``target`` may be absent, an empty folder, or a folder an earlier run of this toolkit wrote and
    nobody changed since (its :data:`MARKER` lists every path in it); anything else (a user's folder,
    a file, a report someone added a file to) is refused with a ValueError naming ``what``, before
    ``build`` runs and again before the swap, so a file added while it ran is not lost either. On
    failure any earlier output stays as it was. Returns the resolved target."""
    target = check_replaceable(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = _temp_dir(target)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        build(tmp)
        listing = "\n".join(_listing(tmp))
        (tmp / MARKER).write_text(f"{os.getpid()}\nwritten by transformer-proofs; safe to replace\n{listing}\n")
        (tmp / TEMP_MARKER).unlink()
        check_replaceable(target, what)  # again: the user may have put something there meanwhile
        old = None
        if target.is_dir() and any(target.iterdir()):  # ours, unchanged: move aside, then remove
            old = _temp_dir(target)
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


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path`` (a saved run's ``results.json``), or None when the file is absent or
    unreadable (an installed copy without ``docs/``): saved runs are optional extras, never required."""
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

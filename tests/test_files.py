"""Outputs are written whole or not at all, and nothing the user owns is deleted, moved or overwritten."""

import os
import stat

import pytest
from helpers import cli_exit

from models.utils.files import MARKER, TEMP_MARKER, check_replaceable, replace_dir, write_atomic


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build(text="new"):
    return lambda tmp: (tmp / "index.md").write_text(text)


def test_report_into_a_users_folder_keeps_every_file(tmp_path, capsys, quick):
    import proofs.__main__ as cli

    user = tmp_path / "thesis"
    (user / "figs").mkdir(parents=True)
    (user / "thesis.tex").write_text("\\chapter{mine}")
    (user / "figs" / "a.png").write_bytes(b"\x89PNG mine")
    before = _tree(user)
    assert cli_exit(cli, ["report", "--out", str(user), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out:") and "did not write" in err[0], err
    assert _tree(user) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # nothing moved aside or left behind


def test_report_onto_a_users_file_is_refused_and_the_file_stays(tmp_path, capsys, quick):
    import proofs.__main__ as cli

    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert cli_exit(cli, ["report", "--out", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "is a file" in err[0], err
    assert f.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_a_report_replaces_only_its_own_earlier_report(tmp_path, quick):
    from proofs.kit.report import write_report

    out, _ = write_report(tmp_path / "rep", device="cpu")
    assert (out / MARKER).is_file() and (out / "mha_params.md").is_file()
    before = _tree(out)
    out2, _ = write_report(tmp_path / "rep", device="cpu")  # ours and unchanged: replaced whole
    assert out2 == out and set(_tree(out)) == set(before)
    (out / "my-notes.md").write_text("mine")  # a user's file inside an earlier report makes it theirs too
    with pytest.raises(ValueError, match="did not write"):
        write_report(tmp_path / "rep", device="cpu")
    assert (out / "my-notes.md").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_report(empty, device="cpu")[0] / "index.md").is_file()  # an empty folder is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "rep"]


def test_a_failed_build_keeps_the_earlier_output(tmp_path):
    target = replace_dir(tmp_path / "out", _build("first"))

    def boom(tmp):
        (tmp / "index.md").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        replace_dir(target, boom)
    assert (target / "index.md").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_of_ours_are_removed_and_nothing_else(tmp_path):
    dead = tmp_path / ".out.tmp-deadbeef"  # what a killed run leaves: our marker with a pid that is gone
    dead.mkdir()
    (dead / TEMP_MARKER).write_text("999999999\n")
    live = tmp_path / ".out.tmp-alive123"  # a run still writing
    live.mkdir()
    (live / TEMP_MARKER).write_text(f"{os.getpid()}\n")
    users = tmp_path / ".out.backup"  # the user's own dot-folder of the same shape, no marker
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    copy = tmp_path / ".out.keep"  # a user's copy of an earlier output: holds our finished marker
    replace_dir(copy, _build("kept"))
    replace_dir(tmp_path / "out", _build())
    assert not dead.exists() and live.is_dir() and (users / "keep.txt").read_text() == "mine"
    assert (copy / "index.md").read_text() == "kept"


def test_a_file_put_into_the_target_while_it_builds_is_not_lost(tmp_path):
    target = tmp_path / "out"

    def build(tmp):
        target.mkdir(exist_ok=True)
        (target / "thesis.txt").write_text("draft")  # the user, meanwhile
        (tmp / "index.md").write_text("new")

    with pytest.raises(ValueError, match="did not write"):
        replace_dir(target, build)
    assert (target / "thesis.txt").read_text() == "draft" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outputs_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        d = replace_dir(tmp_path / "out", _build())
        f = write_atomic(tmp_path / "f.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755 and stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((d / "index.md").stat().st_mode) == 0o644


@pytest.mark.parametrize("where", ["afile/x", "/proc/no-such/x"])
def test_unwritable_places_are_refused_before_any_work(tmp_path, where):
    (tmp_path / "afile").write_text("mine")
    target = where if where.startswith("/") else tmp_path / where
    called = []
    with pytest.raises(ValueError, match=r"^out: "):
        replace_dir(target, lambda tmp: called.append(tmp))
    assert not called and (tmp_path / "afile").read_text() == "mine"


def test_a_missing_folder_under_a_writable_one_is_made(tmp_path):
    assert (replace_dir(tmp_path / "missing" / "sub", _build()) / "index.md").is_file()


def test_write_atomic_leaves_nothing_on_failure(tmp_path):
    def boom(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(tmp_path / "f.txt", boom)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="is a folder"):
        write_atomic(tmp_path, lambda p: None)


def test_experiments_refuse_a_users_folder_before_training(tmp_path, capsys):
    import models.training.experiments as ex

    user = tmp_path / "mine"
    (user / "positional").mkdir(parents=True)
    (user / "positional" / "data.csv").write_text("1,2")
    rc = cli_exit(ex, ["positional", "--out", str(user), "--steps", "20", "--eval-interval", "10", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --out:") and "[positional]" not in err[0]
    assert (user / "positional" / "data.csv").read_text() == "1,2"
    with pytest.raises(ValueError):
        check_replaceable(user / "positional")


@pytest.mark.slow
def test_plot_never_replaces_what_the_user_owns(tmp_path, capsys, monkeypatch):
    import proofs.attention_by_hand as mod

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.png").write_text("my data")
    (tmp_path / "target.txt").write_text("linked")
    (tmp_path / "link.png").symlink_to(tmp_path / "target.txt")
    os.mkfifo(tmp_path / "pipe.png")
    for bad, why in [
        ("mine.png", "did not write"),
        ("link.png", "not a regular file"),
        ("pipe.png", "not a regular file"),
        ("newdir/", "names a folder"),
        ("fig.xyz", "must end in .png, .pdf or .svg"),
    ]:
        assert cli_exit(mod, ["--plot", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--plot" in err[0] and why in err[0], err
    assert (tmp_path / "mine.png").read_text() == "my data" and (tmp_path / "target.txt").read_text() == "linked"
    assert stat.S_ISFIFO((tmp_path / "pipe.png").lstat().st_mode) and (tmp_path / "link.png").is_symlink()
    for fmt in ("png", "pdf", "svg"):  # control: a figure of ours is signed, and so may be replaced
        assert cli_exit(mod, ["--plot", f"fig.{fmt}"]) == 0
        first = (tmp_path / f"fig.{fmt}").stat().st_mtime_ns
        assert cli_exit(mod, ["--plot", f"fig.{fmt}"]) == 0
        assert (tmp_path / f"fig.{fmt}").stat().st_mtime_ns >= first
    capsys.readouterr()

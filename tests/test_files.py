"""Output locations are checked before any compute; files are written whole or not at all."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pddlite import PDDLiteError
from pddlite.cli import main
from pddlite.files import check_output_file, check_output_folder, write_text_atomically


def test_an_output_file_must_be_a_writable_file_path(tmp_path):
    assert check_output_file(tmp_path / "new" / "deeper" / "row.json") == tmp_path / "new" / "deeper" / "row.json"
    assert (tmp_path / "new" / "deeper").is_dir()
    with pytest.raises(PDDLiteError, match="is a folder: give a file path inside it"):
        check_output_file(tmp_path)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(PDDLiteError, match="plain is a file, not a folder"):
        check_output_file(tmp_path / "plain" / "row.json")
    with pytest.raises(PDDLiteError, match="--out is empty"):
        check_output_file("")


def test_an_output_folder_must_be_a_writable_folder(tmp_path):
    assert check_output_folder(tmp_path / "results").is_dir()
    (tmp_path / "plain").write_text("x")
    with pytest.raises(PDDLiteError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "plain")
    with pytest.raises(PDDLiteError, match="plain is a file, not a folder"):
        check_output_folder(tmp_path / "plain" / "results")
    with pytest.raises(PDDLiteError, match="--out is empty"):
        check_output_folder(" ")


def test_a_read_only_file_system_is_named_in_one_line(tmp_path, monkeypatch):
    import pddlite.files

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pddlite.files, "open", refuse, raising=False)
    with pytest.raises(PDDLiteError, match="cannot be written \\(Read-only file system\\): choose a writable"):
        check_output_folder(tmp_path / "results")
    with pytest.raises(PDDLiteError, match="--checkpoint .*cannot be written"):
        check_output_file(tmp_path / "run.pt", "--checkpoint")


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text_atomically(tmp_path / "row.json", "old\n")

    class Boom(Exception):
        pass

    from pddlite.files import write_atomically

    def fail(fh):
        fh.write(b"half")
        raise Boom

    with pytest.raises(Boom):
        write_atomically(target, fail)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["row.json"]


def _fail_if_called(*args, **kwargs):
    raise AssertionError("the output location must be checked before any training")


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pddlite: error: ") and "\n" not in err
    return err


def test_the_commands_check_where_they_write_before_they_train(tmp_path, capsys, monkeypatch):
    import pddlite.cli
    import pddlite.grid

    # where the commands look run_task up: a check that comes after training would call it
    monkeypatch.setattr(pddlite.cli, "run_task", _fail_if_called)
    monkeypatch.setattr(pddlite.grid, "run_task", _fail_if_called)
    run = ["run", "--profile", "smoke", "--device", "cpu", "--no-progress"]
    assert "is a folder" in _one_line_error(capsys, run + ["--out", str(tmp_path)])
    assert "--out is empty" in _one_line_error(capsys, run + ["--out", ""])
    (tmp_path / "plain").write_text("x")
    assert "is a file, not a folder" in _one_line_error(capsys, run + ["--checkpoint", str(tmp_path / "plain" / "a.pt")])
    grid = ["replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--reps", "1", "--profile", "smoke",
            "--device", "cpu", "--no-progress"]
    assert "is a file, not a folder" in _one_line_error(capsys, grid + ["--out", str(tmp_path / "plain")])
    assert "is a file, not a results folder" in _one_line_error(capsys, ["report", str(tmp_path / "plain")])


def test_a_file_written_where_no_file_can_be_is_refused_in_one_line(tmp_path, monkeypatch):
    import pddlite.files

    (tmp_path / "plain").write_text("x")
    # what model.save(path) and a checkpoint between epochs meet without the command line's checks
    for where, message in ((tmp_path, "is a folder: give a file path inside it"),
                           (tmp_path / "plain" / "model.pt", "plain is a file, not a folder"),
                           ("", "names no file"), (Path(""), "names no file")):
        with pytest.raises(PDDLiteError, match=message):
            write_text_atomically(where, "row\n")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pddlite.files, "open", refuse, raising=False)
    with pytest.raises(PDDLiteError, match=r"row.json \(Read-only file system\): choose a writable location"):
        write_text_atomically(tmp_path / "row.json", "row\n")
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]

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


# --------------------------------------------------------------------------- faults mid-write and full disks


def test_a_failing_clean_up_inside_the_error_handler_is_still_one_line(tmp_path, monkeypatch):
    import pddlite.files
    from pddlite.files import write_atomically

    def no_space(fh):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    def unlink_refused(self, missing_ok=False):  # the folder turned read-only mid-run
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", unlink_refused)
    with pytest.raises(PDDLiteError, match=r"row.json \(No space left on device\)"):
        write_atomically(tmp_path / "row.json", no_space)
    assert not (tmp_path / "row.json").exists()


def test_a_short_write_by_torch_save_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import io

    import torch

    from pddlite.files import write_atomically

    target = write_text_atomically(tmp_path / "model.pt", "old\n")
    real_write = io.BufferedWriter.write

    class ShortWrites(io.BufferedWriter):  # a disk that fills up: writes stop short, then write nothing
        def write(self, data):
            return 0

    real_open = open
    monkeypatch.setattr("pddlite.files.open", lambda path, mode="r": ShortWrites(io.FileIO(path, mode)),
                        raising=False)
    with pytest.raises(PDDLiteError, match=r"cannot write .*model.pt \(No space left on device"):
        write_atomically(target, lambda fh: torch.save({"w": torch.zeros(1000)}, fh))
    assert real_open(target).read() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert real_write is io.BufferedWriter.write


def test_the_early_check_fails_on_a_full_disk_where_the_write_would(tmp_path, monkeypatch):
    import io

    import pddlite.files

    class FullDisk(io.FileIO):  # an empty file fits on a full disk; a byte does not
        def write(self, data):
            if len(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            return 0

    monkeypatch.setattr(pddlite.files, "open", lambda path, mode="r": FullDisk(path, mode.replace("b", "")),
                        raising=False)
    with pytest.raises(PDDLiteError, match=r"--out .*row.json cannot be written \(No space left on device\)"):
        check_output_file(tmp_path / "row.json")
    with pytest.raises(PDDLiteError, match=r"--out .* cannot be written \(No space left on device\)"):
        check_output_folder(tmp_path / "results")
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no test file left behind


def test_a_long_legal_name_is_written_and_a_name_too_long_is_refused_before_any_work(tmp_path):
    from pddlite.files import claim, claim_path, release

    legal = tmp_path / ("r" * 245 + ".json")  # 250 bytes: its temporary name must not exceed 255
    assert check_output_file(legal) == legal
    write_text_atomically(legal, "row\n")
    assert legal.read_text() == "row\n" and [p.name for p in tmp_path.iterdir()] == [legal.name]
    assert claim(legal) and len(claim_path(legal).name) <= 255
    release(legal)
    with pytest.raises(PDDLiteError, match=r"--checkpoint .*the file name is 300 bytes, longer than the 255"):
        check_output_file(tmp_path / ("c" * 297 + ".pt"), "--checkpoint")


def test_a_claim_that_cannot_be_written_is_one_line_and_leaves_no_empty_claim(tmp_path, monkeypatch):
    import os

    import pddlite.files
    from pddlite.files import claim, claim_path

    target = tmp_path / "res" / "row.json"

    def full_fdopen(fd, *args, **kwargs):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pddlite.files.os, "fdopen", full_fdopen)
    with pytest.raises(PDDLiteError, match=r"cannot write the claim .*row.json.claim \(No space left on device\)"):
        claim(target)
    assert not claim_path(target).exists()
    monkeypatch.undo()
    (tmp_path / "plain").write_text("x")
    with pytest.raises(PDDLiteError, match=r"claim .*plain"):
        claim(tmp_path / "plain" / "res" / "row.json")


def test_two_outputs_that_name_one_file_are_refused_before_training(tmp_path, capsys, monkeypatch):
    import pddlite.cli

    monkeypatch.setattr(pddlite.cli, "run_task", _fail_if_called)
    same = str(tmp_path / "x")
    err = _one_line_error(capsys, ["run", "--profile", "smoke", "--device", "cpu", "--no-progress",
                                   "--checkpoint", same, "--out", str(tmp_path / "." / "x")])
    assert "--out and --checkpoint both name" in err

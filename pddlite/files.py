"""Where pddlite writes: output locations checked before any compute, files written atomically.

A run can take minutes or hours; an output path that cannot be written must fail at the start,
in one line, not after the work is done. Workers that share a results folder claim each run
before they start it (:func:`claim`), so that they split the work instead of repeating it. Every file pddlite writes (result rows, checkpoints,
``--out`` files) goes through :func:`write_atomically`: a temporary file in the same folder,
flushed to disk, then renamed over the target, so a file is either complete or absent.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, IO

from .errors import PDDLiteError


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove that a file can be written in it; one line if not."""
    if str(path).strip() == "":
        raise PDDLiteError(f"{flag} is empty: give a folder to write to")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise PDDLiteError(f"{flag} {folder} is a file, not a folder: give a folder path")
    _probe(folder, flag)
    return folder


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Prove that ``path`` can be written (its folder created if needed); one line if not."""
    if str(path).strip() == "":
        raise PDDLiteError(f"{flag} is empty: give a file name to write to")
    target = Path(path)
    if target.is_dir():
        raise PDDLiteError(f"{flag} {target} is a folder: give a file path inside it, e.g. {target / 'result.json'}")
    if target.exists() and not os.access(target, os.W_OK):
        raise PDDLiteError(f"{flag} {target} exists and cannot be written: choose another path")
    _probe(target.parent, flag, target)
    return target


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing ancestor of ``folder`` (itself included) when it is a file, not a folder."""
    for parent in [folder, *folder.parents]:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _probe(folder: Path, flag: str, target: Path | None = None) -> None:
    shown = target if target is not None else folder
    blocked = _file_in_the_way(folder)
    if blocked is not None:
        raise PDDLiteError(f"{flag} {shown}: {blocked} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".pddlite-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PDDLiteError(f"{flag} {shown} cannot be written ({err.strerror or err}): choose a writable location") from err


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file, fsync, then rename over ``path``.

    A path that cannot hold a file (empty, a folder, under a file) or a file system that refuses the
    write (read-only, full) is one line, not a traceback: a model's ``save(path)`` and a checkpoint
    written between epochs come here without the command line's checks before them.
    """
    target = Path(path)
    if str(path).strip() == "" or target.name in ("", ".", ".."):
        raise PDDLiteError(f"{str(path)!r} names no file (an empty path is the current folder): give a file path")
    if target.is_dir():
        raise PDDLiteError(f"{target} is a folder: give a file path inside it, e.g. {target / 'model.pt'}")
    blocked = _file_in_the_way(target.parent)
    if blocked is not None:
        raise PDDLiteError(f"cannot write {target}: {blocked} is a file, not a folder")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise PDDLiteError(f"cannot write {target} ({err.strerror or err}): choose a writable location") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomically` for a text file (UTF-8)."""
    return write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))


#: a claim by a process on another machine counts as abandoned after this long (same machine:
#: as soon as its process is gone)
CLAIM_STALE_AFTER_S = 24 * 3600


def claim_path(path: str | os.PathLike) -> Path:
    """The claim file of the work that will write ``path`` (hidden, next to it)."""
    target = Path(path)
    return target.with_name(f".{target.name}.claim")


def claim(path: str | os.PathLike) -> bool:
    """Claim the work that writes ``path``: True if this process now holds it, False if a live
    worker does. The claim is a file created atomically (``O_EXCL``); one left by a process that
    is gone (same machine) or older than :data:`CLAIM_STALE_AFTER_S` (another machine) is taken over."""
    lock = claim_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _abandoned(lock):
                return False
            _take_over(lock)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(mine)
        return True
    return False


def release(path: str | os.PathLike) -> None:
    """Give up the claim on ``path`` (after its file is written, or when the work failed)."""
    claim_path(path).unlink(missing_ok=True)


def _holder(lock: Path) -> dict | None:
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _abandoned(lock: Path) -> bool:
    holder = _holder(lock)
    if holder is None:  # being written this instant, or damaged: abandoned once a minute old
        try:
            return time.time() - lock.stat().st_mtime > 60
        except OSError:
            return True
    if holder.get("host") == socket.gethostname():
        pid = holder.get("pid")
        if pid == os.getpid():
            return True  # this process's own leftover
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, TypeError, ValueError, OverflowError):
            return not isinstance(pid, int)
        return False
    return time.time() - float(holder.get("since") or 0) > CLAIM_STALE_AFTER_S


def _take_over(lock: Path) -> None:
    """Remove an abandoned claim; if another worker replaced it meanwhile, put theirs back."""
    before = _holder(lock)
    aside = lock.with_name(lock.name + f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if _holder(aside) != before:  # a fresh claim arrived between the check and the rename
        try:
            os.link(aside, lock)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)

"""Where pddlite writes: output locations checked before any compute, files written atomically.

A run can take minutes or hours; an output path that cannot be written must fail at the start,
in one line, not after the work is done. Workers that share a results folder claim each run
before they start it (:func:`claim`), so that they split the work instead of repeating it. Every file pddlite writes (result rows, checkpoints,
``--out`` files) goes through :func:`write_atomically`: a temporary file in the same folder,
flushed to disk, then renamed over the target, so a file is either complete or absent. What a
run has finished is never lost to a failed write: :func:`write_or_keep` keeps it elsewhere and says where.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, IO

from .errors import PDDLiteError


def setting_from_environment(variable: str) -> str | None:
    """The value of environment variable ``variable``, or ``None`` when it is unset or empty (blank).

    One rule for every ``PDDLITE_*`` variable: ``export PDDLITE_RESULTS=`` means "not set", never
    "the current folder".
    """
    value = os.environ.get(variable)
    return value.strip() if value is not None and value.strip() else None


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
    """Prove that ``path`` can be written (its folder created if needed); one line if not.

    The check fails where the write would: a name longer than the file system allows, a folder that
    refuses a file, or a disk too full for a few kilobytes (an empty test file fits on a full disk).
    """
    if str(path).strip() == "":
        raise PDDLiteError(f"{flag} is empty: give a file name to write to")
    target = Path(path)
    _check_name_length(target, f"{flag} {target}")
    if target.is_dir():
        raise PDDLiteError(f"{flag} {target} is a folder: give a file path inside it, e.g. {target / 'result.json'}")
    if target.exists() and not target.is_file():
        raise PDDLiteError(f"{flag} {target} exists and is not a regular file: choose another path")
    if target.exists() and not os.access(target, os.W_OK):
        raise PDDLiteError(f"{flag} {target} exists and cannot be written: choose another path")
    _probe(target.parent, flag, target)
    return target


def check_distinct_outputs(outputs: dict[str, str | os.PathLike | None]) -> None:
    """One line when two outputs (``{"--out": path, "--checkpoint": path}``) name the same file:
    the second write would replace the first."""
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None or str(path).strip() == "":
            continue
        where = Path(path).expanduser().resolve()
        if where in seen:
            raise PDDLiteError(f"{seen[where]} and {flag} both name {path}: one would overwrite the other; "
                               "give them different paths")
        seen[where] = flag


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing ancestor of ``folder`` (itself included) when it is a file, not a folder."""
    for parent in [folder, *folder.parents]:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


#: what the early check writes (and removes): a full disk refuses it, as it would the real file
_PROBE_BYTES = 64 * 1024


def _name_limit(folder: Path) -> int:
    """The longest file name (in bytes) the file system under ``folder`` takes."""
    for parent in [folder, *folder.parents]:
        try:
            return int(os.pathconf(parent, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def _check_name_length(target: Path, shown: str) -> None:
    """One line when ``target``'s name is longer than its file system takes (checked before the path is
    touched: asking whether such a path is a folder is itself an error)."""
    length = len(os.fsencode(target.name))
    if length > 255 or length > _name_limit(target.parent):
        raise PDDLiteError(f"{shown}: the file name is {length} bytes, longer than the "
                           f"{min(255, _name_limit(target.parent))} this file system allows; choose a shorter name")


def _probe(folder: Path, flag: str, target: Path | None = None) -> None:
    shown = target if target is not None else folder
    blocked = _file_in_the_way(folder)
    if blocked is not None:
        raise PDDLiteError(f"{flag} {shown}: {blocked} is a file, not a folder")
    probe = folder / f".pddlite-write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"\0" * _PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise PDDLiteError(f"{flag} {shown} cannot be written ({err.strerror or err}): choose a writable location") from err
    finally:
        _discard(probe)


def _discard(path: Path) -> None:
    """Remove ``path`` if it is there; a file system that refuses (read-only, gone) leaves it."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def temporary_name(target: Path) -> Path:
    """The hidden temporary file a write of ``target`` goes through: next to it, and never a longer
    name than the file system allows (the target's name is shortened inside it)."""
    suffix = f".{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    stem = target.name
    while len(os.fsencode(f".{stem}{suffix}")) > 255 - 1:  # 255: the common limit on one name
        stem = stem[:-1]
    return target.with_name(f".{stem}{suffix}")


class _WholeWrites:
    """A file whose every ``write`` puts all its bytes down or raises: a short write (a full disk
    seen through a buffered file, a network mount) is an error, not a silently shortened file."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            n = self._fh.write(view[done:])
            if n is None:  # a non-blocking file with no room now: as good as full
                n = 0
            if n == 0:
                raise OSError(errno.ENOSPC, "No space left on device (a write stopped short)")
            done += n
        return done

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file, fsync, then rename over ``path``.

    A path that cannot hold a file (empty, a folder, under a file) or a file system that refuses the
    write (read-only, full, a short write) is one line, not a traceback: a model's ``save(path)`` and a
    checkpoint written between epochs come here without the command line's checks before them.
    """
    target = Path(path)
    if str(path).strip() == "" or target.name in ("", ".", ".."):
        raise PDDLiteError(f"{str(path)!r} names no file (an empty path is the current folder): give a file path")
    _check_name_length(target, f"cannot write {target}")
    if target.is_dir():
        raise PDDLiteError(f"{target} is a folder: give a file path inside it, e.g. {target / 'model.pt'}")
    blocked = _file_in_the_way(target.parent)
    if blocked is not None:
        raise PDDLiteError(f"cannot write {target}: {blocked} is a file, not a folder")
    tmp = temporary_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(_WholeWrites(fh))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        _discard(tmp)
        raise PDDLiteError(f"cannot write {target} ({err.strerror or err}): choose a writable location") from err
    except RuntimeError as err:  # torch.save's own writer reports a failed write so
        _discard(tmp)
        if "writ" not in str(err).lower():
            raise
        raise PDDLiteError(f"cannot write {target} ({_first_line(err)}): check the free space, or choose "
                           "another location") from err
    except BaseException:
        _discard(tmp)
        raise
    return target


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomically` for a text file (UTF-8)."""
    return write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))


def write_or_keep(path: str | os.PathLike, text: str, what: str = "the result") -> Path:
    """:func:`write_text_atomically`, and when that fails, ``text`` kept in the system's temporary
    folder (else in the current folder) and one line that names both places: finished work is
    never lost to a full disk or a folder that went away."""
    try:
        return write_text_atomically(path, text)
    except PDDLiteError as err:
        failure = str(err)
    name = f"pddlite-kept-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}{Path(path).suffix or '.txt'}"
    for folder in (Path(tempfile.gettempdir()), Path.cwd()):
        try:
            kept = write_text_atomically(folder / name, text)
        except PDDLiteError:
            continue
        raise PDDLiteError(f"{failure}; {what} is kept in {kept}: copy it there once the location can be written")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    raise PDDLiteError(f"{failure}; no folder could be written, so {what} is printed above: save it by hand")


def read_regular_text(path: str | os.PathLike) -> str:
    """The text of ``path`` when it is a regular file; OSError otherwise. It is opened without
    waiting first, so that a named pipe or a device in a results folder is refused, not read forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read()
    finally:
        os.close(fd)
    return data.decode("utf-8")


# --------------------------------------------------------------------------- claims

#: a live worker refreshes its claim file (its modification time) this often
CLAIM_REFRESH_S = 60.0
#: a claim not refreshed for this long is abandoned, whatever machine or process it names
CLAIM_STALE_AFTER_S = 10 * 60.0


def claim_path(path: str | os.PathLike) -> Path:
    """The claim file of the work that will write ``path`` (hidden, next to it; a digest of the
    name where the name itself would make it too long for the file system)."""
    target = Path(path)
    name = f".{target.name}.claim"
    if len(os.fsencode(name)) > 255:
        name = f".{hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]}.claim"
    return target.with_name(name)


#: the claims this process holds: path -> the event that stops its refresher
_held: dict[Path, threading.Event] = {}


def claim(path: str | os.PathLike) -> bool:
    """Claim the work that writes ``path``: True if this process now holds it, False if a live
    worker does.

    The claim is a file created atomically (``O_EXCL``) that a thread of the holder refreshes every
    :data:`CLAIM_REFRESH_S` seconds while the work runs. A claim is taken over when its file has not
    been refreshed for :data:`CLAIM_STALE_AFTER_S` seconds, whatever machine wrote it (a killed
    worker, a Colab VM that went away, a process id reused since), and at once when it names a
    process of this machine that has ended. A folder or disk that refuses the claim is one line
    that names the claim file.
    """
    lock = claim_path(path)
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PDDLiteError(f"cannot write the claim {lock} ({err.strerror or err}): choose a writable results "
                           "folder") from err
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _abandoned(lock):
                return False
            _take_over(lock)
            continue
        except OSError as err:
            raise PDDLiteError(f"cannot write the claim {lock} ({err.strerror or err}): choose a writable "
                               "results folder") from err
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(mine)
        except OSError as err:
            _discard(lock)  # an empty claim would hold the run for CLAIM_STALE_AFTER_S
            raise PDDLiteError(f"cannot write the claim {lock} ({err.strerror or err}): free some space or "
                               "choose another results folder") from err
        _keep_fresh(lock)
        return True
    return False


def release(path: str | os.PathLike) -> None:
    """Give up the claim on ``path`` (after its file is written, or when the work failed)."""
    lock = claim_path(path)
    stop = _held.pop(lock, None)
    if stop is not None:
        stop.set()
    _discard(lock)


def _keep_fresh(lock: Path) -> None:
    """Refresh ``lock``'s modification time every :data:`CLAIM_REFRESH_S` until it is released; a
    daemon thread, so that a process that dies stops refreshing, and its claim goes stale."""
    stop = threading.Event()
    _held[lock] = stop

    def refresh() -> None:
        while not stop.wait(CLAIM_REFRESH_S):
            try:
                os.utime(lock)
            except OSError:
                return  # taken over, or the folder went away: nothing left to refresh

    threading.Thread(target=refresh, name=f"pddlite-claim-{lock.name}", daemon=True).start()


def _holder(lock: Path) -> dict | None:
    try:
        if not stat.S_ISREG(os.stat(lock).st_mode):
            return None
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def claim_age(lock: Path) -> float:
    """Seconds since ``lock`` was last written or refreshed (0 when it cannot be read)."""
    try:
        return max(0.0, time.time() - lock.stat().st_mtime)
    except OSError:
        return 0.0


def _abandoned(lock: Path) -> bool:
    try:
        lock.stat()
    except OSError:
        return True
    if claim_age(lock) > CLAIM_STALE_AFTER_S:
        return True  # not refreshed: its worker is gone, on whatever machine
    holder = _holder(lock)
    if holder is None or holder.get("host") != socket.gethostname():
        return False  # being written this instant, or a live worker elsewhere: wait for it to go stale
    pid = holder.get("pid")
    if pid == os.getpid():
        return lock not in _held  # this process's own leftover, not a claim it holds now
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _take_over(lock: Path) -> None:
    """Remove an abandoned claim; if another worker replaced it meanwhile, put theirs back."""
    before = _holder(lock)
    aside = temporary_name(lock)
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    except OSError as err:
        raise PDDLiteError(f"the claim {lock} is abandoned but cannot be removed ({err.strerror or err}): "
                           "remove it by hand, then run again") from err
    if _holder(aside) != before:  # a fresh claim arrived between the check and the rename
        try:
            os.link(aside, lock)
        except OSError:  # it was claimed again meanwhile, or links are not supported: theirs stays aside
            pass
    _discard(aside)

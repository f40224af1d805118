"""Where pddlite writes: output locations checked before any compute, files written atomically.

A run can take minutes or hours; an output path that cannot be written must fail at the start,
in one line, not after the work is done. Every file pddlite writes (result rows, checkpoints,
``--out`` files) goes through :func:`write_atomically`: a temporary file in the same folder,
flushed to disk, then renamed over the target, so a file is either complete or absent.
"""

from __future__ import annotations

import os
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


def _probe(folder: Path, flag: str, target: Path | None = None) -> None:
    shown = target if target is not None else folder
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise PDDLiteError(f"{flag} {shown}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".pddlite-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PDDLiteError(f"{flag} {shown} cannot be written ({err.strerror or err}): choose a writable location") from err


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file, fsync, then rename over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomically` for a text file (UTF-8)."""
    return write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))

"""One check per kind of option value, shared by every detector's constructor.

Each returns the value as the plain Python type the detector stores (so NumPy scalars are
accepted and stored as ``float`` or ``int``), or raises :class:`~pddlite.errors.PDDLiteError` with
one line that names the option, what it must be, and what it got. A value is checked for its
type before it is compared, so ``lr="fast"`` is refused in one line, not by a ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import PDDLiteError

#: the widest network a detector builds: a multiple of the paper's channel counts (Tables 3-4)
MAX_WIDTH = 8.0


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
           low_open: bool = False, high_open: bool = False, optional: bool = False) -> float | None:
    """A finite real number in the interval from ``low`` to ``high`` (ends included unless open)."""
    if value is None and optional:
        return None
    above = _is_real(value) and (value > low if low_open else value >= low)
    below = _is_real(value) and (value < high if high_open else value <= high)
    if not (_is_real(value) and math.isfinite(value) and above and below):
        where = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        none = " (or None)" if optional else ""
        raise PDDLiteError(f"{name} must be a number in {where}{none}, got {value!r}")
    return float(value)


def positive(name: str, value: Any, *, optional: bool = False) -> float | None:
    """A finite number above zero."""
    if value is None and optional:
        return None
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise PDDLiteError(f"{name} must be a positive number{' (or None)' if optional else ''}, got {value!r}")
    return float(value)


def whole(name: str, value: Any, minimum: int = 1, *, optional: bool = False) -> int | None:
    """A whole number (Python or NumPy integer, not a bool) of at least ``minimum``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise PDDLiteError(f"{name} must be {kind}{' (or None)' if optional else ''}, got {value!r}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    """True or False (NumPy's bool too); a word such as ``"no"`` is refused, not read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise PDDLiteError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def file_path(name: str, value: Any, *, optional: bool = True) -> Path | None:
    """A file-system path (a string or ``os.PathLike``), or None."""
    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)) and str(value) != "":
        return Path(value)
    raise PDDLiteError(f"{name} must be a file path (a string or pathlib.Path){' or None' if optional else ''}, "
                       f"got {value!r}")


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """One of the names in ``allowed`` (a string, compared exactly)."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise PDDLiteError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
    return value

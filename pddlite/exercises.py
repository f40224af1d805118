"""Checks for the coding exercises of the notebook series.

A notebook's exercise is a starter function marked ``# TODO`` (its body ``...`` or ``return None``)
and a check cell that compares the student's value with the library's::

    check("Eq. 7", my_eq7(features, prototypes), scorer.score(features))

:func:`check` prints one line saying whether the answer is right and, when it is not, what
differs first (the kind, the shape, or the first differing value); it returns the verdict and
never raises for a wrong or missing answer, so that a notebook still runs to the end with the
exercise left undone.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_array(value: Any) -> np.ndarray | None:
    """A float NumPy array of a tensor, array, list or number; None when it is not numeric."""
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def _difference(answer: Any, expected: Any, atol: float, rtol: float) -> str | None:
    """What differs between ``answer`` and ``expected`` (None when they agree)."""
    if answer is None or answer is Ellipsis:
        return "the answer is None: the TODO is not done yet"
    got, want = _as_array(answer), _as_array(expected)
    if want is None:
        return None if answer == expected else f"expected {expected!r}, got {answer!r}"
    if got is None:
        return f"expected numbers, got a {type(answer).__name__}"
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    close = np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return None
    where = np.argwhere(~close)[0]
    index = tuple(int(i) for i in where)
    at = f" at index {index if len(index) > 1 else index[0]}" if index else ""
    return (f"{int((~close).sum())} of {close.size} values differ; first{at}: "
            f"got {got[index]:.6g}, expected {want[index]:.6g}")


def check(name: str, answer: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Compare a student's ``answer`` with the library's ``expected`` value; print one line; return the verdict.

    Numbers, NumPy arrays and torch tensors compare elementwise within ``atol + rtol * |expected|``
    (NumPy's ``isclose``); anything else compares with ``==``. ``None`` (an unfinished ``# TODO``)
    is a wrong answer, reported as such, never an error.
    """
    try:
        problem = _difference(answer, expected, atol, rtol)
    except Exception as error:  # a check must never stop the notebook
        problem = f"could not compare ({type(error).__name__}: {error})"
    print(f"✓ {name}: right" if problem is None else f"✗ {name}: not yet — {problem}")
    return problem is None


__all__ = ["check"]

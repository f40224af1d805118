"""The measured result rows the course reads, shipped with pddlite as package data.

Every comparison a notebook shows beyond its own run is computed from these rows, so that a
pip-installed pddlite (on Colab, say) draws the same tables and figures as a checkout. Each
collection is one JSON Lines file in this folder, copied from ``experiments/results`` by
``experiments/ship_rows.py``; all rows come from the ``quick`` profile on mnist-5k (20 prototypes
per normal class), and each collection reads one split only:

>>> from pddlite.measured import rows
>>> test = rows("test")                                        # doctest: +SKIP
>>> test.groupby("series")["auroc"].mean()                      # doctest: +SKIP

A PDD row holds three results of one run (Figs. 9-11): after pre-training alone (``pretrain_*``),
after the tune-up's adversarial steps alone (``adversarial_only_*``) and after the whole tune-up
(``auroc``, ``auprc``); the ``test`` rows of the ``pddlite`` variant also hold Eq. 7 on the 180
prototypes alone (``prototypes_only_*``).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..errors import PDDLiteError

#: Collection name -> what its rows are, and from which split.
COLLECTIONS: dict[str, str] = {
    "test": "test split: PDD's three variants (pddlite, paper, reference) and the pixel-space sanity "
            "baselines, ten anomaly classes x three seeds, on a CPU",
    "validation": "validation tasks (training data only): the screen that chose pddlite's defaults, one "
                  "row per (task, pre-training, tune-up, epoch, scoring)",
    "baselines": "test split: EGBAD, GANomaly, MCDD and Deep SVDD before and after (column `code`) their "
                 "public code's settings were adopted, ten anomaly classes x three seeds, on a GPU",
    "reference-gpu": "test split: the reference variant (the authors' sample notebook), ten anomaly "
                     "classes x three seeds, on a GPU",
}


def _read(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(f"{name}.jsonl").open("r", encoding="utf-8") as f:
        frame = pd.read_json(f, lines=True, dtype=False)
    frame.insert(0, "collection", name)
    if "method" in frame:
        variant = frame["variant"] if "variant" in frame else pd.Series(None, index=frame.index)
        frame.insert(1, "series", [f"pdd-{v}" if m == "pdd" else m for m, v in zip(frame["method"], variant)])
    return frame


def rows(collection: str | None = None) -> pd.DataFrame:
    """The shipped rows of one collection (see :data:`COLLECTIONS`), or of all when None.

    Columns are the rows' own fields plus ``collection`` and, for grid rows, ``series``
    (``pdd-<variant>`` for PDD, the method's name otherwise: the names ``pddlite report`` uses).
    """
    if collection is None:
        return pd.concat([_read(name) for name in COLLECTIONS], ignore_index=True)
    if collection not in COLLECTIONS:
        raise PDDLiteError(f"no shipped collection {collection!r}: choose one of {', '.join(COLLECTIONS)}")
    return _read(collection)


def summary(frame: pd.DataFrame, by: list[str] | str, metrics: tuple[str, ...] = ("auroc", "auprc")) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof = 1, as the paper's error bars) and count per group."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, *metrics] if c not in frame.columns]
    if missing:
        raise PDDLiteError(f"these rows have no column {', '.join(missing)}: choose from {', '.join(frame.columns)}")
    table = frame.groupby(by)[list(metrics)].agg(["mean", "std", "count"])
    return table.fillna({(m, "std"): 0.0 for m in metrics})


__all__ = ["COLLECTIONS", "rows", "summary"]

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

import math
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


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows as dicts without their missing fields: what :mod:`pddlite.report` reads from files."""
    return [{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
            for row in frame.to_dict("records")]


#: The lines of :func:`headline`: label -> (series, the row field prefix of the stage it reads).
HEADLINE = {
    "PDD as the paper's text says (variant='paper')": ("pdd-paper", ""),
    "PDD as the sample notebook does it (variant='reference'), transductive scoring": ("pdd-reference", ""),
    "  the same tuned networks, scored inductively": ("pdd-reference", "inductive_"),
    "PDD, pddlite's default: after pre-training alone": ("pdd-pddlite", "pretrain_"),
    "  after a tune-up without its margin steps": ("pdd-pddlite", "adversarial_only_"),
    "  after the whole tune-up": ("pdd-pddlite", ""),
    "  the same tuned networks, Eq. 7 on the 180 prototypes alone": ("pdd-pddlite", "prototypes_only_"),
    "pixel kNN to the prototypes (no training)": ("pixel-knn", ""),
    "pixel centroid of the prototypes (no training)": ("pixel-centroid", ""),
    "pixel kNN to the prototypes and the unlabeled images (no training)": ("pixel-knn-unlabeled", ""),
}


def headline(frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """What the course found, one line per detector or stage (:data:`HEADLINE`): mean AUROC and
    AUPRC with AUROC's sample standard deviation, over the runs of ``frame`` (default: the
    shipped ``test`` rows, ten anomaly classes x three seeds)."""
    frame = rows("test") if frame is None else frame
    lines = {}
    for label, (series, stage) in HEADLINE.items():
        part = frame[frame["series"] == series]
        if f"{stage}auroc" not in part or part[f"{stage}auroc"].isna().all():
            continue
        auroc, auprc = part[f"{stage}auroc"].dropna(), part[f"{stage}auprc"].dropna()
        lines[label] = {"AUROC": auroc.mean(), "± std": auroc.std(), "AUPRC": auprc.mean(), "runs": len(auroc)}
    return pd.DataFrame.from_dict(lines, orient="index").round(3)


__all__ = ["COLLECTIONS", "HEADLINE", "headline", "records", "rows", "summary"]

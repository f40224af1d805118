"""Error analysis of a detector on a task: which images it gets most wrong, and what they resemble.

A score ranks the test images; AUROC and AUPRC (Sec. 5.2-5.3) say how well, not where it fails.
Two lists say where:

* :func:`top_false_alarms`: the normal test images with the highest scores (what a threshold
  would flag first by mistake);
* :func:`missed_anomalies`: the anomalies with the lowest scores (what it would let through last).

:func:`nearest_prototypes` finds, for each of them, the closest labeled prototypes in an embedding
(PDD's f(x) of Eq. 7, or raw pixels for the pixel baselines), so that
:func:`pddlite.plots.error_grid` can draw each mistake beside what it was taken for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import PDDLiteError


def _vectors(scores: Any, is_anomaly: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).ravel()
    y = np.asarray(is_anomaly.detach().cpu() if isinstance(is_anomaly, torch.Tensor) else is_anomaly).astype(bool).ravel()
    if len(s) != len(y):
        raise PDDLiteError(f"{len(s)} scores but {len(y)} anomaly flags")
    return s, y


def top_false_alarms(scores: Any, is_anomaly: Any, n: int = 10) -> np.ndarray:
    """Indices of the ``n`` normal images with the highest scores, highest first (ties: lower index first)."""
    s, y = _vectors(scores, is_anomaly)
    normal = np.flatnonzero(~y)
    order = np.argsort(-s[normal], kind="stable")
    return normal[order[: max(0, int(n))]]


def missed_anomalies(scores: Any, is_anomaly: Any, n: int = 10) -> np.ndarray:
    """Indices of the ``n`` anomalies with the lowest scores, lowest first (ties: lower index first)."""
    s, y = _vectors(scores, is_anomaly)
    anomalous = np.flatnonzero(y)
    order = np.argsort(s[anomalous], kind="stable")
    return anomalous[order[: max(0, int(n))]]


def nearest_prototypes(queries: Any, prototypes: Any, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest prototypes of each query by Euclidean distance: ``(indices, distances)``,
    each Q x k, nearest first. Images are flattened, so pixels work as well as embeddings."""
    q = torch.as_tensor(np.asarray(queries.detach().cpu() if isinstance(queries, torch.Tensor) else queries))
    p = torch.as_tensor(np.asarray(prototypes.detach().cpu() if isinstance(prototypes, torch.Tensor) else prototypes))
    q, p = q.flatten(1).double(), p.flatten(1).double()
    if q.shape[1] != p.shape[1]:
        raise PDDLiteError(f"queries have {q.shape[1]} dimensions, the prototypes {p.shape[1]}")
    k = min(int(k), len(p))
    if k < 1:
        raise PDDLiteError("k must be at least 1 and there must be prototypes")
    d = torch.cdist(q, p)
    dist, idx = d.topk(k, dim=1, largest=False, sorted=True)
    return idx.numpy(), dist.numpy()


def class_counts(labels: Any, indices: Any) -> dict[int, int]:
    """How many of ``indices`` belong to each class, most frequent first: where the mistakes come from."""
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    picked = y[np.asarray(indices, dtype=np.int64)]
    values, counts = np.unique(picked, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {int(values[i]): int(counts[i]) for i in order}

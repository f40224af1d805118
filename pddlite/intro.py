"""The introduction's argument on a 2-D toy: one enclosing sphere against one density per class.

Sec. 1 of the paper argues that normal data of several classes is badly described by a single
boundary around all of it (the one hypersphere of Deep SVDD, Fig. 3's "deep one-class"
detectors): an anomaly that falls *between* the normal classes is close to the centre of all
normal data, so the sphere calls it normal. A density per class, scaled as Eq. 7 scales it,
sees that the same point is close to no class. :func:`between_classes_toy` draws such data,
:func:`sphere_score` and :func:`class_density_score` are the two scores, and :func:`score_grid`
evaluates both on a grid for :func:`pddlite.plots.sphere_vs_classes`.

The per-class score is not a re-implementation: it is :class:`pddlite.scoring.PrototypeKDE`
(Eq. 7) with the 2-D points as "embeddings" and an absolute bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import PDDLiteError
from .scoring import PrototypeKDE


@dataclass(frozen=True)
class IntroToy:
    """Normal 2-D points of ``len(centres)`` classes and a few anomalies between them.

    ``normal`` (N x 2), ``labels`` (N,), ``anomalies`` (A x 2); ``centres`` are the class centres.
    """

    normal: np.ndarray
    labels: np.ndarray
    anomalies: np.ndarray
    centres: np.ndarray


def between_classes_toy(n_classes: int = 3, per_class: int = 40, radius: float = 3.0, spread: float = 0.5,
                        n_anomalies: int = 5, anomaly_at: tuple[float, float] = (0.0, 0.0),
                        anomaly_spread: float = 0.2, seed: int = 0) -> IntroToy:
    """``n_classes`` Gaussian blobs on a circle of ``radius`` around the origin, and ``n_anomalies``
    points around ``anomaly_at`` (the origin by default: between the classes, at the mean of all
    normal data)."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise PDDLiteError(f"n_classes must be an integer of at least 2, got {n_classes!r}")
    if per_class < 2 or n_anomalies < 1:
        raise PDDLiteError("per_class must be at least 2 and n_anomalies at least 1")
    rng = np.random.default_rng(seed)
    angles = np.pi / 2 + 2 * np.pi * np.arange(n_classes) / n_classes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    normal = np.concatenate([c + spread * rng.standard_normal((per_class, 2)) for c in centres])
    labels = np.repeat(np.arange(n_classes), per_class)
    anomalies = np.asarray(anomaly_at, dtype=np.float64) + anomaly_spread * rng.standard_normal((n_anomalies, 2))
    return IntroToy(normal=normal, labels=labels, anomalies=anomalies, centres=centres)


def sphere_score(normal: np.ndarray, points: np.ndarray) -> np.ndarray:
    """One hypersphere around all normal data (Deep SVDD's score): the distance to their mean."""
    centre = np.asarray(normal, dtype=np.float64).mean(axis=0)
    return np.linalg.norm(np.asarray(points, dtype=np.float64) - centre, axis=1)


def class_density_score(normal: np.ndarray, labels: np.ndarray, points: np.ndarray,
                        bandwidth: float = 0.5) -> np.ndarray:
    """Eq. 7 with one Gaussian KDE per class, each scaled by its values at the other classes'
    points (:class:`pddlite.scoring.PrototypeKDE`), as the rank-exact score ``-asinh(max_n a_n)``."""
    kde = PrototypeKDE(bandwidth).fit(torch.as_tensor(normal, dtype=torch.float64), torch.as_tensor(labels))
    return kde.rank_score(torch.as_tensor(points, dtype=torch.float64)).cpu().numpy()


def score_grid(toy: IntroToy, bandwidth: float = 0.5, steps: int = 121,
               margin: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both scores on a ``steps`` x ``steps`` grid over the data: ``(xs, ys, sphere, densities)``,
    each score a steps x steps array (row = y)."""
    pts = np.concatenate([toy.normal, toy.anomalies])
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    flat = np.stack([gx.ravel(), gy.ravel()], axis=1)
    sphere = sphere_score(toy.normal, flat).reshape(gx.shape)
    dens = class_density_score(toy.normal, toy.labels, flat, bandwidth).reshape(gx.shape)
    return xs, ys, sphere, dens


def normal_rank(normal_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For each of ``scores``, the fraction of normal points that score lower (0: more normal than
    every normal point, 1: more anomalous than all of them): where a threshold would put it."""
    normal_scores = np.sort(np.asarray(normal_scores, dtype=np.float64))
    return np.searchsorted(normal_scores, np.asarray(scores, dtype=np.float64), side="left") / len(normal_scores)


def toy_summary(toy: IntroToy, bandwidth: float = 0.5) -> dict[str, float]:
    """The mean :func:`normal_rank` of the anomalies under each score (the picture in two numbers)."""
    sphere_n = sphere_score(toy.normal, toy.normal)
    sphere_a = sphere_score(toy.normal, toy.anomalies)
    both = np.concatenate([toy.normal, toy.anomalies])
    dens = class_density_score(toy.normal, toy.labels, both, bandwidth)
    dens_n, dens_a = dens[: len(toy.normal)], dens[len(toy.normal):]
    out = {"sphere": float(normal_rank(sphere_n, sphere_a).mean()),
           "class densities": float(normal_rank(dens_n, dens_a).mean())}
    if not all(math.isfinite(v) for v in out.values()):  # pragma: no cover - finite by construction
        raise PDDLiteError("a toy score is not finite")
    return out

"""Sanity baselines in pixel space: the same task and prototypes as PDD, and no training at all.

A detector that learns has to beat these two to show that it learned something:

* :class:`PixelKNN` (``--method pixel-knn``): the Euclidean distance from an image to its nearest
  labeled prototype, pixels in [-1, 1].
* :class:`PixelCentroid` (``--method pixel-centroid``): centre every image on the prototypes' mean
  image c, then score minus the largest cosine between x - c and a class's centred prototype mean
  mu_n = mean(p - c over class n's prototypes). This is the pixel-space counterpart of Eq. 7 on
  unit vectors at w >= 5 (:func:`pddlite.scoring.class_mean_score`).
* :class:`PixelKNNUnlabeled` (``--method pixel-knn-unlabeled``): the Euclidean distance to the
  nearest training image, prototype or unlabeled, pixels in [-1, 1]. It reads what PDD's
  ``scoring="kde-pseudo"`` reads (the prototypes and the same capped subset of unlabeled images),
  so it is the fair check for a score that uses the unlabeled images at scoring time.

All three are inductive (an image's score depends on that image and the prototypes only) and
deterministic. Neither is in the paper; they are here to put every PDD number in proportion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import Task, check_images, training_task
from .. import options
from ..detector import Detector
from ..errors import PDDLiteError


class _PixelDetector(Detector):
    """fit(task) or fit(prototype_images, prototype_labels); decision_function(images).

    Nothing is trained and the distances are computed on the CPU in float64, so ``precision``,
    ``deterministic``, ``compile`` and ``cuda_graphs`` would change nothing: a value other than
    the default is refused. ``decision_scores_`` are the prototypes' scores, each prototype's own
    distance left out (it is scored as a new prototype would be).
    """

    method = "pixel"
    uses_labels = "prototypes"
    unsupported_runtime = ("precision", "deterministic", "compile", "cuda_graphs")
    unsupported_why = "it trains nothing and computes its distances on the CPU in float64"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *, precision="auto",
                 deterministic=False, compile=False, cuda_graphs=False, contamination=0.1, chunk_size=4096):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        options.whole("chunk_size", self.chunk_size)
        return super()._resolve()

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None):
        """Store the prototypes (a Task's, or images with their labels)."""
        self._start_fit()
        if isinstance(X, Task):
            if y is not None:
                raise PDDLiteError("fit(task) takes no labels: the task's prototypes carry them")
            images, labels = X.prototype_images, X.prototype_labels
        else:
            images = check_images(X)
            labels = self.fit_labels(images, y)
        self._store(images, labels)
        self._set_threshold(self._training_scores())
        return self

    def _store(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        flat = images.detach().cpu().double().flatten(1)
        self.image_shape_ = tuple(images.shape[1:])
        self.prototype_labels_ = labels.detach().cpu()
        self.classes_ = torch.unique(self.prototype_labels_)
        if len(self.classes_) < 1 or len(flat) == 0:
            raise PDDLiteError("no prototypes to fit on")
        self._fit(flat)

    def decision_function(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more anomalous, float64 NumPy."""
        return self._chunked(self.checked_images(images).detach().cpu().double().flatten(1))

    def _chunked(self, x: torch.Tensor, held: torch.Tensor | None = None) -> np.ndarray:
        """Scores of flat images ``x`` in chunks; ``held[i]`` is the row of ``prototypes_`` that
        image i itself is (its own zero distance is left out), where it is one."""
        step = int(self.chunk_size)
        out = [self._score(x[i:i + step], None if held is None else held[i:i + step]) for i in range(0, len(x), step)]
        return torch.cat(out).numpy() if out else np.empty(0)

    def _training_scores(self) -> np.ndarray:
        """The held prototypes, each scored without itself."""
        return self._chunked(self.prototypes_, torch.arange(len(self.prototypes_)))

    def _fit(self, flat: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, x: torch.Tensor, held: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class PixelKNN(_PixelDetector):
    """Distance to the nearest prototype in pixel space (a 1-NN data description, no training)."""

    method = "pixel-knn"

    def _fit(self, flat: torch.Tensor) -> None:
        self.prototypes_ = flat

    def _score(self, x: torch.Tensor, held: torch.Tensor | None) -> torch.Tensor:
        d = torch.cdist(x, self.prototypes_)
        if held is not None:  # an image held by the detector is not its own nearest neighbour
            d[torch.arange(len(x)), held] = float("inf")
        return d.min(dim=1).values


class PixelCentroid(_PixelDetector):
    """Minus the largest cosine between x - c and each class's centred prototype mean (no training)."""

    method = "pixel-centroid"

    def _fit(self, flat: torch.Tensor) -> None:
        self.center_ = flat.mean(dim=0)
        self.prototypes_ = flat
        onehot = (self.prototype_labels_[:, None] == self.classes_[None, :]).double()
        means = onehot.T @ (flat - self.center_) / onehot.sum(dim=0)[:, None]
        self.class_means_ = means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _score(self, x: torch.Tensor, held: torch.Tensor | None) -> torch.Tensor:
        # class means, not kernels: a prototype is scored against the means as any image is
        v = x - self.center_
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return -(v @ self.class_means_.T).max(dim=1).values


class PixelKNNUnlabeled(PixelKNN):
    """Distance to the nearest training image, prototype or unlabeled, in pixel space (no training).

    ``fit(task)`` reads the task's prototypes and at most the profile's cap of its unlabeled images,
    drawn with the detector's seed (:func:`pddlite.data.subsample_indices`: the subset PDD reads);
    ``fit(images, labels)`` takes the prototypes' classes and -1 for each unlabeled image.
    ``decision_scores_`` are the unlabeled images' scores, each without its own zero distance.
    """

    method = "pixel-knn-unlabeled"
    uses_labels = "partial"

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None):
        """Store the prototypes and the unlabeled training images."""
        self._start_fit()
        task = training_task(X, y, self.seed).subsample_train(self.profile_.max_train_images, seed=self.seed)
        self._store(task.prototype_images, task.prototype_labels)
        n_protos = len(self.prototypes_)
        unlabeled = task.train_images.detach().cpu().double().flatten(1)
        self.prototypes_ = torch.cat([self.prototypes_, unlabeled])
        self._set_threshold(self._chunked(unlabeled, n_protos + torch.arange(len(unlabeled))))
        return self

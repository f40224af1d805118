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

from ..data import Task, check_images, check_labels, training_task
from .. import options
from ..detector import Detector, unknown_options
from ..errors import PDDLiteError


class _PixelDetector(Detector):
    """fit(task) or fit(prototype_images, prototype_labels); decision_function(images).

    Nothing is trained: the run-time options of every detector are accepted and checked, and the
    distances are computed on the CPU in float64 whatever the device and precision.
    """

    method = "pixel"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *, precision: str = "auto",
                 deterministic: bool = False, compile: bool = False, chunk_size: int = 4096, **unknown: Any):
        unknown_options(type(self), unknown)
        super().__init__(profile, device, seed, progress, precision=precision, deterministic=deterministic,
                         compile=compile)
        self.chunk_size = options.whole("chunk_size", chunk_size)

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None):
        """Store the prototypes (a Task's, or images with their labels)."""
        if isinstance(X, Task):
            if y is not None:
                raise PDDLiteError("fit(task) takes no labels: the task's prototypes carry them")
            images, labels = X.prototype_images, X.prototype_labels
        else:
            if y is None:
                raise PDDLiteError(f"{type(self).__name__}.fit needs the prototypes' labels: fit(images, labels)")
            images = check_images(X)
            labels = check_labels(y, len(images), "prototype labels")
        flat = images.detach().cpu().double().flatten(1)
        self.image_shape_ = tuple(images.shape[1:])
        self.labels_ = labels.detach().cpu()
        self.classes_ = torch.unique(self.labels_)
        if len(self.classes_) < 1 or len(flat) == 0:
            raise PDDLiteError("no prototypes to fit on")
        self._fit(flat)
        self.fitted_ = True
        return self

    def decision_function(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more anomalous, float64 NumPy."""
        x = self.checked_images(images).detach().cpu().double().flatten(1)
        out = [self._score(part) for part in x.split(self.chunk_size)]
        return torch.cat(out).numpy() if out else np.empty(0)

    def _fit(self, flat: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class PixelKNN(_PixelDetector):
    """Distance to the nearest prototype in pixel space (a 1-NN data description, no training)."""

    method = "pixel-knn"

    def _fit(self, flat: torch.Tensor) -> None:
        self.prototypes_ = flat

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, self.prototypes_).min(dim=1).values


class PixelCentroid(_PixelDetector):
    """Minus the largest cosine between x - c and each class's centred prototype mean (no training)."""

    method = "pixel-centroid"

    def _fit(self, flat: torch.Tensor) -> None:
        self.center_ = flat.mean(dim=0)
        onehot = (self.labels_[:, None] == self.classes_[None, :]).double()
        means = onehot.T @ (flat - self.center_) / onehot.sum(dim=0)[:, None]
        self.class_means_ = means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        v = x - self.center_
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return -(v @ self.class_means_.T).max(dim=1).values


class PixelKNNUnlabeled(PixelKNN):
    """Distance to the nearest training image, prototype or unlabeled, in pixel space (no training).

    ``fit(task)`` reads the task's prototypes and at most the profile's cap of its unlabeled images,
    drawn with the detector's seed (:func:`pddlite.data.subsample_indices`: the subset PDD reads);
    ``fit(images, labels)`` takes the prototypes' classes and -1 for each unlabeled image.
    """

    method = "pixel-knn-unlabeled"

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None):
        """Store the prototypes and the unlabeled training images."""
        task = training_task(X, y, self.seed).subsample_train(self.profile.max_train_images, seed=self.seed)
        super().fit(task)
        unlabeled = task.train_images.detach().cpu().double().flatten(1)
        self.prototypes_ = torch.cat([self.prototypes_, unlabeled])
        return self

"""What the four trained baselines share beyond :class:`pddlite.detector.Detector`.

Every trained baseline

* is a :class:`~pddlite.detector.Detector`: ``fit`` on a :class:`~pddlite.Task` (or on images,
  with labels where the method needs them), then ``decision_function``;
* takes its batch size and epoch count from the profile (Table 2 through :meth:`Profile.schedule`
  where the paper gives a row, its own documented schedule otherwise, or the number of optimiser
  steps the profile gives the method), its network width from ``profile.width`` and its training-set cap
  from ``profile.max_train_images``;
* keeps the training images on the device and draws shuffled index batches from a seeded CPU
  generator (:func:`pddlite.data.batches`), trains in the device's mixed precision (and scores in
  float32), and shows a tqdm bar per training stage;
* trains for a fixed number of epochs and scores in eval mode: no epoch is ever chosen on test data;
* with ``compile=True`` trains with its networks' forward passes compiled (:mod:`pddlite.trainer`),
  and says how long it will train from one timed step of each trainer (:mod:`pddlite.timing`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Task, check_images, subsample_indices
from .. import options
from ..detector import Detector
from ..device import seed_everything
from ..errors import PDDLiteError
from ..modes import network_mode
from ..profiles import Profile
from ..timing import TimedStage, TrainingEstimate, estimate_training, random_state_kept, steps_per_epoch


class BaselineDetector(Detector):
    """Base class of the trained baselines; subclasses set ``method`` and implement the hooks below.

    Args (shared by every baseline):
        profile: ``"paper"``, ``"colab"``, ``"quick"`` or ``"smoke"`` (default: ``$PDDLITE_PROFILE``, else quick).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        seed: seeds weights, batches and noise (the same seed gives the same numbers on a device).
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (see :mod:`pddlite.device`).
        deterministic: deterministic cuDNN algorithms (slower) instead of the fastest ones.
        compile: compile the networks' forward passes for training (:func:`torch.compile`).
        progress: show a tqdm bar per training stage.
        epochs, batch_size: override the profile's schedule.
        width: override the profile's network width multiplier.
        max_train_images: override the profile's cap on unlabeled training images (``None``: the
            profile's cap, as for PDD; the ``paper`` profile has none).
    """

    method: str = "baseline"
    unsupported_runtime = ("cuda_graphs",)
    unsupported_why = "only PDD's training steps are written to replay as CUDA graphs"

    def __init__(self, profile: str | Profile | None = None, device: str = "auto", seed: int = 0,
                 progress: bool = True, *, epochs: int | None = None, batch_size: int | None = None,
                 width: float | None = None, max_train_images: int | None = None, precision: str = "auto",
                 deterministic: bool = False, compile: bool = False, cuda_graphs: bool = False,
                 contamination: float = 0.1):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        """The shared sizes resolved against the profile: ``width_`` and ``max_train_images_``."""
        out = super()._resolve()
        options.whole("epochs", self.epochs, optional=True)
        options.whole("batch_size", self.batch_size, optional=True)
        width = options.number("width", self.width, 0.0, options.MAX_WIDTH, low_open=True, optional=True)
        cap = options.whole("max_train_images", self.max_train_images, optional=True)
        prof = out["profile_"]
        return {**out, "width_": width if width is not None else prof.width,
                "max_train_images_": cap if cap is not None else prof.max_train_images}

    # ------------------------------------------------------------------ hooks
    def default_schedule(self, dataset: str, n_images: int | None = None) -> tuple[int, int]:  # pragma: no cover
        """(batch size, epochs) from the profile for ``dataset`` and ``n_images`` training images."""
        raise NotImplementedError

    def _build(self, image_shape: tuple[int, int, int], n_classes: int) -> None:  # pragma: no cover
        """Create the networks (weights seeded by the caller) as fitted attributes."""
        raise NotImplementedError

    def _train(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int, epochs: int) -> None:
        raise NotImplementedError  # pragma: no cover

    def _timed_stages(self, images: torch.Tensor, labels: torch.Tensor | None) -> list[TimedStage]:
        """The trainers :meth:`_train` will run, each with its batch size and optimiser steps (after
        :meth:`_build`). By default the one ``trainer_`` that :meth:`_build` made, for the schedule."""
        sched = self.schedule_
        steps = sched["epochs"] * steps_per_epoch(len(images), sched["batch_size"])
        return [TimedStage(self.trainer_, sched["batch_size"], steps)]

    def _score(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Anomaly scores of one chunk (called in eval mode, without gradients, in float32)."""
        raise NotImplementedError

    def _scoring_modules(self) -> list[nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ API
    def schedule(self, dataset: str, n_images: int | None = None) -> dict[str, int]:
        """Batch size and epochs for ``dataset``: the profile's schedule (in optimiser steps over
        ``n_images`` training images, where the profile sizes the method so) unless overridden."""
        batch, epochs = self.default_schedule(dataset, n_images)
        return {"batch_size": options.whole("batch_size", self.batch_size, optional=True) or batch,
                "epochs": options.whole("epochs", self.epochs, optional=True) or epochs}

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None):
        """Train on a Task's unlabeled normal images (and their labels, for MCDD), or on images.

        ``X`` is a :class:`~pddlite.Task` or an N x C x H x W tensor in [-1, 1] (1x28x28 or 3x64x64);
        ``y`` gives class labels when ``X`` is a tensor and the method needs them.
        """
        self._start_fit()
        images, labels = self._set_up(X, y)
        self._train(images, labels, self.schedule_["batch_size"], self.schedule_["epochs"])
        self._set_threshold(self._scores(images))  # the networks hold no image: scored as new ones
        return self

    def training_estimate(self, task: Task, *, flops_per_second: float | None = None) -> TrainingEstimate:
        """How long :meth:`fit` on ``task`` will train: one timed step of each trainer, set up as
        ``fit`` sets it up but on a copy of this detector, with the random states kept.
        ``flops_per_second``: count each step's FLOPs and assume that rate instead of timing."""
        scratch = copy.deepcopy(self)
        scratch._start_fit()
        with random_state_kept(scratch.device_):
            images, labels = scratch._set_up(task, None)
            stages = scratch._timed_stages(images, labels)
        return estimate_training(stages, images, flops_per_second)

    def _set_up(self, X, y) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Everything :meth:`fit` does before training: the data, the seeds, the networks and the
        schedule; the training images and class indices (or ``None``) to train on."""
        images, labels, dataset = self._training_data(X, y)
        seed_everything(self.runtime_.seed, self.runtime_.deterministic)
        classes = torch.unique(labels) if labels is not None else None
        self.image_shape_ = tuple(images.shape[1:])
        self.dataset_ = dataset
        if classes is not None:
            self.classes_ = classes.cpu()
            labels = torch.searchsorted(classes, labels)  # class indices 0..K-1
        self._build(self.image_shape_, 0 if classes is None else len(classes))
        self.schedule_ = self.schedule(dataset, len(images))
        return images, labels

    @torch.no_grad()
    def decision_function(self, images: torch.Tensor | np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Anomaly scores, higher = more anomalous; eval mode, in chunks, as float64 NumPy.

        Scoring runs in float32 even on CUDA (training uses bfloat16): the scores are small
        differences of network outputs (GANomaly's latent error, Deep SVDD's distance to c), which
        bfloat16's 8-bit mantissa would round into ties. It is one forward pass over the test set.
        """
        return self._scores(self.checked_images(images), chunk)

    @torch.no_grad()
    def _scores(self, x: torch.Tensor, chunk: int = 1024) -> np.ndarray:
        """The scores of checked images ``x`` (see :meth:`decision_function`)."""
        with network_mode(*self._scoring_modules(), train=False):
            out = []
            for part in x.split(chunk):
                part = part.to(self.device_, non_blocking=True)
                out.append(self._score(part).float())
            scores = torch.cat(out) if out else torch.empty(0)
        return scores.double().cpu().numpy()

    # ------------------------------------------------------------------ helpers
    def _training_data(self, X, y) -> tuple[torch.Tensor, torch.Tensor | None, str]:
        if isinstance(X, Task):
            if y is not None:
                raise PDDLiteError("fit(task) takes no labels: a Task carries its own (task.train_labels)")
            task = X.subsample_train(self.max_train_images_, seed=self.runtime_.seed).to(self.device_)
            labels = task.train_labels if self.uses_labels == "all" else None
            return task.train_images.float(), labels, task.dataset
        images = check_images(X)
        labels = self.fit_labels(images, y)
        keep = subsample_indices(len(images), self.max_train_images_, self.runtime_.seed)
        if keep is not None:
            images = images[keep]
            labels = labels[keep] if labels is not None else None
        images = images.to(self.device_)
        labels = labels.to(self.device_) if labels is not None else None
        return images, labels, "arrays"


def step_decay(base_lr: float, epoch: int, milestones: tuple[int, ...], gamma: float = 0.1) -> float:
    """The learning rate of 0-based epoch ``epoch``: ``base_lr`` times ``gamma`` for every milestone
    reached (``epoch >= m``), as ``torch.optim.lr_scheduler.MultiStepLR`` stepped after each epoch."""
    return base_lr * gamma ** sum(1 for m in milestones if epoch >= m)


def set_learning_rate(optimizers: dict[str, torch.optim.Optimizer], lr: float) -> None:
    """Set every parameter group of every optimizer to ``lr``."""
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = lr

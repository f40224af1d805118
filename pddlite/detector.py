"""One shape for every detector: PDD, the paper's baselines, Deep SVDD and the pixel-space checks.

A :class:`Detector` is a PyOD-style estimator. Hyper-parameters go to the constructor, which
checks them at once; ``fit(task)`` trains on a :class:`~pddlite.Task` (``fit(X, y)`` on arrays
where the method says what ``y`` is); ``decision_function(images)`` returns float64 NumPy scores,
higher = more anomalous; fitted attributes end with an underscore. Every detector reads the same
run-time options, with the same meaning:

* ``profile``: ``"paper"``, ``"colab"``, ``"quick"`` or ``"smoke"`` (default ``$PDDLITE_PROFILE``,
  else quick): network width, schedule and the cap on training images (:mod:`pddlite.profiles`);
* ``device``, ``precision``, ``deterministic`` (:mod:`pddlite.device`), ``seed`` (weights, batches
  and noise), ``progress`` (tqdm bars);
* ``compile``: compile the networks' forward passes for training with :func:`torch.compile`
  (off by default; what is compiled: :mod:`pddlite.trainer`). It changes speed, not settings.

:meth:`Detector.run` is what ``pddlite run --method`` and the grid call for one task: fit, then the
metrics of the task's scored split; with progress on it first prints the estimated training time
(:mod:`pddlite.timing`). :data:`pddlite.methods.METHODS` lists the detectors by name.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from .data import Task, check_images
from .device import check_seed, choose_precision, resolve_device
from .errors import PDDLiteError
from .metrics import evaluate
from .options import flag
from .profiles import Profile, get_profile
from .timing import TrainingEstimate, announce


class Detector:
    """The base of every detector: run-time options, the fitted check, and the one-task runner."""

    #: the name of ``pddlite run --method``
    method: str = "detector"

    def __init__(
        self,
        profile: str | Profile | None = None,
        device: str = "auto",
        seed: int = 0,
        progress: bool = True,
        *,
        precision: str = "auto",
        deterministic: bool = False,
        compile: bool = False,
    ):
        self.profile = get_profile(profile)
        self.device = resolve_device(device)
        self.precision = choose_precision(self.device, precision)
        self.deterministic = bool(deterministic)
        self.compile = flag("compile", compile)
        self.seed = check_seed(seed)
        self.progress = bool(progress)

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None) -> "Detector":
        raise NotImplementedError  # pragma: no cover - every detector defines it

    def decision_function(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - every detector defines it

    def training_estimate(self, task: Task, *, flops_per_second: float | None = None) -> TrainingEstimate | None:
        """How long :meth:`fit` on ``task`` will train, from one timed step of each stage, or from
        counted FLOPs at an assumed ``flops_per_second`` (:mod:`pddlite.timing`); ``None`` for a
        detector that trains nothing."""
        return None

    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run (its fitted attributes exist)."""
        return bool(getattr(self, "fitted_", False))

    def check_fitted(self) -> None:
        """A one-line error naming the call to make, before a model that has not been fitted is used."""
        if not self.is_fitted():
            raise PDDLiteError(f"this {type(self).__name__} model is not fitted yet: call fit(task) first")

    def checked_images(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The images to score, through the data layer's one check (:func:`pddlite.data.check_images`):
        in [-1, 1], finite, and of the shape this fitted model was trained on. A batch whose every
        pixel is in [0, 1] is refused too: it is almost surely scaled to [0, 1] by mistake."""
        self.check_fitted()
        x = check_images(images, self.image_shape_)
        if len(x) > 1 and bool((x >= 0).all()):
            # [0, 1] lies inside [-1, 1], so such images pass the range check and would be scored as
            # if every dark pixel were mid-grey; a real batch in [-1, 1] has a dark pixel somewhere
            raise PDDLiteError(
                f"every pixel of these {len(x)} images is in [0, 1], not pddlite's [-1, 1]: rescale them with "
                "x * 2 - 1 (make_task and make_task_from_arrays do it), or score images this bright one at a time")
        return x

    @classmethod
    def run(cls, task: Task, profile: str, seed: int, device: str, progress: bool = True, precision: str = "auto",
            deterministic: bool = False, compile: bool = False, **options: Any) -> dict[str, Any]:
        """Fit on ``task`` and score its test images: the metrics, and the model under ``"model"``.

        With ``progress``, the estimated training time is printed first (:mod:`pddlite.timing`)."""
        refuse_pdd_options(cls.method, options)
        model = cls(profile=profile, device=device, seed=seed, progress=progress, precision=precision,
                    deterministic=deterministic, compile=compile, **options)
        if progress:
            announce(model.training_estimate(task))
        model.fit(task)
        metrics = evaluate(task.test_is_anomaly, model.decision_function(task.test_images))
        return {**metrics, "model": model}

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted() else "not fitted"
        return f"{type(self).__name__}(profile={self.profile.name!r}, seed={self.seed}, {state})"


def refuse_pdd_options(method: str, options: dict[str, Any]) -> None:
    """Take PDD's ``variant`` and ``checkpoint`` out of another detector's options, refusing any value."""
    variant = options.pop("variant", None)
    if variant is not None:
        raise PDDLiteError(f"{method} has no variant {variant!r}; variants belong to PDD (drop --variant)")
    if options.pop("checkpoint", None) is not None:
        raise PDDLiteError(f"checkpoints are for PDD; {method} has none (drop --checkpoint)")


def unknown_options(cls: type, options: dict[str, Any]) -> None:
    """Refuse constructor options that the class does not know, listing the ones it does."""
    if options:
        known = sorted(
            name for c in cls.__mro__ if c is not object and "__init__" in vars(c)
            for name, p in inspect.signature(c.__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        raise PDDLiteError(
            f"unknown {cls.__name__} option(s): {', '.join(sorted(options))}; known: {', '.join(dict.fromkeys(known))}"
        )

"""One shape for every detector: PDD, the paper's baselines, Deep SVDD and the pixel-space checks.

A :class:`Detector` is a scikit-learn estimator (:class:`~sklearn.base.BaseEstimator`,
:class:`~sklearn.base.OutlierMixin`) with PyOD's habits, without depending on PyOD:

* ``__init__`` stores every argument as given (explicit keyword parameters), so that
  :func:`sklearn.base.clone`, ``get_params``, ``set_params`` and ``repr`` work; it checks them at
  once (a bad value fails before any data is read) but keeps nothing it resolved;
* ``fit`` resolves them into attributes ending with an underscore: ``profile_`` (a
  :class:`~pddlite.profiles.Profile`: width, schedule, image cap), ``runtime_`` (the resolved
  :class:`~pddlite.runtime.Runtime`; ``device_`` and ``precision_`` read it), the fitted networks,
  and ``decision_scores_`` (the scores of the training images, computed as a new image of their kind
  would be scored: a scorer that holds the training images leaves each image's own kernel or own
  zero distance out), ``threshold_`` (the ``1 - contamination`` quantile of ``decision_scores_``)
  and ``labels_`` (0/1: ``decision_scores_ > threshold_``);
* ``decision_function(images)`` returns float64 NumPy scores, higher = more anomalous;
  ``predict(images)`` returns 0 (normal) or 1 (anomaly): ``decision_function > threshold_``.

The run-time options (``device``, ``seed``, ``progress``, ``precision``, ``deterministic``,
``compile``, ``cuda_graphs``) mean the same for every detector (:mod:`pddlite.runtime`); one that a
detector cannot honour is refused with one line when set. ``profile`` is ``"paper"``, ``"colab"``,
``"quick"`` or ``"smoke"`` (default ``$PDDLITE_PROFILE``, else quick).

**fit(X, y).** ``X`` is a :class:`~pddlite.Task` (then ``y`` is ``None``: the task carries its
labels), or N images in [-1, 1] (N x C x H x W) with ``y`` one label per image: a class number
(>= 0) for a labeled image, ``-1`` (:data:`pddlite.data.UNLABELED`) for an unlabeled one. What a
detector reads of ``y`` is its :attr:`Detector.uses_labels` (:data:`LABEL_USES`):

* ``"partial"`` (PDD, PixelKNNUnlabeled): the labeled images are the prototypes, the ``-1`` ones
  the unlabeled set; both are needed;
* ``"prototypes"`` (PixelKNN, PixelCentroid): every image is a labeled prototype; ``-1`` is refused;
* ``"all"`` (MCDD): every image is a labeled normal image; ``-1`` is refused;
* ``"none"`` (EGBAD, GANomaly, DeepSVDD): unsupervised; ``y`` is ``None`` or ``-1`` everywhere,
  and class labels are refused (the detector could not use them).

:meth:`Detector.run` is what ``pddlite run --method`` and the grid call for one task (PDD's row,
with its ablation, is :func:`pddlite.experiment.pdd_row`): fit, then the metrics of the task's
scored split; with progress on it first prints the estimated training time (:mod:`pddlite.timing`). :data:`pddlite.methods.METHODS` lists the detectors by name.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from .data import UNLABELED, Task, _as_number_tensor, check_images, check_labels
from .errors import PDDLiteError
from .metrics import evaluate
from .options import number
from .profiles import Profile, get_profile
from .runtime import RUNTIME_OPTIONS, Runtime
from .timing import TrainingEstimate, announce

#: what a detector reads of ``y`` in ``fit(X, y)`` (see the module docstring)
LABEL_USES = {
    "partial": "the class of each prototype and -1 for each unlabeled image",
    "prototypes": "the class of each prototype (every image is one)",
    "all": "the class of every image (every image is labeled normal data)",
    "none": "no classes: y=None, or -1 for every image",
}


def keep_params(estimator: Any, given: dict[str, Any]) -> None:
    """Store a constructor's arguments as given (``locals()`` of its ``__init__``): scikit-learn's
    rule, which makes ``get_params`` and ``clone`` return exactly what the user passed."""
    for name, value in given.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _refusing_unknown_keywords(init: Any) -> Any:
    params = inspect.signature(init).parameters

    @functools.wraps(init)  # scikit-learn reads the wrapped signature (inspect follows __wrapped__)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            known = [name for name in params if name != "self"]
            raise PDDLiteError(f"unknown {type(self).__name__} option(s): {', '.join(unknown)}; known: {', '.join(known)}")
        init(self, *args, **kwargs)

    return checked


class Detector(BaseEstimator, OutlierMixin):
    """The base of every detector: the run-time options, the resolved state, threshold and predict."""

    #: the name of ``pddlite run --method``
    method: str = "detector"
    #: what ``fit(X, y)`` reads of ``y`` (:data:`LABEL_USES`)
    uses_labels: str = "none"
    #: run-time options this detector cannot honour (a value other than the default is refused), and why
    unsupported_runtime: tuple[str, ...] = ()
    unsupported_why: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every detector's ``__init__`` refuses an unknown keyword with a one-line
        :class:`~pddlite.errors.PDDLiteError` listing the known ones (not Python's bare TypeError);
        its signature stays the explicit one that scikit-learn reads."""
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__ = _refusing_unknown_keywords(cls.__init__)

    def __init__(self, profile: str | Profile | None = None, device: str = "auto", seed: int = 0,
                 progress: bool = True, *, precision: str = "auto", deterministic: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1):
        self._keep(locals())

    # ------------------------------------------------------------------ parameters -> fitted state
    def _keep(self, given: dict[str, Any]) -> None:
        """Every ``__init__``'s one line: store its arguments as given (:func:`keep_params`), and
        check them now, so that a bad value fails before any data is read (nothing resolved is kept)."""
        keep_params(self, given)
        self._resolve()

    def _resolve(self) -> dict[str, Any]:
        """The resolved form of the parameters (checked; one line on a bad value), as the fitted
        attributes ``fit`` sets. Subclasses add their own (PDD: ``config_``)."""
        given = Runtime(**{name: getattr(self, name) for name in RUNTIME_OPTIONS})
        given.refuse(type(self).__name__, self.unsupported_runtime, self.unsupported_why)
        number("contamination", self.contamination, 0.0, 0.5, low_open=True)
        return {"profile_": get_profile(self.profile), "runtime_": given.resolved()}

    def _start_fit(self) -> None:
        """Forget every fitted attribute of an earlier fit, then resolve the parameters anew."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)
        vars(self).update(self._resolve())

    def _profile(self) -> Profile:
        """The fitted profile, or the ``profile`` parameter resolved now (a schedule asked before fit)."""
        return self.profile_ if hasattr(self, "profile_") else get_profile(self.profile)

    @property
    def device_(self) -> torch.device:
        """The device the networks live on (resolved from ``device``)."""
        return self.runtime_.device

    @property
    def precision_(self) -> Any:
        """The training precision (a :class:`~pddlite.device.Precision`, resolved from ``precision``)."""
        return self.runtime_.precision

    # ------------------------------------------------------------------ estimator API
    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None) -> "Detector":
        raise NotImplementedError  # pragma: no cover - every detector defines it

    def decision_function(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - every detector defines it

    def predict(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """0 (normal) or 1 (anomaly) per image: ``decision_function(images) > threshold_``."""
        self.check_fitted()
        return (self.decision_function(images) > self.threshold_).astype(np.int64)

    def fit_predict(self, X: Task | torch.Tensor | np.ndarray, y: Any = None) -> np.ndarray:
        """``fit(X, y)``, then the 0/1 labels of the training images (``labels_``)."""
        return self.fit(X, y).labels_

    def _set_threshold(self, training_scores: np.ndarray) -> None:
        """``decision_scores_``, ``threshold_`` and ``labels_`` from the training images' scores."""
        self.decision_scores_ = np.asarray(training_scores, dtype=np.float64)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination)) \
            if len(self.decision_scores_) else float("nan")
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)

    def fit_labels(self, X: Any, y: Any) -> torch.Tensor | None:
        """``y`` checked against :attr:`uses_labels` for images ``X`` (one line naming what this
        detector reads), as an int64 tensor, or ``None`` where the detector reads no classes."""
        name = type(self).__name__
        if y is None:
            if self.uses_labels == "none":
                return None
            raise PDDLiteError(f"{name}.fit(images, y) needs labels y: {LABEL_USES[self.uses_labels]}")
        raw = _as_number_tensor(y, "y").flatten()
        unlabeled = raw == UNLABELED
        if self.uses_labels == "none":
            if not bool(unlabeled.all()):
                raise PDDLiteError(f"{name} is unsupervised and cannot use class labels: pass y=None "
                                   "(or -1 for every image)")
            return None
        if self.uses_labels != "partial" and bool(unlabeled.any()):
            raise PDDLiteError(f"{name} cannot use unlabeled images (y = -1): it reads {LABEL_USES[self.uses_labels]}")
        what = "prototype labels" if self.uses_labels == "prototypes" else "labels"
        return raw if self.uses_labels == "partial" else check_labels(raw, len(X), what)

    def training_estimate(self, task: Task, *, flops_per_second: float | None = None) -> TrainingEstimate | None:
        """How long :meth:`fit` on ``task`` will train, from one timed step of each stage, or from
        counted FLOPs at an assumed ``flops_per_second`` (:mod:`pddlite.timing`); ``None`` for a
        detector that trains nothing."""
        return None

    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run (its fitted attributes exist)."""
        return hasattr(self, "threshold_")

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

    def run(self, task: Task) -> dict[str, Any]:
        """Fit on ``task`` and score its test images: the metrics, and the model under ``"model"``.

        With ``progress``, the estimated training time is printed first (:mod:`pddlite.timing`)."""
        if self.progress:
            announce(self.training_estimate(task))
        self.fit(task)
        metrics = evaluate(task.test_is_anomaly, self.decision_function(task.test_images))
        return {**metrics, "model": self}

"""The PDD estimator: GAN pre-training, the margin tune-up, and Eq. 7 scoring (Sec. 4).

>>> from pddlite import PDD, make_task
>>> task = make_task("mnist-5k", anomaly=1, shots=20, seed=0)
>>> model = PDD(profile="smoke").fit(task)                # doctest: +SKIP
>>> scores = model.decision_function(task.test_images)    # higher = more anomalous

The estimator follows the PyOD shape: hyper-parameters in the constructor, ``fit``, then
``decision_function``; fitted attributes end with an underscore. ``fit`` runs two stages,
:meth:`PDD.pretrain` and :meth:`PDD.tune_up`, which can also be called one at a time (the
ablation of Figs. 9-11 scores the model between them).

With ``checkpoint=PATH`` the whole training state is written after every epoch and read back on
the next ``fit``: an interrupted run resumes, and a finished one is loaded instead of retrained.
Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain values only.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .data import Task, training_task
from .detector import Detector
from .device import place, seed_everything
from .embedding import NORMALIZATIONS, embed, prototype_center, recalibrate_batchnorm
from .errors import PDDLiteError
from .files import write_atomically
from .gan import GANTrainer
from .graphs import refuse, unsupported_setting
from .margins import MARGIN_TERMS
from .metrics import evaluate
from .nets import init_weights, make_gan
from .options import MAX_WIDTH, file_path, flag, number, positive, whole
from .profiles import get_profile
from .scoring import SCORINGS, make_scorer
from .timing import TimedStage, TrainingEstimate, announce, estimate_training, random_state_kept
from .tuneup import TuneUpTrainer
from .variants import DEFAULT_VARIANT, variant_options

MARGINS = ("eq56", "reference")
LAYOUTS = ("paper", "reference")
BANDWIDTH_UNITS = ("absolute", "intra-median")
CHECKPOINT_FORMAT = "pddlite-pdd-2"


#: what a PDDConfig field's stage means: which part of a run reads it
STAGES = {
    "label": "names the run; computes nothing",
    "pretrain": "the GAN pre-training (and the networks and data both stages use)",
    "both": "the pre-training and the tune-up",
    "tuneup": "the tune-up (and the embedding it trains)",
    "scoring": "Eq. 7 scoring only: no training reads it",
}


def _field(default: Any, stage: str) -> Any:
    return field(default=default, metadata={"stage": stage})


class Stage(str, Enum):
    """Where a PDD model is. Checkpoints store the value; ``str`` so that it reads and compares as one.

    NEW -> PRETRAINING -> PRETRAINED -> TUNING -> DONE, each move made by :meth:`PDD._advance`.
    """

    NEW = "new"
    PRETRAINING = "pretrain"
    PRETRAINED = "pretrained"
    TUNING = "tuneup"
    DONE = "done"

    def __str__(self) -> str:
        return self.value


#: The tune-up's random stream is the seed plus this offset: apart from the pre-training's, so that
#: a tune-up resumed from a pre-trained checkpoint draws the same batches and noise as one run whole.
TUNEUP_SEED_OFFSET = 7919


@dataclass(frozen=True)
class PDDConfig:
    """Every hyper-parameter of a PDD run; a variant (:mod:`pddlite.variants`) is a preset of them.

    ``None`` epochs and batch sizes come from the profile (Table 2). Build one with
    :meth:`for_variant`; the dataclass defaults are the ``pddlite`` variant's. Each field's
    ``metadata["stage"]`` says which part of a run reads it (:data:`STAGES`): a pre-trained model
    can be tuned again with any field of the tune-up or the scoring changed
    (:meth:`fields_of`), and rescored with any scoring field changed.
    """

    variant: str = _field("pddlite", "label")  # the preset this configuration started from (a label, never a branch)
    layout: str = _field("paper", "pretrain")  # generator layout: Table 3 ("paper") or the sample notebook's
    keep_prototypes: bool = _field(False, "pretrain")  # keep the prototypes in the unlabeled set (the sample notebook)
    width: float = _field(1.0, "pretrain")
    pretrain_epochs: int | None = _field(None, "pretrain")
    pretrain_batch_size: int | None = _field(None, "pretrain")
    tune_epochs: int | None = _field(None, "tuneup")
    tune_batch_size: int | None = _field(None, "tuneup")
    notebook_tune_batch_size: int | None = _field(None, "tuneup")  # the variant's tune-up batch where the profile sets none
    lr: float = _field(2e-3, "both")  # Sec. 5.1's Adam learning rate, both stages
    margin: str = _field("eq56", "tuneup")  # the margin terms: Eqs. 5-6 ("eq56") or the sample notebook's ("reference")
    margin_lr: float = _field(2e-4, "tuneup")
    margin_steps: bool = _field(True, "tuneup")  # False: the tune-up's adversarial steps alone (the ablation's control)
    beta: float = _field(3.0, "tuneup")
    q_intra: float = _field(0.5, "tuneup")
    q_inter: float = _field(0.25, "tuneup")
    bandwidth: float = _field(0.1, "scoring")
    bandwidth_unit: str = _field("intra-median", "scoring")  # "absolute": w = bandwidth; else w = bandwidth x median within-class distance
    adversarial_tuneup: bool = _field(True, "tuneup")
    normalization: str = _field("center-l2", "tuneup")
    scoring: str = _field("kde-pseudo", "scoring")
    z_std: float = _field(1.0, "both")  # the noise of both stages' generator steps
    augment_prototypes: bool = _field(False, "tuneup")  # random shifts/rotations of the prototypes at every margin step
    recalibrate_bn: bool = _field(False, "scoring")  # BatchNorm statistics from real unlabeled images before embedding
    ema_decay: float | None = _field(None, "tuneup")  # score with a moving average of the tune-up's discriminator weights
    max_train_images: int | None = _field(None, "pretrain")

    @classmethod
    def fields_of(cls, *stages: str) -> tuple[str, ...]:
        """The names of the fields whose stage is one of ``stages`` (:data:`STAGES`), in field order."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise PDDLiteError(f"unknown stage(s) {', '.join(sorted(unknown))}; choose from: {', '.join(STAGES)}")
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["stage"] in stages)

    @classmethod
    def for_variant(cls, variant: str = "pddlite", profile: Any = None, **overrides: Any) -> "PDDConfig":
        """The options of a variant at a profile's width and size, then ``overrides``."""
        prof = get_profile(profile)
        base: dict[str, Any] = {"variant": variant, "width": prof.width, "max_train_images": prof.max_train_images}
        base.update(variant_options(variant))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - fields
        if unknown:
            raise PDDLiteError(f"unknown PDD option(s): {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**base)
        config.validate()
        return config

    def validate(self) -> None:
        for name, allowed in (("scoring", SCORINGS), ("normalization", NORMALIZATIONS), ("margin", MARGINS),
                              ("layout", LAYOUTS), ("bandwidth_unit", BANDWIDTH_UNITS)):
            if getattr(self, name) not in allowed:
                raise PDDLiteError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        for name in ("lr", "margin_lr", "bandwidth", "z_std"):
            positive(name, getattr(self, name))
        number("width", self.width, 0.0, MAX_WIDTH, low_open=True)
        for name in ("beta", "q_intra", "q_inter"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise PDDLiteError(f"{name} must be a finite number, got {value!r}")
        if self.beta < 0:
            raise PDDLiteError(f"beta must be >= 0, got {self.beta}")
        for name in ("q_intra", "q_inter"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PDDLiteError(f"{name} is a quantile (Eqs. 5-6) and must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("pretrain_epochs", "tune_epochs", "pretrain_batch_size", "tune_batch_size",
                     "notebook_tune_batch_size", "max_train_images"):  # None: the profile's
            whole(name, getattr(self, name), optional=True)
        number("ema_decay", self.ema_decay, 0.0, 1.0, low_open=True, high_open=True, optional=True)
        for name in ("keep_prototypes", "margin_steps", "adversarial_tuneup", "augment_prototypes", "recalibrate_bn"):
            if not isinstance(getattr(self, name), bool):
                raise PDDLiteError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def architecture(self, image_shape: tuple[int, ...]) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into these networks."""
        return {"image_shape": list(image_shape), "width": self.width, "layout": self.layout}


class PDD(Detector):
    """Prototype Data Description (Sec. 4): a :class:`~pddlite.detector.Detector`, ``fit`` / ``decision_function``.

    Args:
        profile: ``"paper"``, ``"colab"``, ``"quick"`` or ``"smoke"`` (default: ``$PDDLITE_PROFILE``, else quick):
            network width and the Table 2 schedule.
        variant: ``"pddlite"`` (the default: measured on validation tasks), ``"paper"`` (Eqs. 5-7 as
            the text states them) or ``"reference"`` (the authors' sample notebook); see
            :mod:`pddlite.variants`.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        seed: seeds weights, batches and noise; the same seed on the same device gives the same numbers.
        precision: ``"auto"`` (bfloat16 on GPUs of capability >= 8.0, float16 with loss scaling
            below, float32 on the CPU), ``"bf16"``, ``"fp16"`` or ``"fp32"``; see :mod:`pddlite.device`.
        deterministic: deterministic cuDNN algorithms (slower) instead of the fastest ones.
        compile: compile the generator's and the discriminator's forward passes for both stages
            (:func:`torch.compile`; what is and is not compiled: :mod:`pddlite.trainer`).
        cuda_graphs: replay each whole training step of both stages as one CUDA graph
            (:mod:`pddlite.graphs`; a CUDA device, bf16 or fp32, and the Eq. 5-6 margin terms of
            the ``paper`` and ``pddlite`` variants). Like ``compile``, it changes speed, not settings.
        checkpoint: a file to save training state to after every epoch and resume from.
        progress: show tqdm progress bars.
        pretrain_cache: a folder of pre-trained models keyed by what pre-training depends on (its
            options, the seed, the unlabeled images). Variants that share their pre-training (the
            ``paper`` and ``pddlite`` variants do) pre-train once; a cached model is the same model.
        **options: any :class:`PDDConfig` field (``beta``, ``bandwidth``, ``tune_epochs``, ...).

    Fitted attributes: ``generator_``, ``discriminator_``, ``prototype_embeddings_``,
    ``prototype_labels_``, ``scorer_`` (:class:`~pddlite.scoring.PrototypeKDE` or
    :class:`~pddlite.scoring.UMAPKDE`), ``history_`` (per-epoch losses of each stage), ``stage_``.
    """

    method: str = "pdd"

    def __init__(
        self,
        profile: str | None = None,
        variant: str = DEFAULT_VARIANT,
        device: str = "auto",
        seed: int = 0,
        checkpoint: str | os.PathLike | None = None,
        progress: bool = True,
        pretrain_cache: str | os.PathLike | None = None,
        precision: str = "auto",
        deterministic: bool = False,
        compile: bool = False,
        cuda_graphs: bool = False,
        **options: Any,
    ):
        super().__init__(profile, device, seed, progress, precision=precision, deterministic=deterministic,
                         compile=compile)
        self.cuda_graphs = flag("cuda_graphs", cuda_graphs)
        self.config = PDDConfig.for_variant(variant, self.profile, **options)
        if self.cuda_graphs:  # said now, not after the data is read
            refuse(unsupported_setting(self.device, self.precision, self.compile) or (
                None if MARGIN_TERMS[self.config.margin].graph_safe
                else f"the {variant!r} variant's margin terms cannot be a CUDA graph"))
        self.checkpoint = file_path("checkpoint", checkpoint)
        self.pretrain_cache = file_path("pretrain_cache", pretrain_cache)
        self.stage_ = Stage.NEW
        self.history_: dict[str, list[dict[str, float]]] = {"pretrain": [], "tuneup": []}
        self._expect_checkpoint(self.checkpoint)

    # ------------------------------------------------------------------ schedule
    def schedule(self, dataset: str, n_images: int | None = None) -> dict[str, int]:
        """Epochs and batch sizes of both stages for ``dataset`` (Table 2, scaled by the profile).

        Where the profile sizes the tune-up by optimiser steps (``quick``, ``colab``) and
        ``n_images``, the number of unlabeled training images, is given, the tune-up gets the
        fewest epochs that make those steps, and the optimiser steps of both stages are included.
        """
        pb, pe = self.profile.schedule("pdd-pretrain", dataset, n_images)
        c = self.config
        tb, te = self.profile.schedule("pdd-tuneup", dataset)  # epochs from steps once the batch is known
        if c.notebook_tune_batch_size is not None and self.profile.batch_size is None:
            tb = c.notebook_tune_batch_size
        te = self.profile.epochs_for_steps("pdd-tuneup", te, tb, n_images)
        out = {
            "pretrain_epochs": c.pretrain_epochs if c.pretrain_epochs is not None else pe,
            "pretrain_batch_size": c.pretrain_batch_size or pb,
            "tune_epochs": c.tune_epochs if c.tune_epochs is not None else te,
            "tune_batch_size": c.tune_batch_size or tb,
        }
        if n_images:
            for stage in ("pretrain", "tune"):
                batch = min(out[f"{stage}_batch_size"], n_images)
                out[f"{stage}_steps"] = out[f"{stage}_epochs"] * (n_images // batch)
        return out

    # ------------------------------------------------------------------ fitting
    def _prepare(self, task: Task) -> Task:
        if not isinstance(task, Task):
            raise PDDLiteError("fit() takes a Task: build one with make_task(...) or make_task_from_arrays(...)")
        if len(torch.unique(task.prototype_labels)) < 2:  # said before any training, not after it
            raise PDDLiteError("PDD needs prototypes of at least two normal classes (Eq. 7 scales each class's "
                               "density by the other classes' prototypes)")
        task = task.subsample_train(self.config.max_train_images, seed=self.seed).to(self.device)
        if not hasattr(self, "generator_"):
            seed_everything(self.seed, self.deterministic)
            g, d = make_gan(task.image_shape, self.config.width, self.config.layout)
            g.apply(init_weights)
            d.apply(init_weights)
            self.generator_, self.discriminator_ = place(g, self.device), place(d, self.device)
            self.image_shape_ = task.image_shape
            self.dataset_ = task.dataset
        elif tuple(task.image_shape) != tuple(self.image_shape_):
            raise PDDLiteError(f"this model was built for {self.image_shape_} images, the task has {task.image_shape}")
        self.task_identity_ = task.identity()
        return task

    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None) -> "PDD":
        """Pre-train, tune up and fit the scorer on a task's unlabeled images and prototypes.

        ``X`` is a :class:`~pddlite.Task`, or images in [-1, 1] with ``y`` the class of each
        prototype and -1 for every unlabeled image (:func:`pddlite.data.task_from_partial_labels`).
        """
        task = training_task(X, y, self.seed)
        self._pretrain(task)
        return self.tune_up(task)

    def pretrain(self, task: Task) -> "PDD":
        """Unsupervised GAN pre-training on the unlabeled normal images (Table 2 schedule), then the
        scorer, so that the pre-trained model can be scored (the baseline of Figs. 9-11)."""
        self._pretrain(task)
        return self.fit_scorer(task)

    def _pretrain(self, task: Task) -> None:
        task = self._prepare(task)
        self._resume()
        sched = self.schedule(task.dataset, len(task.train_images))
        cached = None
        if self.pretrain_cache is not None and self.stage_ is Stage.NEW:
            cached = self.pretrain_cache / f"pretrained-{self._pretraining_key(task, sched)}.pt"
            if cached.exists():
                state = read_checkpoint(cached)
                self.generator_.load_state_dict(state["generator"])
                self.discriminator_.load_state_dict(state["discriminator"])
                self.history_["pretrain"] = list(state["history"]["pretrain"])
                self.pretrained_discriminator_state_ = _clone_state(self.discriminator_)
                self._advance(Stage.PRETRAINED)
        if self.stage_ in (Stage.NEW, Stage.PRETRAINING):
            trainer = self._pretrain_trainer()
            if self.stage_ is Stage.PRETRAINING and self._resume_state is not None:
                trainer.load_state_dict(self._resume_state)
            self._advance(Stage.PRETRAINING)
            trainer.fit(task.train_images, sched["pretrain_epochs"], sched["pretrain_batch_size"],
                        self.progress, "GAN pre-training", on_epoch_end=lambda t: self._save(Stage.PRETRAINING, t))
            self.history_["pretrain"] = trainer.history
            self.pretrained_discriminator_state_ = _clone_state(self.discriminator_)
            self._advance(Stage.PRETRAINED)
            if cached is not None:
                _atomic_save(self._state("pretrained", None), cached)

    def _pretrain_trainer(self) -> GANTrainer:
        """The GAN pre-training's trainer, on this model's networks."""
        return GANTrainer(self.generator_, self.discriminator_, self.config.lr, z_std=self.config.z_std,
                          device=self.device, seed=self.seed, precision=self.precision, compile=self.compile,
                          cuda_graphs=self.cuda_graphs)

    def _tuneup_trainer(self, task: Task) -> TuneUpTrainer:
        """The tune-up's trainer, on this model's networks and ``task``'s prototypes."""
        c = self.config
        return TuneUpTrainer(
            self.generator_, self.discriminator_, task.prototype_images, task.prototype_labels,
            margin=c.margin, lr=c.lr, margin_lr=c.margin_lr, margin_steps=c.margin_steps, beta=c.beta,
            q_intra=c.q_intra, q_inter=c.q_inter, adversarial=c.adversarial_tuneup,
            normalization=c.normalization, z_std=c.z_std, augment=c.augment_prototypes,
            ema_decay=c.ema_decay, device=self.device,
            seed=self.seed + TUNEUP_SEED_OFFSET,
            precision=self.precision, compile=self.compile, cuda_graphs=self.cuda_graphs,
        )

    def training_estimate(self, task: Task, ablation: bool = False, *,
                          flops_per_second: float | None = None) -> TrainingEstimate:
        """How long pre-training and the tune-up on ``task`` will train (:mod:`pddlite.timing`):
        one timed step of each, on networks built as :meth:`fit` builds them but on a copy of this
        model, with the random states kept. ``ablation`` counts the tune-up twice, as :meth:`run`
        runs it with the adversarial-only control. The whole schedule is counted, as if no
        pre-training were cached and no checkpoint resumed. ``flops_per_second``: count each
        step's FLOPs and assume that rate, for a device that is not here."""
        scratch = copy.deepcopy(self)
        with random_state_kept(self.device):
            task = scratch._prepare(task)
            sched = scratch.schedule(task.dataset, len(task.train_images))
            stages = [TimedStage(scratch._pretrain_trainer(), sched["pretrain_batch_size"], sched["pretrain_steps"]),
                      TimedStage(scratch._tuneup_trainer(task), sched["tune_batch_size"],
                                 sched["tune_steps"] * (2 if ablation else 1))]
        return estimate_training(stages, task.train_images, flops_per_second)

    def _pretraining_key(self, task: Task, sched: dict[str, int]) -> str:
        """A digest of everything pre-training depends on: its options, the seed and the unlabeled images."""
        c = self.config
        what = {"layout": c.layout, "width": c.width, "lr": c.lr, "z_std": c.z_std, "seed": self.seed,
                "epochs": sched["pretrain_epochs"], "batch_size": sched["pretrain_batch_size"],
                "image_shape": list(task.image_shape), "format": CHECKPOINT_FORMAT}
        if self.precision.name != "fp32":  # float32 keys stay as they were before precision was an option
            what["precision"] = self.precision.name
        digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode())
        digest.update(task.train_images.detach().cpu().float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:24]

    def tune_up(self, task: Task, after_epoch: Callable[[Any], None] | None = None) -> "PDD":
        """The margin tune-up on the prototypes (Eqs. 5-6), then the scorer (Eq. 7).

        ``after_epoch(trainer)`` is called after each tune-up epoch, once the checkpoint is written
        (:func:`pddlite.ablation.tuneup_curve` scores the model there); it must not train.
        """
        task = self._prepare(task)
        self._resume()
        if self.stage_ in (Stage.NEW, Stage.PRETRAINING):
            raise PDDLiteError("pre-train first: call pretrain(task) (or fit(task)) before tune_up(task)")
        sched = self.schedule(task.dataset, len(task.train_images))
        self.schedule_ = sched
        if self.stage_ in (Stage.PRETRAINED, Stage.TUNING):
            trainer = self._tuneup_trainer(task)
            if self.stage_ is Stage.TUNING and self._resume_state is not None:
                trainer.load_state_dict(self._resume_state)
            self._advance(Stage.TUNING)
            trainer.fit(task.train_images, sched["tune_epochs"], sched["tune_batch_size"],
                        self.progress, "PDD tune-up", on_epoch_end=lambda t: self._epoch_done(t, after_epoch))
            self.history_["tuneup"] = trainer.history
            if trainer.ema is not None:  # the tuned model is the average of the tune-up's weights
                self.discriminator_.load_state_dict(trainer.ema.average.state_dict())
            self._advance(Stage.DONE)
        self.fit_scorer(task)
        return self

    def _epoch_done(self, trainer: Any, after_epoch: Callable[[Any], None] | None) -> None:
        self._save(Stage.TUNING, trainer)
        if after_epoch is not None:
            after_epoch(trainer)

    def copy_with(
        self, *, checkpoint: str | os.PathLike | None = None, progress: bool | None = None, **options: Any
    ) -> "PDD":
        """A deep copy with some :class:`PDDConfig` fields changed and its own checkpoint (or none).

        Tunes up one pre-trained model in several ways (the ablations of Sec. 5.3) without
        pre-training again. The copy reads ``checkpoint`` at its next stage if that file exists.
        """
        fields = {f.name for f in dataclasses.fields(PDDConfig)}
        unknown = set(options) - fields
        if unknown:
            raise PDDLiteError(f"unknown PDD option(s): {', '.join(sorted(unknown))}")
        model = copy.deepcopy(self)
        model.config = dataclasses.replace(self.config, **options)
        model.config.validate()
        if progress is not None:
            model.progress = progress
        model.checkpoint = Path(checkpoint) if checkpoint is not None else None
        model._expect_checkpoint(model.checkpoint)
        return model

    def pretrained_model(self, task: Task) -> "PDD":
        """A copy as it was right after pre-training, scorer fitted on ``task`` (Figs. 9-11's baseline).

        Also works after a finished or resumed checkpoint: the pre-trained discriminator is stored.
        """
        if not hasattr(self, "pretrained_discriminator_state_"):
            raise PDDLiteError("this model has no pre-trained state yet: call pretrain(task) first")
        model = self.copy_with()
        model.discriminator_.load_state_dict(self.pretrained_discriminator_state_)
        model.stage_ = Stage.PRETRAINED
        model.fit_scorer(model._prepare(task))
        return model

    # ------------------------------------------------------------------ scoring
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """f(x): the (normalised) discriminator features, eval mode, on the model's device."""
        images = self.checked_images(images).to(self.device)
        return embed(self._embedder(), images, self.config.normalization, getattr(self, "center_", None))

    def _embedder(self) -> torch.nn.Module:
        """The network that embeds: the discriminator, or its BatchNorm-recalibrated copy."""
        embedder = getattr(self, "embedder_", None)
        return embedder if embedder is not None else self.discriminator_

    def fit_scorer(self, task: Task) -> "PDD":
        """Fit the scorer (Eq. 7) on ``task``'s prototypes with the current networks; no training.

        With ``recalibrate_bn`` the embedding network is a copy of the discriminator whose
        BatchNorm statistics come from the task's unlabeled images; with ``bandwidth_unit=
        "intra-median"`` the kernel width is ``bandwidth`` times the median within-class distance
        of the embedded prototypes.
        """
        if not isinstance(task, Task):
            raise PDDLiteError("fit_scorer() takes a Task: build one with make_task(...) or make_task_from_arrays(...)")
        task = task.subsample_train(self.config.max_train_images, seed=self.seed).to(self.device)
        self.embedder_ = None
        if self.config.recalibrate_bn:
            self.embedder_ = recalibrate_batchnorm(copy.deepcopy(self.discriminator_), task.train_images)
        self.center_ = prototype_center(self._embedder(), task.prototype_images)
        self.prototype_embeddings_ = self.embed(task.prototype_images)
        self.prototype_labels_ = task.prototype_labels.to(self.device)
        c = self.config
        self.scorer_ = make_scorer(c.scoring, c.bandwidth, c.bandwidth_unit, self.prototype_embeddings_,
                                   self.prototype_labels_, lambda: self.embed(task.train_images), self.seed)
        return self

    def decision_function(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more anomalous: the scorer's rank-exact ``rank_score`` (Eq. 7 for ``"kde"``).

        With ``scoring="umap"`` (transductive) the scores of a batch depend on the whole batch.
        """
        self.check_fitted()
        if getattr(self, "scorer_", None) is None:
            raise PDDLiteError("this model has no scorer yet (it was loaded without its task): call "
                               "model.fit_scorer(task), or load it with PDD.load(path, task=task)")
        return self.scorer_.rank_score(self.embed(images)).cpu().numpy()

    def is_fitted(self) -> bool:
        """Whether the model can embed and score: pre-trained at least."""
        return hasattr(self, "discriminator_") and self.stage_ not in (Stage.NEW, Stage.PRETRAINING)

    @classmethod
    def run(cls, task, profile, seed, device, progress=True, precision="auto", deterministic=False, compile=False,
            variant=DEFAULT_VARIANT, checkpoint=None, ablation=True, pretrain_cache=None, **options) -> dict[str, Any]:
        """PDD: metrics after pre-training alone, after the adversarial steps alone, and after the tune-up.

        With the sample notebook's transductive scoring (``scoring="umap"``) the row also gives the
        same model scored inductively (UMAP fitted on the unlabeled training embeddings) as
        ``inductive_auroc`` / ``inductive_auprc``, and says ``transductive: true``. With
        ``scoring="kde-pseudo"`` it also gives the tuned model under Eq. 7 on the prototypes alone
        (``prototypes_only_auroc`` / ``prototypes_only_auprc``): what the unlabeled images add.
        ``ablation=False`` skips the adversarial-only control (it costs one more tune-up);
        ``pretrain_cache`` is a folder that lets variants with the same pre-training share it.
        With ``progress``, the estimated training time is printed first (:meth:`training_estimate`).
        """
        model = cls(profile=profile, variant=variant, device=device, seed=seed, checkpoint=checkpoint,
                    progress=progress, pretrain_cache=pretrain_cache, precision=precision,
                    deterministic=deterministic, compile=compile, **options)
        if progress:
            announce(model.training_estimate(task, ablation=ablation))
        model.pretrain(task)
        # a resumed checkpoint may already be past pre-training: score the stored pre-trained state
        pretrained = model if model.stage_ is Stage.PRETRAINED else model.pretrained_model(task)
        row: dict[str, Any] = {"variant": variant}
        before = evaluate(task.test_is_anomaly, pretrained.decision_function(task.test_images))
        row.update(pretrain_auroc=before["auroc"], pretrain_auprc=before["auprc"])
        if ablation:
            control_checkpoint = None if checkpoint is None else Path(str(checkpoint) + ".adversarial-only")
            control = pretrained.copy_with(margin_steps=False, checkpoint=control_checkpoint).tune_up(task)
            adv = evaluate(task.test_is_anomaly, control.decision_function(task.test_images))
            row.update(adversarial_only_auroc=adv["auroc"], adversarial_only_auprc=adv["auprc"])
            del control
        model.tune_up(task)
        after = evaluate(task.test_is_anomaly, model.decision_function(task.test_images))
        row.update(auroc=after["auroc"], auprc=after["auprc"])
        row.update(model.schedule_)  # the epochs, batch sizes and optimiser steps both stages ran
        if model.config.scoring == "umap":
            # transductive scoring (fitted on the scored set): report the inductive version beside it
            inductive = model.copy_with(scoring="umap-inductive", progress=False).fit_scorer(task)
            ind = evaluate(task.test_is_anomaly, inductive.decision_function(task.test_images))
            row.update(transductive=True, inductive_auroc=ind["auroc"], inductive_auprc=ind["auprc"])
        if model.config.scoring == "kde-pseudo":
            # the same tuned model under Eq. 7 on the prototypes alone: what the unlabeled images add
            alone = model.copy_with(scoring="kde", progress=False).fit_scorer(task)
            only = evaluate(task.test_is_anomaly, alone.decision_function(task.test_images))
            row.update(prototypes_only_auroc=only["auroc"], prototypes_only_auprc=only["auprc"])
        row["model"] = model
        return row

    # ------------------------------------------------------------------ checkpoints
    def _state(self, stage: str, trainer: Any) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": dataclasses.asdict(self.config),
            "architecture": self.config.architecture(self.image_shape_),
            "dataset": self.dataset_,
            "task": getattr(self, "task_identity_", None),
            "seed": self.seed,
            "stage": str(stage),
            "profile": self.profile.name,
            "history": self.history_,
            "generator": self.generator_.state_dict(),
            "discriminator": self.discriminator_.state_dict(),
        }
        if hasattr(self, "pretrained_discriminator_state_"):
            state["pretrained_discriminator"] = self.pretrained_discriminator_state_
        if trainer is not None:
            state["trainer"] = trainer.state_dict()
            state["history"] = {**self.history_, stage: trainer.history}
        return state

    def _advance(self, stage: Stage) -> None:
        """The one place a model moves to another stage: the move, then the checkpoint says so.

        A finished stage (PRETRAINED, DONE) has no trainer state left to resume from."""
        self.stage_ = stage
        if stage in (Stage.PRETRAINED, Stage.DONE):
            self._resume_state = None
        self._save(stage, None)

    def _expect_checkpoint(self, checkpoint: Path | None) -> None:
        """Read ``checkpoint`` (when there is one) at the next stage: :meth:`_resume`."""
        self._resume_pending, self._resume_state = checkpoint is not None, None

    def _save(self, stage: Stage, trainer: Any) -> None:
        if self.checkpoint is not None:
            _atomic_save(self._state(stage, trainer), self.checkpoint)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model (networks, configuration, history) to ``path``."""
        self.check_fitted()
        return _atomic_save(self._state(self.stage_, None), Path(path))

    def _resume(self) -> None:
        """Load ``self.checkpoint`` once, if it exists, to resume or skip finished stages."""
        if not self._resume_pending:
            return
        self._resume_pending = False
        if not self.checkpoint.exists():
            return
        state = read_checkpoint(self.checkpoint)
        self._restore(state, self.checkpoint)
        self._resume_state = state.get("trainer")

    def _restore(self, state: dict[str, Any], resume_from: Path | None = None) -> None:
        """Load ``state`` into this model; resuming from a checkpoint, it must be this task's too."""
        mine = self.config.architecture(self.image_shape_)
        if state["architecture"] != mine:
            raise PDDLiteError(
                f"checkpoint is for architecture {state['architecture']}, this model is {mine}; "
                "use another checkpoint path or the same width/variant/image size"
            )
        # the scoring options change no weight (fit_scorer refits them), so a checkpoint serves any of them
        if _trained_fields(state["config"]) != _trained_fields(dataclasses.asdict(self.config)) or state["seed"] != self.seed:
            raise PDDLiteError(
                "checkpoint was trained with other hyper-parameters or seed; delete it or use another path"
            )
        if resume_from is not None:
            _check_task(state, self.task_identity_, resume_from)
        try:
            self.generator_.load_state_dict(state["generator"])
            self.discriminator_.load_state_dict(state["discriminator"])
        except RuntimeError as err:
            raise PDDLiteError(f"checkpoint does not fit this architecture ({str(err).splitlines()[0]})") from err
        if "pretrained_discriminator" in state:
            self.pretrained_discriminator_state_ = state["pretrained_discriminator"]
        self.history_ = {k: list(v) for k, v in state["history"].items()}
        self.stage_ = Stage(state["stage"])

    @classmethod
    def load(cls, path: str | os.PathLike, task: Task | None = None, device: str = "auto",
             progress: bool = True) -> "PDD":
        """Load a model written by :meth:`save` (or a finished checkpoint).

        Pass the ``task`` to fit the scorer on its prototypes right away (the prototypes are not
        stored in the file, so the same task is needed to score as when training).
        """
        state = read_checkpoint(Path(path))
        # files written before the profile was stored were scored as trained; their profile only
        # sizes further training, and "paper" (Table 2 itself) is the one that assumes nothing
        model = cls(profile=state.get("profile", "paper"), variant=state["config"]["variant"], device=device,
                    seed=int(state["seed"]), progress=progress)
        model.config = PDDConfig(**state["config"])
        model.config.validate()
        arch = state["architecture"]
        g, d = make_gan(tuple(arch["image_shape"]), arch["width"], arch["layout"])
        model.generator_, model.discriminator_ = place(g, model.device), place(d, model.device)
        model.image_shape_ = tuple(arch["image_shape"])
        model.dataset_ = state["dataset"]
        model._restore(state)
        model.task_identity_ = state.get("task")
        if task is not None:
            if model.task_identity_ is not None:  # the scorer is fitted on the task: it must be the model's
                _check_task(state, task.subsample_train(model.config.max_train_images, model.seed).identity(),
                            Path(path), what="loaded for")
            model.fit_scorer(task.to(model.device))
        return model


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a pddlite checkpoint safely (``weights_only=True``) and check that it is one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise PDDLiteError(f"no checkpoint at {path}") from err
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise PDDLiteError(f"{path} is not a readable pddlite checkpoint ({type(err).__name__}); delete it or retrain") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise PDDLiteError(f"{path} is not a pddlite PDD checkpoint")
    missing = sorted(_CHECKPOINT_KEYS - set(state))
    if missing:
        raise PDDLiteError(f"{path} is an incomplete pddlite checkpoint (no {', '.join(missing)}); delete it or retrain")
    damaged = _damaged_fields(state)
    if damaged:
        raise PDDLiteError(f"{path} is a damaged pddlite checkpoint ({damaged}); delete it or retrain")
    fields = {f.name for f in dataclasses.fields(PDDConfig)}
    if not isinstance(state["config"], dict) or set(state["config"]) != fields:
        extra = sorted(set(state["config"]) - fields) if isinstance(state["config"], dict) else []
        raise PDDLiteError(f"{path} holds a configuration this pddlite does not know"
                           + (f" (fields {', '.join(extra)})" if extra else "") + "; retrain with this version")
    return state


#: what every PDD checkpoint holds (the pre-trained discriminator and trainer state are optional)
_CHECKPOINT_KEYS = frozenset({"config", "architecture", "dataset", "seed", "stage", "history", "generator",
                              "discriminator"})


def _damaged_fields(state: dict[str, Any]) -> str:
    """What in a checkpoint's bookkeeping is not of its kind (empty when all is well)."""
    arch = state["architecture"]
    if state["stage"] not in {s.value for s in Stage}:
        return f"unknown stage {state['stage']!r}"
    if isinstance(state["seed"], bool) or not isinstance(state["seed"], int):
        return f"seed {state['seed']!r} is not a whole number"
    if not isinstance(arch, dict) or not {"image_shape", "width", "layout"} <= set(arch):
        return "its architecture does not give image_shape, width and layout"
    if not isinstance(state["history"], dict):
        return "its history is not a mapping of stages"
    return ""


def _is_number(value: Any) -> bool:
    """A real number (an int or a float, not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_task(state: dict[str, Any], mine: dict[str, Any], path: Path, what: str = "resumed on") -> None:
    """Refuse a checkpoint written for another task (other classes, shots, seed, split or images)."""
    theirs = state.get("task")
    if theirs is None:
        raise PDDLiteError(f"checkpoint {path} does not say which task it was trained on (an older pddlite); "
                           "delete it or use another path to train again")
    if theirs != mine:
        diff = ", ".join(f"{k} {theirs.get(k)!r} (this task: {mine[k]!r})" for k in mine if theirs.get(k) != mine[k])
        advice = ("use another --checkpoint path for this task" if what == "resumed on"
                  else "pass the task it was trained on (the same make_task arguments)")
        raise PDDLiteError(f"checkpoint {path} was trained on another task: {diff}; {advice}")


def _trained_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration fields that shape the trained weights (all but the scoring-only ones)."""
    scoring_only = PDDConfig.fields_of("scoring")
    return {k: v for k, v in config.items() if k not in scoring_only}


def _atomic_save(state: dict[str, Any], path: Path) -> Path:
    return write_atomically(path, lambda fh: torch.save(state, fh))


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}

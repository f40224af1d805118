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
from .nets import init_weights, make_gan
from .options import MAX_WIDTH, choice, file_path, flag, number, positive, whole
from .profiles import get_profile
from .scoring import SCORINGS, make_scorer, training_scores
from .timing import TimedStage, TrainingEstimate, estimate_training, random_state_kept
from .tuneup import TuneUpTrainer
from .variants import DEFAULT_VARIANT, variant_options

MARGINS = tuple(MARGIN_TERMS)
LAYOUTS = ("paper", "reference")
BANDWIDTH_UNITS = ("absolute", "intra-median")
CHECKPOINT_FORMAT = "pddlite-pdd-3"
#: older checkpoint formats still read, and what each lacks
OLDER_FORMATS = {"pddlite-pdd-2": "it keeps the pre-trained discriminator but not the pre-trained generator"}


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
        """Every field checked through :mod:`pddlite.options` (one line naming the field)."""
        for name, allowed in (("scoring", SCORINGS), ("normalization", NORMALIZATIONS), ("margin", MARGINS),
                              ("layout", LAYOUTS), ("bandwidth_unit", BANDWIDTH_UNITS)):
            choice(name, getattr(self, name), allowed)
        for name in ("lr", "margin_lr", "bandwidth", "z_std"):
            positive(name, getattr(self, name))
        number("width", self.width, 0.0, MAX_WIDTH, low_open=True)
        number("beta", self.beta, 0.0)
        for name in ("q_intra", "q_inter"):  # quantiles (Eqs. 5-6)
            number(name, getattr(self, name), 0.0, 1.0)
        for name in ("pretrain_epochs", "tune_epochs", "pretrain_batch_size", "tune_batch_size",
                     "notebook_tune_batch_size", "max_train_images"):  # None: the profile's
            whole(name, getattr(self, name), optional=True)
        number("ema_decay", self.ema_decay, 0.0, 1.0, low_open=True, high_open=True, optional=True)
        for name in ("keep_prototypes", "margin_steps", "adversarial_tuneup", "augment_prototypes", "recalibrate_bn"):
            if not isinstance(getattr(self, name), bool):  # a Python bool: a NumPy one would not survive a checkpoint
                raise PDDLiteError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def reads(self, *stages: str) -> dict[str, Any]:
        """The fields that ``stages`` read (:data:`STAGES`), by name: what a checkpoint of those
        stages must match, what the pre-training cache is keyed by, and (every stage) what the
        settings fingerprint of a result row covers."""
        return {name: getattr(self, name) for name in self.fields_of(*stages)}

    def architecture(self, image_shape: tuple[int, ...]) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into these networks."""
        return {"image_shape": list(image_shape), "width": self.width, "layout": self.layout}


#: the PDDConfig fields that PDD's constructor takes as keyword parameters (``variant`` is its own)
CONFIG_PARAMS = tuple(f.name for f in dataclasses.fields(PDDConfig) if f.name != "variant")

#: the stages whose fields shape the trained weights: what a checkpoint must have been trained with
TRAINED = ("pretrain", "both", "tuneup")


class PDD(Detector):
    """Prototype Data Description (Sec. 4): a :class:`~pddlite.detector.Detector`, ``fit`` / ``decision_function``.

    Args:
        profile: ``"paper"``, ``"colab"``, ``"quick"`` or ``"smoke"`` (default: ``$PDDLITE_PROFILE``, else quick):
            network width and the Table 2 schedule.
        variant: ``"pddlite"`` (the default: measured on validation tasks), ``"paper"`` (Eqs. 5-7 as
            the text states them) or ``"reference"`` (the authors' sample notebook); see
            :mod:`pddlite.variants`.
        device, seed, progress, precision, deterministic, compile: the run-time options
            (:mod:`pddlite.runtime`); ``compile`` compiles the generator's and the discriminator's
            forward passes for both stages (:mod:`pddlite.trainer`).
        cuda_graphs: replay each whole training step of both stages as one CUDA graph
            (:mod:`pddlite.graphs`; a CUDA device, bf16 or fp32, and the Eq. 5-6 margin terms of
            the ``paper`` and ``pddlite`` variants). Like ``compile``, it changes speed, not settings.
        checkpoint: a file to save training state to after every epoch and resume from.
        pretrain_cache: a folder of pre-trained models keyed by what pre-training depends on (its
            fields, the seed, the unlabeled images). Variants that share their pre-training (the
            ``paper`` and ``pddlite`` variants do) pre-train once; a cached model is the same model.
        contamination: the share of training images above ``threshold_`` (for ``predict``).
        layout, ..., max_train_images: every :class:`PDDConfig` field (``beta``, ``bandwidth``,
            ``tune_epochs``, ...); ``None`` (the default) takes the variant's value.

    ``fit`` always starts from nothing (fresh networks); a ``checkpoint`` is how a run resumes.
    Fitted attributes: ``config_`` (the resolved :class:`PDDConfig`), ``profile_``, ``runtime_``,
    ``schedule_``, ``generator_``, ``discriminator_``, ``pretrained_state_`` (both networks'
    weights right after pre-training), ``prototype_embeddings_``, ``prototype_labels_``,
    ``scorer_`` (:class:`~pddlite.scoring.PrototypeKDE` or :class:`~pddlite.scoring.UMAPKDE`),
    ``history_`` (per-epoch losses of each stage), ``stage_``, ``decision_scores_`` (the unlabeled
    training images' scores; under ``scoring="kde-pseudo"`` each without its own kernel),
    ``threshold_``, ``labels_``.
    """

    method: str = "pdd"
    uses_labels = "partial"

    def __init__(
        self, profile: str | None = None, variant: str = DEFAULT_VARIANT, device: str = "auto", seed: int = 0,
        checkpoint: str | os.PathLike | None = None, progress: bool = True,
        pretrain_cache: str | os.PathLike | None = None, precision: str = "auto", deterministic: bool = False,
        compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1, *,
        layout: str | None = None, keep_prototypes: bool | None = None, width: float | None = None,
        pretrain_epochs: int | None = None, pretrain_batch_size: int | None = None, tune_epochs: int | None = None,
        tune_batch_size: int | None = None, notebook_tune_batch_size: int | None = None, lr: float | None = None,
        margin: str | None = None, margin_lr: float | None = None, margin_steps: bool | None = None,
        beta: float | None = None, q_intra: float | None = None, q_inter: float | None = None,
        bandwidth: float | None = None, bandwidth_unit: str | None = None, adversarial_tuneup: bool | None = None,
        normalization: str | None = None, scoring: str | None = None, z_std: float | None = None,
        augment_prototypes: bool | None = None, recalibrate_bn: bool | None = None, ema_decay: float | None = None,
        max_train_images: int | None = None,
    ):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        """The profile and run-time options (:class:`~pddlite.detector.Detector`), and ``config_``:
        the variant's :class:`PDDConfig` with every field given here."""
        out = super()._resolve()
        config = PDDConfig.for_variant(self.variant, out["profile_"], **{k: getattr(self, k) for k in CONFIG_PARAMS})
        rt = out["runtime_"]
        if rt.cuda_graphs:  # said now, not after the data is read
            refuse(unsupported_setting(rt.device, rt.precision, rt.compile) or (
                None if MARGIN_TERMS[config.margin].graph_safe
                else f"the {self.variant!r} variant's margin terms cannot be a CUDA graph"))
        file_path("checkpoint", self.checkpoint)
        file_path("pretrain_cache", self.pretrain_cache)
        return {**out, "config_": config}

    def _settings(self) -> tuple[Any, PDDConfig]:
        """(profile, configuration): the fitted ones, or the parameters resolved now."""
        resolved = vars(self) if hasattr(self, "config_") else self._resolve()
        return resolved["profile_"], resolved["config_"]

    # ------------------------------------------------------------------ schedule
    def schedule(self, dataset: str, n_images: int | None = None) -> dict[str, int]:
        """Epochs and batch sizes of both stages for ``dataset`` (Table 2, scaled by the profile).

        Where the profile sizes the tune-up by optimiser steps (``quick``, ``colab``) and
        ``n_images``, the number of unlabeled training images, is given, the tune-up gets the
        fewest epochs that make those steps, and the optimiser steps of both stages are included.
        """
        prof, c = self._settings()
        pb, pe = prof.schedule("pdd-pretrain", dataset, n_images)
        tb, te = prof.schedule("pdd-tuneup", dataset)  # epochs from steps once the batch is known
        if c.notebook_tune_batch_size is not None and prof.batch_size is None:
            tb = c.notebook_tune_batch_size
        te = prof.epochs_for_steps("pdd-tuneup", te, tb, n_images)
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

    # ------------------------------------------------------------------ the lifecycle
    def fit(self, X: Task | torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None) -> "PDD":
        """Pre-train, tune up and fit the scorer on a task's unlabeled images and prototypes.

        ``X`` is a :class:`~pddlite.Task`, or images in [-1, 1] with ``y`` the class of each
        prototype and -1 for every unlabeled image (:func:`pddlite.data.task_from_partial_labels`).
        Every fit starts from fresh networks; with a ``checkpoint`` it resumes what that file holds.
        """
        task = self._begin(training_task(X, y, self.seed))
        self._train(task, until=Stage.DONE)
        return self._fit_scorer(task)

    def pretrain(self, task: Task) -> "PDD":
        """Unsupervised GAN pre-training on the unlabeled normal images (Table 2 schedule), from
        fresh networks, then the scorer, so that the pre-trained model can be scored (the baseline
        of Figs. 9-11)."""
        task = self._begin(task)
        self._train(task, until=Stage.PRETRAINED)
        return self._fit_scorer(task)

    def tune_up(self, task: Task, after_epoch: Callable[[Any], None] | None = None) -> "PDD":
        """The margin tune-up on the prototypes (Eqs. 5-6) of the task this model was pre-trained
        on, then the scorer (Eq. 7).

        ``after_epoch(trainer)`` is called after each tune-up epoch, once the checkpoint is written
        (:func:`pddlite.ablation.tuneup_curve` scores the model there); it must not train.
        """
        task = self._held(task, "tune_up")
        self._train(task, until=Stage.DONE, after_epoch=after_epoch)
        return self._fit_scorer(task)

    def fit_scorer(self, task: Task) -> "PDD":
        """Fit the scorer (Eq. 7) on ``task``'s prototypes with the current networks; no training.

        ``task`` is the task this model was trained on (its prototypes may differ: the ablations
        of Sec. 5.3 rescore with fewer or wrongly labeled ones). With ``recalibrate_bn`` the
        embedding network is a copy of the discriminator whose BatchNorm statistics come from the
        task's unlabeled images; with ``bandwidth_unit="intra-median"`` the kernel width is
        ``bandwidth`` times the median within-class distance of the embedded prototypes.
        """
        return self._fit_scorer(self._held(task, "fit_scorer"))

    def _train(self, task: Task, until: Stage, after_epoch: Callable[[Any], None] | None = None) -> None:
        """Every stage and transition: NEW -> PRETRAINING -> PRETRAINED -> TUNING -> DONE.

        A checkpoint not read yet is read first: the run resumes in the stage it stopped in and
        skips the finished ones. A cached pre-training stands in for pre-training. Each stage
        saves the checkpoint after every epoch and when it ends (:meth:`_advance`)."""
        sched = self.schedule_ = self.schedule(task.dataset, len(task.train_images))
        self._resume()
        if self.stage_ is Stage.NEW:
            self._load_cached_pretraining(task, sched)
        if self.stage_ in (Stage.NEW, Stage.PRETRAINING):
            self._run_stage(Stage.PRETRAINING, self._pretrain_trainer(), task, sched["pretrain_epochs"],
                            sched["pretrain_batch_size"], "GAN pre-training")
            self.pretrained_state_ = {"generator": _clone_state(self.generator_),
                                      "discriminator": _clone_state(self.discriminator_)}
            self._advance(Stage.PRETRAINED)
            self._cache_pretraining(task, sched)
        if until is Stage.DONE and self.stage_ in (Stage.PRETRAINED, Stage.TUNING):
            if "generator" not in self.pretrained_state_ and self.stage_ is Stage.PRETRAINED:
                raise PDDLiteError("this model's pre-trained generator was not stored (a checkpoint of format "
                                   "pddlite-pdd-2 read after its tune-up): it can be scored but not tuned up again; "
                                   "delete that checkpoint to train anew, or run without the adversarial-only control")
            trainer = self._tuneup_trainer(task)
            self._run_stage(Stage.TUNING, trainer, task, sched["tune_epochs"], sched["tune_batch_size"],
                            "PDD tune-up", after_epoch)
            if trainer.ema is not None:  # the tuned model is the average of the tune-up's weights
                self.discriminator_.load_state_dict(trainer.ema.average.state_dict())
            self._advance(Stage.DONE)

    def _run_stage(self, stage: Stage, trainer: Any, task: Task, epochs: int, batch_size: int, desc: str,
                   after_epoch: Callable[[Any], None] | None = None) -> None:
        """Train one stage (resuming its trainer where a checkpoint stopped it), saving after each epoch."""
        if self.stage_ is stage and self._resume_state is not None:
            trainer.load_state_dict(self._resume_state)
        self._advance(stage)

        def epoch_done(t: Any) -> None:
            self._save(stage, t)
            if after_epoch is not None:
                after_epoch(t)

        trainer.fit(task.train_images, epochs, batch_size, self.runtime_.progress, desc, on_epoch_end=epoch_done)
        self.history_[stage.value] = trainer.history

    def _advance(self, stage: Stage) -> None:
        """The one place a model moves to another stage: the move, then the checkpoint says so.

        A finished stage (PRETRAINED, DONE) has no trainer state left to resume from."""
        self.stage_ = stage
        if stage in (Stage.PRETRAINED, Stage.DONE):
            self._resume_state = None
        self._save(stage, None)

    # ------------------------------------------------------------------ the task
    def _begin(self, task: Task) -> Task:
        """Start from nothing: forget any earlier fit, check and prepare ``task`` (once), and build
        fresh networks seeded by ``seed``; the checkpoint, if any, is read at the first stage."""
        self._start_fit()
        task = self._prepared(task, "fit")
        if len(torch.unique(task.prototype_labels)) < 2:  # said before any training, not after it
            raise PDDLiteError("PDD needs prototypes of at least two normal classes (Eq. 7 scales each class's "
                               "density by the other classes' prototypes)")
        seed_everything(self.runtime_.seed, self.runtime_.deterministic)
        g, d = make_gan(task.image_shape, self.config_.width, self.config_.layout)
        g.apply(init_weights)
        d.apply(init_weights)
        self.generator_, self.discriminator_ = place(g, self.device_), place(d, self.device_)
        self.image_shape_, self.dataset_ = task.image_shape, task.dataset
        self.task_identity_, self.unlabeled_digest_ = task.identity(), _unlabeled_digest(task)
        self.stage_ = Stage.NEW
        self.history_ = {"pretrain": [], "tuneup": []}
        self._expect_checkpoint()
        return task

    def _prepared(self, task: Task, call: str) -> Task:
        """``task`` as the stages read it: at most ``max_train_images`` unlabeled images (drawn with
        the seed), on the model's device."""
        if not isinstance(task, Task):
            raise PDDLiteError(f"{call}() takes a Task: build one with make_task(...) or make_task_from_arrays(...)")
        return task.subsample_train(self.config_.max_train_images, seed=self.runtime_.seed).to(self.device_)

    def _held(self, task: Task, call: str) -> Task:
        """``task`` prepared for a stage of a model that holds one: refused unless it is pre-trained
        and ``task`` has the image shape and the unlabeled images that its training read."""
        if getattr(self, "stage_", Stage.NEW) in (Stage.NEW, Stage.PRETRAINING):
            raise PDDLiteError(f"pre-train first: call pretrain(task) (or fit(task)) before {call}(task)")
        task = self._prepared(task, call)
        if tuple(task.image_shape) != tuple(self.image_shape_):
            raise PDDLiteError(f"this model was built for {self.image_shape_} images, the task has {task.image_shape}")
        held = getattr(self, "unlabeled_digest_", None)
        if held is not None and _unlabeled_digest(task) != held:
            raise PDDLiteError(f"{call}(task) was given another task than this model was trained on (other unlabeled "
                               "images): pass that task, or start anew with fit(task)")
        return task

    # ------------------------------------------------------------------ trainers
    def _pretrain_trainer(self) -> GANTrainer:
        """The GAN pre-training's trainer, on this model's networks."""
        return GANTrainer(self.generator_, self.discriminator_, self.config_.lr, z_std=self.config_.z_std,
                          runtime=self.runtime_)

    def _tuneup_trainer(self, task: Task) -> TuneUpTrainer:
        """The tune-up's trainer, on this model's networks and ``task``'s prototypes."""
        c, rt = self.config_, self.runtime_
        return TuneUpTrainer(
            self.generator_, self.discriminator_, task.prototype_images, task.prototype_labels,
            margin=c.margin, lr=c.lr, margin_lr=c.margin_lr, margin_steps=c.margin_steps, beta=c.beta,
            q_intra=c.q_intra, q_inter=c.q_inter, adversarial=c.adversarial_tuneup,
            normalization=c.normalization, z_std=c.z_std, augment=c.augment_prototypes,
            ema_decay=c.ema_decay, runtime=rt.with_seed(rt.seed + TUNEUP_SEED_OFFSET),
        )

    def training_estimate(self, task: Task, ablation: bool = False, *,
                          flops_per_second: float | None = None) -> TrainingEstimate:
        """How long pre-training and the tune-up on ``task`` will train (:mod:`pddlite.timing`):
        one timed step of each, on networks built as :meth:`fit` builds them but on a copy of this
        model, with the random states kept. ``ablation`` counts the tune-up twice, as the ablation
        row (:func:`pddlite.experiment.pdd_row`) runs it with the adversarial-only control. The
        whole schedule is counted, as if no pre-training were cached and no checkpoint resumed.
        ``flops_per_second``: count each step's FLOPs and assume that rate, for a device that is not here."""
        scratch = copy.deepcopy(self)
        with random_state_kept(scratch._resolve()["runtime_"].device):
            task = scratch._begin(task)
            sched = scratch.schedule(task.dataset, len(task.train_images))
            stages = [TimedStage(scratch._pretrain_trainer(), sched["pretrain_batch_size"], sched["pretrain_steps"]),
                      TimedStage(scratch._tuneup_trainer(task), sched["tune_batch_size"],
                                 sched["tune_steps"] * (2 if ablation else 1))]
        return estimate_training(stages, task.train_images, flops_per_second)

    # ------------------------------------------------------------------ the pre-training cache
    def _cached_pretraining(self, task: Task, sched: dict[str, int]) -> Path | None:
        """The cache file of this pre-training: keyed by every field it reads (:meth:`PDDConfig.reads`),
        its schedule, the seed, the precision and the unlabeled images."""
        if self.pretrain_cache is None:
            return None
        what = {**self.config_.reads("pretrain", "both"), "seed": self.runtime_.seed,
                "epochs": sched["pretrain_epochs"], "batch_size": sched["pretrain_batch_size"],
                "image_shape": list(task.image_shape), "precision": self.precision_.name, "format": CHECKPOINT_FORMAT}
        digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode())
        digest.update(task.train_images.detach().cpu().float().contiguous().numpy().tobytes())
        return Path(self.pretrain_cache) / f"pretrained-{digest.hexdigest()[:24]}.pt"

    def _load_cached_pretraining(self, task: Task, sched: dict[str, int]) -> None:
        cached = self._cached_pretraining(task, sched)
        if cached is not None and cached.exists():
            state = read_checkpoint(cached)
            _load_networks(self, state, cached)
            self.history_["pretrain"] = list(state["history"]["pretrain"])
            self.pretrained_state_ = {"generator": _clone_state(self.generator_),
                                      "discriminator": _clone_state(self.discriminator_)}
            self._advance(Stage.PRETRAINED)

    def _cache_pretraining(self, task: Task, sched: dict[str, int]) -> None:
        cached = self._cached_pretraining(task, sched)
        if cached is not None and not cached.exists():
            _atomic_save(self._state(Stage.PRETRAINED, None), cached)

    # ------------------------------------------------------------------ copies
    def copy_with(
        self, *, checkpoint: str | os.PathLike | None = None, progress: bool | None = None, **options: Any
    ) -> "PDD":
        """A deep copy with some :class:`PDDConfig` fields changed and its own checkpoint (or none).

        Tunes up one pre-trained model in several ways (the ablations of Sec. 5.3) without
        pre-training again. The copy reads ``checkpoint`` at its next stage if that file exists.
        """
        unknown = set(options) - {"variant", *CONFIG_PARAMS}
        if unknown:
            raise PDDLiteError(f"unknown PDD option(s): {', '.join(sorted(unknown))}")
        model = copy.deepcopy(self)
        model.set_params(checkpoint=checkpoint, **options)
        file_path("checkpoint", checkpoint)
        if hasattr(self, "config_"):
            model.config_ = dataclasses.replace(self.config_, **options)
            model.config_.validate()
        if progress is not None:
            model.progress = progress
            if hasattr(self, "runtime_"):
                model.runtime_ = dataclasses.replace(self.runtime_, progress=flag("progress", progress))
        model._expect_checkpoint()
        return model

    def pretrained_model(self, task: Task) -> "PDD":
        """A copy as it was right after pre-training, scorer fitted on ``task`` (Figs. 9-11's baseline).

        Also works after a finished or resumed checkpoint: both pre-trained networks are stored.
        """
        if not hasattr(self, "pretrained_state_"):
            raise PDDLiteError("this model has no pre-trained state yet: call pretrain(task) first")
        model = self.copy_with()
        for name, weights in self.pretrained_state_.items():
            getattr(model, f"{name}_").load_state_dict(weights)
        model.stage_ = Stage.PRETRAINED
        return model.fit_scorer(task)

    # ------------------------------------------------------------------ scoring
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """f(x): the (normalised) discriminator features, eval mode, on the model's device."""
        images = self.checked_images(images).to(self.device_)
        return embed(self._embedder(), images, self.config_.normalization, getattr(self, "center_", None))

    def _embedder(self) -> torch.nn.Module:
        """The network that embeds: the discriminator, or its BatchNorm-recalibrated copy."""
        embedder = getattr(self, "embedder_", None)
        return embedder if embedder is not None else self.discriminator_

    def _fit_scorer(self, task: Task) -> "PDD":
        """The scorer on a prepared ``task``, and the training images' scores and threshold."""
        c = self.config_
        self.embedder_ = None
        if c.recalibrate_bn:
            self.embedder_ = recalibrate_batchnorm(copy.deepcopy(self.discriminator_), task.train_images)
        self.center_ = prototype_center(self._embedder(), task.prototype_images)
        self.prototype_embeddings_ = self.embed(task.prototype_images)
        self.prototype_labels_ = task.prototype_labels.to(self.device_)
        z_train = self.embed(task.train_images)
        self.scorer_ = make_scorer(c.scoring, c.bandwidth, c.bandwidth_unit, self.prototype_embeddings_,
                                   self.prototype_labels_, lambda: z_train, self.runtime_.seed)
        held = len(self.prototype_embeddings_) if c.scoring == "kde-pseudo" else None
        self._set_threshold(training_scores(self.scorer_, z_train, held).cpu().numpy())
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
        return hasattr(self, "discriminator_") and getattr(self, "stage_", Stage.NEW) not in (Stage.NEW, Stage.PRETRAINING)

    # ------------------------------------------------------------------ checkpoints
    def _state(self, stage: Stage, trainer: Any) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": dataclasses.asdict(self.config_),
            "architecture": self.config_.architecture(self.image_shape_),
            "dataset": self.dataset_,
            "task": getattr(self, "task_identity_", None),
            "unlabeled": getattr(self, "unlabeled_digest_", None),
            "seed": self.runtime_.seed,
            "stage": str(stage),
            "profile": self.profile_.name,
            "history": self.history_,
            "generator": self.generator_.state_dict(),
            "discriminator": self.discriminator_.state_dict(),
        }
        if hasattr(self, "pretrained_state_"):
            state["pretrained"] = self.pretrained_state_
        if trainer is not None:
            state["trainer"] = trainer.state_dict()
            state["history"] = {**self.history_, str(stage): trainer.history}
        return state

    def _expect_checkpoint(self) -> None:
        """Read ``checkpoint`` (when there is one) at the next stage: :meth:`_resume`."""
        self._checkpoint_unread, self._resume_state = self.checkpoint is not None, None

    def _save(self, stage: Stage, trainer: Any) -> None:
        if self.checkpoint is not None:
            _atomic_save(self._state(stage, trainer), Path(self.checkpoint))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model (networks, configuration, history) to ``path``."""
        self.check_fitted()
        return _atomic_save(self._state(self.stage_, None), Path(path))

    def _resume(self) -> None:
        """Load ``checkpoint`` once, if it exists, to resume or skip finished stages."""
        if not getattr(self, "_checkpoint_unread", False):
            return
        self._checkpoint_unread = False
        path = Path(self.checkpoint)
        if path.exists():
            state = read_checkpoint(path)
            self._restore(state, path, resuming=True)
            self._resume_state = state.get("trainer")

    def _restore(self, state: dict[str, Any], path: Path, resuming: bool = False) -> None:
        """Load ``state`` (read from ``path``) into this model; resuming, it must be this task's too."""
        mine = self.config_.architecture(self.image_shape_)
        if state["architecture"] != mine:
            raise PDDLiteError(
                f"checkpoint {path} is for architecture {state['architecture']}, this model is {mine}; "
                "use another checkpoint path or the same width/variant/image size"
            )
        # the scoring fields change no weight (fit_scorer refits them), so a checkpoint serves any of them
        theirs = {k: state["config"][k] for k in PDDConfig.fields_of(*TRAINED)}
        if theirs != self.config_.reads(*TRAINED) or state["seed"] != self.runtime_.seed:
            raise PDDLiteError(f"checkpoint {path} was trained with other hyper-parameters or seed; "
                               "delete it or use another path")
        if resuming:
            _check_task(state, self.task_identity_, path)
        _load_networks(self, state, path)
        if "pretrained" in state:
            self.pretrained_state_ = dict(state["pretrained"])
        elif "pretrained_discriminator" in state:  # format pddlite-pdd-2: the discriminator alone
            self.pretrained_state_ = {"discriminator": state["pretrained_discriminator"]}
        if state["stage"] in (Stage.PRETRAINED, Stage.PRETRAINING) and hasattr(self, "pretrained_state_"):
            self.pretrained_state_.setdefault("generator", _clone_state(self.generator_))
        self.history_ = {k: list(v) for k, v in state["history"].items()}
        self.stage_ = Stage(state["stage"])

    @classmethod
    def load(cls, path: str | os.PathLike, task: Task | None = None, device: str = "auto",
             progress: bool = True) -> "PDD":
        """Load a model written by :meth:`save` (or a finished checkpoint).

        Pass the ``task`` to fit the scorer on its prototypes right away (the prototypes are not
        stored in the file, so the same task is needed to score as when training).
        """
        path = Path(path)
        state = read_checkpoint(path)
        # files written before the profile was stored were scored as trained; their profile only
        # sizes further training, and "paper" (Table 2 itself) is the one that assumes nothing
        model = cls(profile=state.get("profile", "paper"), device=device, seed=int(state["seed"]),
                    progress=progress, **state["config"])
        model._start_fit()
        model.config_ = PDDConfig(**state["config"])
        model.config_.validate()
        arch = state["architecture"]
        try:
            g, d = make_gan(tuple(arch["image_shape"]), arch["width"], arch["layout"])
        except PDDLiteError as err:
            raise PDDLiteError(f"checkpoint {path}: {err}") from err
        model.generator_, model.discriminator_ = place(g, model.device_), place(d, model.device_)
        model.image_shape_ = tuple(arch["image_shape"])
        model.dataset_ = state["dataset"]
        model._restore(state, path)
        model.task_identity_, model.unlabeled_digest_ = state.get("task"), state.get("unlabeled")
        if task is not None:
            if model.task_identity_ is not None:  # the scorer is fitted on the task: it must be the model's
                _check_task(state, model._prepared(task, "load").identity(), path, what="loaded for")
            model.fit_scorer(task)
        return model


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a pddlite checkpoint safely (``weights_only=True``) and check that it is one, whole."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise PDDLiteError(f"no checkpoint at {path}") from err
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise PDDLiteError(f"{path} is not a readable pddlite checkpoint ({type(err).__name__}); delete it or retrain") from err
    fmt = state.get("format") if isinstance(state, dict) else None
    if isinstance(fmt, str) and fmt.startswith("pddlite-pdd-") and fmt != CHECKPOINT_FORMAT and fmt not in OLDER_FORMATS:
        raise PDDLiteError(f"{path} is a pddlite checkpoint of format {fmt!r}, which this pddlite does not read (it "
                           f"reads {CHECKPOINT_FORMAT!r} and {', '.join(map(repr, OLDER_FORMATS))}): delete it and "
                           "train again, or load it with the pddlite version that wrote it")
    if fmt != CHECKPOINT_FORMAT and fmt not in OLDER_FORMATS:
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
    if "profile" in state:
        try:
            get_profile(state["profile"])
        except PDDLiteError as err:
            raise PDDLiteError(f"{path} was written under a profile this pddlite does not know ({err}); "
                               "delete it or retrain") from err
    return state


#: what every PDD checkpoint holds (the pre-trained networks and trainer state are optional)
_CHECKPOINT_KEYS = frozenset({"config", "architecture", "dataset", "seed", "stage", "history", "generator",
                              "discriminator"})


def _is_weights(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _damaged_fields(state: dict[str, Any]) -> str:
    """What in a checkpoint is not of its kind (empty when all is well)."""
    arch = state["architecture"]
    if state["stage"] not in {s.value for s in Stage}:
        return f"unknown stage {state['stage']!r}"
    if isinstance(state["seed"], bool) or not isinstance(state["seed"], int):
        return f"seed {state['seed']!r} is not a whole number"
    if not isinstance(arch, dict) or not {"image_shape", "width", "layout"} <= set(arch):
        return "its architecture does not give image_shape, width and layout"
    history = state["history"]
    if not isinstance(history, dict) or not all(isinstance(v, list) and all(isinstance(r, dict) for r in v)
                                                for v in history.values()):
        return "its history is not a mapping of stages to lists of epochs"
    if state.get("task") is not None and not isinstance(state["task"], dict):
        return "its task is not a mapping"
    pretrained = state.get("pretrained", {})
    networks = {"generator": state["generator"], "discriminator": state["discriminator"],
                **({"pretrained_discriminator": state["pretrained_discriminator"]} if "pretrained_discriminator" in state else {}),
                **({f"pretrained {k}": v for k, v in pretrained.items()} if isinstance(pretrained, dict) else {"pretrained": None})}
    bad = [name for name, weights in networks.items() if not _is_weights(weights)]
    if bad:
        return f"its {', '.join(bad)} weights are not a mapping of tensors"
    return ""


def _load_networks(model: PDD, state: dict[str, Any], path: Path) -> None:
    """The checkpoint's generator and discriminator weights into ``model``'s networks."""
    try:
        model.generator_.load_state_dict(state["generator"])
        model.discriminator_.load_state_dict(state["discriminator"])
    except RuntimeError as err:
        raise PDDLiteError(f"checkpoint {path} does not fit this architecture ({str(err).splitlines()[0]})") from err


def _unlabeled_digest(task: Task) -> str:
    """A digest of a prepared task's unlabeled images: what pre-training read of it."""
    return hashlib.sha256(task.train_images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


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


def _atomic_save(state: dict[str, Any], path: Path) -> Path:
    return write_atomically(path, lambda fh: torch.save(state, fh))


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}

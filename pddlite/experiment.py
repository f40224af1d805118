"""Run one method on one leave-one-class-out task and return a result row (Sec. 5).

A result row is a flat dict of plain values (JSON-ready): the task (dataset, anomaly, shots,
seed, and ``split``: the official ``"test"`` split, or the ``"validation"`` task of
:func:`pddlite.make_validation_task` built from training data alone), the run (method, profile,
variant, device, and a fingerprint of its settings: :func:`settings_fingerprint`), AUROC and
AUPRC on that split, the wall time, and for PDD its schedule and the same metrics after
pre-training alone and after the same tune-up with its margin steps switched off (the isolated
ablation of Figs. 9-11: pre-training, adversarial steps only, the full tune-up). Metrics are
always computed in eval mode after a fixed number of epochs: no epoch is ever selected on the
split that is scored.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from pathlib import Path
from typing import Any, Sequence

from .data import Task, make_task, make_validation_task
from .errors import PDDLiteError
from .methods import METHODS
from .metrics import evaluate
from .options import choice
from .pdd import CONFIG_PARAMS, PDD, STAGES, PDDConfig, Stage
from .profiles import Profile, get_profile
from .runtime import RUNTIME_OPTIONS, Runtime
from .timing import announce
from .variants import DEFAULT_VARIANT

#: where a run is scored: the official test split, or the validation task built from training data
SPLITS = ("test", "validation")


def run_task(
    dataset: str = "mnist-5k",
    anomaly: int | Sequence[int] = 1,
    shots: int = 20,
    *,
    profile: str | None = None,
    method: str = "pdd",
    data_dir: str | Path | None = None,
    download: bool = True,
    split: str = "test",
    runtime: Runtime = Runtime(),
    where_honoured: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Build the task, train ``method`` on it, and return its result row (see module docstring).

    ``runtime`` holds the run-time options (:class:`pddlite.runtime.Runtime`): its seed draws the
    task and seeds the training; its precision, cuDNN mode (:mod:`pddlite.device`), ``compile``
    (:mod:`pddlite.trainer`) and ``cuda_graphs`` (:mod:`pddlite.graphs`) say how the run computes.
    The row records the seed, the precision and whether it compiled or used graphs; none enters the
    settings fingerprint (they change how a run computes, or which task it is, not what it is asked
    to compute).

    ``split="validation"`` trains and scores on the validation task of the same dataset, class,
    shots and seed (:func:`pddlite.make_validation_task`): where settings are chosen.

    A method that cannot honour a run-time option (:attr:`pddlite.detector.Detector.unsupported_runtime`:
    the pixel checks train nothing, the baselines replay no CUDA graphs) refuses it in one line;
    with ``where_honoured`` (a grid of many methods) it runs with that option at its default instead.

    ``options`` go to the method's runner (for PDD: ``variant``, ``checkpoint``, ``ablation`` and
    any :class:`pddlite.PDDConfig` field). The trained model is returned under the key ``model``
    (not JSON: drop it before writing the row).
    """
    choice("method", method, sorted(METHODS))
    choice("split", split, SPLITS)
    given = sorted(set(options) & set(RUNTIME_OPTIONS))
    if given:
        raise PDDLiteError(f"run_task takes the run-time options as one runtime=Runtime(...), not as "
                           f"{', '.join(given)}=...: pass runtime=Runtime({given[0]}=...)")
    fingerprint = settings_fingerprint(method, profile, **options)  # as asked, before options are taken apart
    if where_honoured:
        runtime = runtime.without(METHODS[method].unsupported_runtime)
    ablation = options.pop("ablation", True) if method == "pdd" else True
    known = [name for name in inspect.signature(METHODS[method]).parameters if name not in RUNTIME_OPTIONS]
    unknown = sorted(set(options) - set(known))
    if "variant" in unknown:
        raise PDDLiteError(f"{method} has no variant {options['variant']!r}; variants belong to PDD (drop --variant)")
    if unknown:
        raise PDDLiteError(f"{method} has no option(s) {', '.join(unknown)}; its options: {', '.join(known)}")
    prof = get_profile(profile)
    # the detector checks every option now, before the data is read, not after
    model = METHODS[method](profile=prof.name, **runtime.params(), **options)
    resolved = model._resolve()
    rt = resolved["runtime_"]
    task = build_task(dataset, anomaly, shots, rt.seed, method, prof, split, data_dir, rt.device, download,
                      keep_prototypes=method == "pdd" and resolved["config_"].keep_prototypes)
    start = time.perf_counter()
    result = pdd_row(model, task, ablation) if method == "pdd" else model.run(task)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "dataset": task.dataset,
        "anomaly": list(task.anomaly_classes) if len(task.anomaly_classes) > 1 else task.anomaly_classes[0],
        "shots": shots,
        "seed": rt.seed,
        "split": task.split,
        "method": method,
        "profile": prof.name,
        "variant": result.pop("variant", None),
        "device": str(rt.device),
        "precision": rt.precision.name,
        "compile": rt.compile,
        "cuda_graphs": rt.cuda_graphs,
        "settings": fingerprint,
        "data": task.identity()["data"],  # which images: a row of other data is never taken for this one
        "seconds": round(seconds, 2),
    }
    row.update(result)
    return row


def build_task(dataset: str, anomaly: int | Sequence[int], shots: int, seed: int, method: str, profile: Profile,
               split: str = "test", data_dir: str | Path | None = None, device: Any = None, download: bool = True,
               variant: str = DEFAULT_VARIANT, keep_prototypes: bool | None = None):
    """The task :func:`run_task` trains ``method`` on: the test or validation task, with the
    prototypes kept in the unlabeled set where PDD keeps them (``keep_prototypes``; ``None``: as
    ``variant`` does)."""
    keep = keep_prototypes if keep_prototypes is not None else (
        method == "pdd" and PDDConfig.for_variant(variant, profile).keep_prototypes)
    build = make_task if split == "test" else make_validation_task
    return build(dataset, anomaly, shots, seed, root=data_dir, device=device, download=download,
                 remove_prototypes=not keep)


def pdd_row(model: PDD, task: Task, ablation: bool = True) -> dict[str, Any]:
    """PDD's part of a result row: metrics after pre-training alone, after the adversarial steps
    alone, and after the tune-up (the isolated ablation of Figs. 9-11), with ``model`` (a
    :class:`~pddlite.PDD`, not fitted yet) trained on ``task``.

    With the sample notebook's transductive scoring (``scoring="umap"``) the row also gives the
    same model scored inductively (UMAP fitted on the unlabeled training embeddings) as
    ``inductive_auroc`` / ``inductive_auprc``, and says ``transductive: true``. With
    ``scoring="kde-pseudo"`` it also gives the tuned model under Eq. 7 on the prototypes alone
    (``prototypes_only_auroc`` / ``prototypes_only_auprc``): what the unlabeled images add.
    ``ablation=False`` skips the adversarial-only control (it costs one more tune-up). The control
    is tuned from the pre-trained networks, both of them: after a resumed checkpoint too, whose
    file keeps them (one of format pddlite-pdd-2, which keeps the discriminator alone, is refused
    for the control in one line). With ``progress``, the estimated training time is printed first.
    """
    if model.progress:
        announce(model.training_estimate(task, ablation=ablation))

    def metrics(scored: PDD) -> dict[str, float]:
        return evaluate(task.test_is_anomaly, scored.decision_function(task.test_images))

    model.pretrain(task)
    # a resumed checkpoint may already be past pre-training: score the stored pre-trained state
    pretrained = model if model.stage_ is Stage.PRETRAINED else model.pretrained_model(task)
    row: dict[str, Any] = {"variant": model.variant}
    before = metrics(pretrained)
    row.update(pretrain_auroc=before["auroc"], pretrain_auprc=before["auprc"])
    if ablation:
        control_checkpoint = None if model.checkpoint is None else Path(str(model.checkpoint) + ".adversarial-only")
        adv = metrics(pretrained.copy_with(margin_steps=False, checkpoint=control_checkpoint).tune_up(task))
        row.update(adversarial_only_auroc=adv["auroc"], adversarial_only_auprc=adv["auprc"])
    model.tune_up(task)
    after = metrics(model)
    row.update(auroc=after["auroc"], auprc=after["auprc"])
    row.update(model.schedule_)  # the epochs, batch sizes and optimiser steps both stages ran
    if model.config_.scoring == "umap":
        # transductive scoring (fitted on the scored set): report the inductive version beside it
        ind = metrics(model.copy_with(scoring="umap-inductive", progress=False).fit_scorer(task))
        row.update(transductive=True, inductive_auroc=ind["auroc"], inductive_auprc=ind["auprc"])
    if model.config_.scoring == "kde-pseudo":
        # the same tuned model under Eq. 7 on the prototypes alone: what the unlabeled images add
        only = metrics(model.copy_with(scoring="kde", progress=False).fit_scorer(task))
        row.update(prototypes_only_auroc=only["auroc"], prototypes_only_auprc=only["auprc"])
    row["model"] = model
    return row


#: options that say where a run keeps its files or how it computes, not what it computes
_NOT_SETTINGS = frozenset({*RUNTIME_OPTIONS, "checkpoint", "pretrain_cache"})


#: a row's metrics besides the final ones, by the suffix of the series that shows them: PDD's
#: ablation stages and the scoring checks (:func:`pdd_row`)
STAGE_FIELDS = {"-pretrain": "pretrain_", "-adversarial": "adversarial_only_", "-inductive": "inductive_",
                "-prototypes": "prototypes_only_"}


def row_problem(row: dict[str, Any]) -> str | None:
    """What keeps ``row`` from being a complete, finite result, in words; ``None`` when nothing does.

    Its metrics must be numbers in [0, 1] (not NaN, not text), its class, seed and shots whole
    numbers, and the fields that name its series names. :func:`pddlite.grid.replicate` re-runs such
    a row; a report leaves it out.
    """
    for key in ("auroc", "auprc", *(prefix + m for prefix in STAGE_FIELDS.values() for m in ("auroc", "auprc"))):
        value = row.get(key)
        if key in ("auroc", "auprc") or value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                return f"{key} is {value!r}, not a number in [0, 1]"
    anomaly = row["anomaly"]
    classes = anomaly if isinstance(anomaly, list) else [anomaly]
    if not classes or any(isinstance(a, bool) or not isinstance(a, int) for a in classes):
        return f"anomaly is {anomaly!r}, not a class number or a list of them"
    seed = row.get("seed", row.get("rep", 0))
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"seed is {seed!r}, not a whole number"
    shots = row.get("shots", 20)
    if isinstance(shots, bool) or not isinstance(shots, int):
        return f"shots is {shots!r}, not a whole number"
    if not isinstance(row["dataset"], str) or not isinstance(row["method"], str):
        return "dataset and method must be names"
    for key in ("profile", "split", "variant"):  # they name the series a row belongs to
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} is {row[key]!r}, not a name"
    return None


def settings_fingerprint(method: str, profile: str | Profile | None = None, **options: Any) -> str:
    """A short digest of every setting a run's numbers depend on besides its task and seed.

    It covers the profile's sizes for ``method`` (width, image cap, batch size, and the epochs or
    optimiser steps of the method's stages) and the method's options; for PDD, the whole resolved
    :class:`pddlite.PDDConfig` of its variant. The grid re-runs a finished row whose fingerprint
    differs from the run it is asked for, so a changed default never passes an old result as new.
    """
    prof = get_profile(profile)
    stages = sorted(k for k in {*prof.fixed_epochs, *prof.steps} if k == method or k.startswith(f"{method}-"))
    what: dict[str, Any] = {
        "method": method,
        "profile": {"width": prof.width, "epoch_fraction": prof.epoch_fraction, "min_epochs": prof.min_epochs,
                    "max_train_images": prof.max_train_images, "batch_size": prof.batch_size,
                    "epochs": {k: prof.fixed_epochs.get(k) for k in stages},
                    "steps": {k: prof.steps.get(k) for k in stages}},
        "options": {k: v for k, v in options.items() if k not in _NOT_SETTINGS},
    }
    if method == "pdd":
        config = PDDConfig.for_variant(options.get("variant", DEFAULT_VARIANT), prof,
                                       **{k: v for k, v in options.items() if k in CONFIG_PARAMS})
        what["config"] = config.reads(*STAGES)  # every field, whichever stage reads it
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

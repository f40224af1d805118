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

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

from .data import make_task, make_validation_task
from .device import choose_precision, resolve_device
from .methods import METHODS
from .options import flag
from .pdd import PDDConfig
from .variants import DEFAULT_VARIANT
from .profiles import Profile, get_profile

#: where a run is scored: the official test split, or the validation task built from training data
SPLITS = ("test", "validation")


def run_task(
    dataset: str = "mnist-5k",
    anomaly: int | Sequence[int] = 1,
    shots: int = 20,
    seed: int = 0,
    profile: str | None = None,
    method: str = "pdd",
    device: str = "auto",
    data_dir: str | Path | None = None,
    progress: bool = True,
    download: bool = True,
    split: str = "test",
    precision: str = "auto",
    deterministic: bool = False,
    compile: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Build the task, train ``method`` on it, and return its result row (see module docstring).

    ``precision`` and ``deterministic`` are the training precision and cuDNN mode
    (:mod:`pddlite.device`); ``compile`` compiles the networks' forward passes for training
    (:mod:`pddlite.trainer`); PDD's ``cuda_graphs`` option replays its training steps as CUDA graphs
    (:mod:`pddlite.graphs`). The row records the precision and whether it compiled or used graphs;
    none enters the settings fingerprint (they change how a run computes, not what it is asked to
    compute).

    ``split="validation"`` trains and scores on the validation task of the same dataset, class,
    shots and seed (:func:`pddlite.make_validation_task`): where settings are chosen.

    ``options`` go to the method's runner (for PDD: ``variant``, ``checkpoint``, ``ablation`` and
    any :class:`pddlite.PDDConfig` field). The trained model is returned under the key ``model``
    (not JSON: drop it before writing the row).
    """
    from .errors import PDDLiteError

    if method not in METHODS:
        raise PDDLiteError(f"unknown method {method!r}; choose one of: {', '.join(sorted(METHODS))}")
    if split not in SPLITS:
        raise PDDLiteError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    compile = flag("compile", compile)  # before the data is read, not after
    prof = get_profile(profile)
    dev = resolve_device(device)
    precision = choose_precision(dev, precision).name
    task = build_task(dataset, anomaly, shots, seed, method, prof, split, data_dir, dev, download,
                      options.get("variant", DEFAULT_VARIANT))
    start = time.perf_counter()
    result = METHODS[method].run(task, prof.name, seed, str(dev), progress=progress, precision=precision,
                                 deterministic=deterministic, compile=compile, **options)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "dataset": task.dataset,
        "anomaly": list(task.anomaly_classes) if len(task.anomaly_classes) > 1 else task.anomaly_classes[0],
        "shots": shots,
        "seed": seed,
        "split": task.split,
        "method": method,
        "profile": prof.name,
        "variant": result.pop("variant", None),
        "device": str(dev),
        "precision": precision,
        "compile": bool(compile),
        "cuda_graphs": bool(options.get("cuda_graphs", False)),
        "settings": settings_fingerprint(method, prof, **options),
        "data": task.identity()["data"],  # which images: a row of other data is never taken for this one
        "seconds": round(seconds, 2),
    }
    row.update(result)
    return row


def build_task(dataset: str, anomaly: int | Sequence[int], shots: int, seed: int, method: str, profile: Profile,
               split: str = "test", data_dir: str | Path | None = None, device: Any = None, download: bool = True,
               variant: str = DEFAULT_VARIANT):
    """The task :func:`run_task` trains ``method`` on: the test or validation task, with the
    prototypes kept in the unlabeled set where PDD's variant keeps them."""
    keep = method == "pdd" and PDDConfig.for_variant(variant, profile).keep_prototypes
    build = make_task if split == "test" else make_validation_task
    return build(dataset, anomaly, shots, seed, root=data_dir, device=device, download=download,
                 remove_prototypes=not keep)


#: options that say where a run keeps its files or how it reports, not what it computes
_NOT_SETTINGS = frozenset({"checkpoint", "pretrain_cache", "progress", "cuda_graphs"})  # where or how fast, not what


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
        fields = {f.name for f in dataclasses.fields(PDDConfig)}
        config = PDDConfig.for_variant(options.get("variant", DEFAULT_VARIANT), prof,
                                       **{k: v for k, v in options.items() if k in fields and k != "variant"})
        what["config"] = dataclasses.asdict(config)
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

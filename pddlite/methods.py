"""Every method that ``pddlite run --method`` and the grid know: one table, written out below.

A method is a runner, ``run(task, profile, seed, device, progress, precision, deterministic,
**options) -> dict`` of metrics (and the trained ``model``), that :func:`pddlite.experiment.run_task`
turns into a result row. Adding a baseline is one file in :mod:`pddlite.baselines` and one line
in :data:`METHODS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .baselines import EGBAD, MCDD, DeepSVDD, GANomaly, PixelCentroid, PixelKNN
from .baselines._base import make_runner
from .baselines.pixel import make_pixel_runner
from .metrics import evaluate
from .pdd import PDD, Stage
from .variants import DEFAULT_VARIANT


def run_pdd(task, profile, seed, device, progress=True, precision="auto", deterministic=False,
            variant=DEFAULT_VARIANT, checkpoint=None, ablation=True, pretrain_cache=None, **options) -> dict[str, Any]:
    """PDD: metrics after pre-training alone, after the adversarial steps alone, and after the tune-up.

    With the sample notebook's transductive scoring (``scoring="umap"``) the row also gives the
    same model scored inductively (UMAP fitted on the unlabeled training embeddings) as
    ``inductive_auroc`` / ``inductive_auprc``, and says ``transductive: true``.
    ``ablation=False`` skips the adversarial-only control (it costs one more tune-up);
    ``pretrain_cache`` is a folder that lets variants with the same pre-training share it.
    """
    model = PDD(profile=profile, variant=variant, device=device, seed=seed, checkpoint=checkpoint,
                progress=progress, pretrain_cache=pretrain_cache, precision=precision,
                deterministic=deterministic, **options)
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
    row["model"] = model
    return row


#: method name -> runner. PDD first, then the paper's baselines, Deep SVDD and the pixel-space checks.
METHODS: dict[str, Callable[..., dict[str, Any]]] = {
    "pdd": run_pdd,
    "egbad": make_runner(EGBAD),
    "ganomaly": make_runner(GANomaly),
    "mcdd": make_runner(MCDD),
    "deepsvdd": make_runner(DeepSVDD),
    "pixel-knn": make_pixel_runner(PixelKNN),
    "pixel-centroid": make_pixel_runner(PixelCentroid),
}

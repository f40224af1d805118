"""Ablations: one pre-training, many tune-ups (Sec. 5.3, and the sensitivities the paper leaves open).

The GAN pre-training does not see the prototypes' labels, so every ablation of the tune-up can
start from one pre-trained model: :func:`tune_up_from` tunes a copy of it with some options
changed, and :func:`sweep` does so for a list of values and returns one result row per value.

:func:`tuneup_curve` tunes a copy and scores it after every epoch (with ``margin_steps=False``:
the adversarial-only control that every PDD row records); :func:`rescore` and :func:`rescored`
score a model's embedding again with another scoring (Eq. 7's bandwidth, ``"kde-pseudo"``, ...)
without training.

Task transforms for the paper's "future work" (Sec. 6: sensitivity to noise and to the number
of prototypes):

* :func:`with_wrong_labels`: a fraction of the prototypes carry the label of another normal class.
* :func:`with_shots`: the first K prototypes of each class of a task (K no larger than its shots).
  The prototypes of :func:`pddlite.data.make_task` are nested: for one seed, the K-shot prototypes
  are the first K of the 20-shot ones. So a task built with the largest K, with all its prototypes
  kept out of the unlabeled set, serves every smaller K with the same pre-training.

:func:`variant_steps` walks from pddlite's PDD through the paper's to the authors' sample
notebook, one difference at a time (see the notes on the sample notebook in docs/results.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Task
from .errors import PDDLiteError
from .options import choice
from .metrics import evaluate
from .pdd import PDD, PDDConfig, Stage
from .scoring import SCORINGS

#: Options that a copy of a pre-trained model may change: every PDDConfig field that the tune-up
#: or the scoring reads (its ``stage`` metadata), so that one pre-training serves the ablation.
TUNE_UP_OPTIONS = PDDConfig.fields_of("both", "tuneup", "scoring")

#: Task-level parameters :func:`sweep` knows besides the options above.
TASK_PARAMETERS = ("shots", "wrong_labels")


# --------------------------------------------------------------------------- task transforms


def with_wrong_labels(task: Task, fraction: float, seed: int = 0) -> Task:
    """A copy of ``task`` in which ``fraction`` of the prototypes carry a wrong label.

    round(fraction x number of prototypes) prototypes, drawn at random with ``seed``, each get the
    label of another normal class drawn uniformly; images and everything else are unchanged. The
    drawn prototypes are spread over the classes at random, so a class may lose more than others.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise PDDLiteError(f"fraction must lie in [0, 1], got {fraction}")
    if len(task.normal_classes) < 2:
        raise PDDLiteError("wrong labels need at least two normal classes")
    labels = task.prototype_labels.clone()
    n = int(round(float(fraction) * len(labels)))
    if n == 0:
        return replace(task, prototype_labels=labels)
    g = torch.Generator().manual_seed(int(seed))
    flip = torch.randperm(len(labels), generator=g)[:n]
    normal = torch.tensor(task.normal_classes, dtype=labels.dtype)
    for i in flip.tolist():
        others = normal[normal != labels[i].cpu()]
        labels[i] = others[torch.randint(len(others), (1,), generator=g)].to(labels.device)
    return replace(task, prototype_labels=labels)


def with_shots(task: Task, shots: int) -> Task:
    """A copy of ``task`` keeping the first ``shots`` prototypes of each normal class.

    The unlabeled set is left as it is (it already excludes every prototype of ``task``), so a
    model pre-trained on ``task`` serves the smaller task unchanged.
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or not 2 <= shots <= task.shots:
        raise PDDLiteError(f"shots must be an integer in [2, {task.shots}] (the task's own shots), got {shots!r}")
    keep = torch.zeros(len(task.prototype_labels), dtype=torch.bool)
    labels = task.prototype_labels.cpu()
    for c in task.normal_classes:
        members = torch.nonzero(labels == c).flatten()[:shots]
        keep[members] = True
    keep = keep.to(task.prototype_labels.device)
    return replace(task, shots=int(shots), prototype_images=task.prototype_images[keep],
                   prototype_labels=task.prototype_labels[keep])


# --------------------------------------------------------------------------- tuning copies


def tune_up_from(
    pretrained: PDD,
    task: Task,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    **options: Any,
) -> PDD:
    """Tune up a copy of a pre-trained :class:`~pddlite.PDD` with ``options`` changed; the original is untouched.

    ``options`` are :class:`~pddlite.PDDConfig` fields of the tune-up and scoring
    (:data:`TUNE_UP_OPTIONS`). With ``checkpoint``, the copy saves its tune-up there after every
    epoch and a later call with the same path and options loads (or resumes) it instead of
    training again: load-or-train for each point of a sweep.
    """
    if getattr(pretrained, "stage_", None) is not Stage.PRETRAINED:
        raise PDDLiteError(
            "tune_up_from needs a model right after pretrain(task) (stage 'pretrained'), "
            f"got stage '{getattr(pretrained, 'stage_', None)}'"
        )
    unknown = set(options) - set(TUNE_UP_OPTIONS)
    if unknown:
        raise PDDLiteError(
            f"{', '.join(sorted(unknown))} would change the pre-training; a copy can change only: "
            f"{', '.join(TUNE_UP_OPTIONS)}"
        )
    model = pretrained.copy_with(checkpoint=checkpoint, progress=progress, **options)
    return model.tune_up(task)


def rescored(model: PDD, task: Task, bandwidth: float | None = None, scoring: str | None = None,
             **options: Any) -> np.ndarray:
    """The test scores of ``model``'s current embedding, rescored on ``task`` without training.

    A copy of ``model`` with some scoring fields changed (:data:`SCORING_ONLY`: ``bandwidth``, in
    the model's ``bandwidth_unit`` unless ``bandwidth_unit`` is given too, ``scoring``, ...) fits
    its scorer exactly as :meth:`PDD.fit_scorer` does and scores ``task.test_images`` (higher =
    more anomalous; Eq. 7's rank-exact score for ``scoring="kde"``). ``scoring=None`` keeps the
    model's own. ``normalization`` may be changed too: it only re-reads the same networks (raw
    features, ``"none"``, are the paper's f(x)).
    """
    if scoring is not None:
        if scoring not in SCORINGS:
            raise PDDLiteError(f"rescore knows scoring {', '.join(map(repr, SCORINGS))}; got {scoring!r}")
        options["scoring"] = scoring
    allowed = set(SCORING_ONLY) | {"normalization"}
    unknown = set(options) - allowed
    if unknown:
        raise PDDLiteError(f"rescore changes only the scoring ({', '.join(sorted(allowed))}); "
                           f"got {', '.join(sorted(unknown))}")
    if bandwidth is not None:
        options["bandwidth"] = float(bandwidth)
    scored = model.copy_with(progress=False, **options).fit_scorer(task)
    return scored.decision_function(task.test_images)


def rescore(model: PDD, task: Task, bandwidth: float | None = None, scoring: str | None = None,
            **options: Any) -> dict[str, float]:
    """AUROC and AUPRC of ``model``'s current embedding scored on ``task``'s prototypes, without training.

    ``scoring=None`` keeps the model's own; ``"kde"`` is Eq. 7 (:class:`~pddlite.scoring.PrototypeKDE`); ``"kde-pseudo"`` is Eq. 7
    with the unlabeled training images added to the class of their nearest prototype (beyond the
    paper); ``"umap"`` is the sample notebook's transductive UMAP-3D KDE, ``"umap-inductive"`` the
    same fitted on the unlabeled training embeddings. ``bandwidth`` defaults to the model's (in
    the model's ``bandwidth_unit``); ``options`` may change the other scoring fields
    (:data:`SCORING_ONLY`). The scorer is fitted exactly as :meth:`PDD.fit_scorer` fits it
    (:func:`rescored` gives the scores themselves).
    """
    if scoring is not None and scoring not in SCORINGS:
        raise PDDLiteError(f"rescore knows scoring {', '.join(map(repr, SCORINGS))}; got {scoring!r}")
    unknown = set(options) - set(SCORING_ONLY)
    if unknown:
        raise PDDLiteError(f"rescore changes only the scoring ({', '.join(SCORING_ONLY)}); got {', '.join(sorted(unknown))}")
    return evaluate(task.test_is_anomaly, rescored(model, task, bandwidth, scoring, **options))


def tuneup_curve(pretrained: PDD, task: Task, scoring: str | None = None, progress: bool | None = None,
                 **options: Any) -> tuple[PDD, list[dict[str, Any]]]:
    """Tune up a copy of ``pretrained`` (as :func:`tune_up_from`, no checkpoint) and score the test
    split after every epoch: ``(tuned model, rows)``.

    Rows: ``epoch`` (0 = the pre-trained model), ``auroc``, ``auprc``, scored with the copy's
    scoring (or ``scoring``) on ``task``'s prototypes. The copy is trained exactly as
    :func:`tune_up_from` trains it (scoring in between reads the networks in eval mode and draws
    no random numbers), so the last row is the tuned model's score. These are numbers of the
    scored split, for watching the tune-up (Figs. 9-11 show its end points); choosing an epoch
    by them would select on that split (see the protocol in docs/results.md).
    """
    if getattr(pretrained, "stage_", None) is not Stage.PRETRAINED:
        raise PDDLiteError("tuneup_curve needs a model right after pretrain(task) (stage 'pretrained'), "
                           f"got stage '{getattr(pretrained, 'stage_', None)}'")
    unknown = set(options) - set(TUNE_UP_OPTIONS)
    if unknown:
        raise PDDLiteError(f"{', '.join(sorted(unknown))} would change the pre-training; a copy can change only: "
                           f"{', '.join(TUNE_UP_OPTIONS)}")
    model = pretrained.copy_with(checkpoint=None, progress=progress, **options)
    scoring = scoring or model.config_.scoring
    rows: list[dict[str, Any]] = [{"epoch": 0, **evaluate(task.test_is_anomaly,
                                                          rescored(model, task, scoring=scoring))}]
    def after_epoch(trainer: Any) -> None:
        snapshot = model.copy_with(progress=False)
        if getattr(trainer, "ema", None) is not None:  # a tuned model with ema_decay scores the average
            snapshot.discriminator_.load_state_dict(trainer.ema.average.state_dict())
        rows.append({"epoch": int(trainer.epoch), **evaluate(task.test_is_anomaly,
                                                             rescored(snapshot, task, scoring=scoring))})

    model.tune_up(task, after_epoch=after_epoch)
    return model, rows


def _pretrain_metrics(pretrained: PDD, task: Task, bandwidth: float) -> dict[str, float]:
    m = rescore(pretrained, task, bandwidth)
    return {"pretrain_auroc": m["auroc"], "pretrain_auprc": m["auprc"]}


def sweep(
    pretrained: PDD,
    task: Task,
    param: str,
    values: Sequence[Any],
    *,
    seed: int = 0,
    base: PDD | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """Tune up a copy of ``pretrained`` for each value of ``param``; one result row per value.

    ``param`` is a tune-up option (:data:`TUNE_UP_OPTIONS`: ``beta``, ``q_intra``, ``q_inter``,
    ``bandwidth``, ...), ``"shots"`` (:func:`with_shots`) or ``"wrong_labels"`` (the fraction of
    :func:`with_wrong_labels`, drawn with ``seed``). ``bandwidth`` needs no training: one tune-up
    with ``options``, then Eq. 7 refitted for each value. ``options`` apply to every tune-up.

    Each row: ``param``, ``value``, ``auroc`` and ``auprc`` after the tune-up, and
    ``pretrain_auroc`` / ``pretrain_auprc``: the pre-trained embedding scored with the same
    prototypes (the ablation of Figs. 9-11 at each setting). With ``checkpoint_dir`` every tune-up
    is saved there and reloaded on a rerun (file names carry the parameter and value).
    ``base``: a model already tuned from ``pretrained`` on ``task`` with the default options; a
    value that gives exactly its configuration (and the unchanged task) reuses it instead of
    tuning again.
    """
    choice("parameter to sweep", param, TUNE_UP_OPTIONS + TASK_PARAMETERS)
    if param in options:
        raise PDDLiteError(f"{param!r} is swept: do not also pass it as a fixed option")
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    rows: list[dict[str, Any]] = []
    bandwidth = options.get("bandwidth", pretrained.config_.bandwidth)
    if param == "bandwidth":
        if base is not None and not options and base.config_ == pretrained.config_ and base.stage_ is Stage.DONE:
            tuned = base
        else:
            ckpt = None if folder is None else folder / _ckpt_name("bandwidth-base", "", options)
            tuned = tune_up_from(pretrained, task, checkpoint=ckpt, progress=progress, **options)
    for value in tqdm(list(values), desc=f"sweep {param}", disable=not progress):
        row: dict[str, Any] = {"param": param, "value": value}
        if param == "bandwidth":
            row.update(rescore(tuned, task, value))
            row.update(_pretrain_metrics(pretrained, task, value))
        else:
            t, opts = task, dict(options)
            if param == "shots":
                t = with_shots(task, int(value))
            elif param == "wrong_labels":
                t = with_wrong_labels(task, float(value), seed)
            else:
                opts[param] = value
            unchanged_task = (param not in TASK_PARAMETERS or (param == "shots" and int(value) == task.shots)
                              or (param == "wrong_labels" and float(value) == 0.0))
            if (base is not None and unchanged_task and base.stage_ is Stage.DONE
                    and base.config_ == dataclasses.replace(pretrained.config_, **opts)):
                model = base
            else:
                ckpt = None if folder is None else folder / _ckpt_name(
                    param, value, options, seed if param == "wrong_labels" else None)
                model = tune_up_from(pretrained, t, checkpoint=ckpt, progress=progress, **opts)
            row.update(evaluate(t.test_is_anomaly, model.decision_function(t.test_images)))
            row.update(_pretrain_metrics(pretrained, t, opts.get("bandwidth", bandwidth)))
        rows.append(row)
    return rows


def _ckpt_name(param: str, value: Any, options: dict[str, Any], seed: int | None = None) -> str:
    parts = [f"{param}-{value}"] + [f"{k}-{v}" for k, v in sorted(options.items())]
    if seed is not None:
        parts.append(f"seed-{seed}")
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts) + ".pt"


# --------------------------------------------------------------------------- paper -> sample notebook


#: How each of pddlite's departures from the paper is named in the walk (one step per group of fields).
DEPARTURE_LABELS: dict[tuple[str, ...], str] = {
    ("scoring",): "Eq. 7 on the prototypes alone, as the paper states",
    ("bandwidth", "bandwidth_unit"): "Eq. 7 with w = 10, as the paper states",
    ("ema_decay",): "the last weights instead of their moving average",
    ("margin_lr",): "the margin steps at the paper's lr 0.002",
    ("augment_prototypes",): "the prototypes as they are (no random shifts)",
    ("recalibrate_bn",): "BatchNorm statistics as training left them",
    ("normalization",): "raw features, as the paper states",
}

#: Fields that change only the scoring: a step that changes nothing else rescores the last model.
SCORING_ONLY = PDDConfig.fields_of("scoring")


def _walk() -> tuple[tuple[str, dict[str, Any], dict[str, Any]], ...]:
    """pddlite -> paper, one departure at a time (from :mod:`pddlite.variants`), then -> sample notebook."""
    from .variants import differences

    diff = differences("pddlite", "paper")
    groups = [g for g in DEPARTURE_LABELS if set(g) & set(diff)]
    rest = set(diff) - {f for g in groups for f in g}
    groups += [(f,) for f in sorted(rest)]  # a departure without a label still gets its own step
    task20 = {"shots": 20, "remove_prototypes": True}
    steps = [("pddlite (the default)", task20, {"variant": "pddlite"})]
    args: dict[str, Any] = {"variant": "pddlite"}
    for g in groups:
        args = {**args, **{f: diff[f][1] for f in g if f in diff}}
        label = DEPARTURE_LABELS.get(g, f"{', '.join(g)} as the paper has it")
        steps.append(("+ " + label, task20, dict(args)))
    steps[-1] = ("paper: " + steps[-1][0][2:], task20, {"variant": "paper"})  # the same configuration
    task10 = {"shots": 10, "remove_prototypes": True}
    kept = {"shots": 10, "remove_prototypes": False}
    steps += [
        ("+ 10 shots per class", task10, {"variant": "paper"}),
        ("+ prototypes kept in the unlabeled set", kept, {"variant": "paper"}),
        ("+ UMAP-3D KDE scaled on the test set (rescoring only)", kept, {"variant": "paper", "scoring": "umap"}),
        ("sample notebook: + its losses, generator layout, z ~ N(0, 0.1^2), batch 100", kept, {"variant": "reference"}),
    ]
    return tuple(steps)


#: From pddlite's PDD through the paper's to the authors' sample notebook, one change per step.
#: Each step: a label, the task arguments and the PDD arguments of the cumulative configuration.
VARIANT_STEPS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = _walk()


def _effective(pdd_args: dict[str, Any]) -> dict[str, Any]:
    from .pdd import PDDConfig

    opts = dict(pdd_args)
    return dataclasses.asdict(PDDConfig.for_variant(opts.pop("variant"), "paper", **opts))


def scoring_changes(step: int) -> dict[str, Any]:
    """What step ``step`` of :data:`VARIANT_STEPS` changes from the step before it, when that is only
    the scoring (:data:`SCORING_ONLY`) on the same task; empty when the step needs a model of its own."""
    if not 0 < step < len(VARIANT_STEPS) or VARIANT_STEPS[step][1] != VARIANT_STEPS[step - 1][1]:
        return {}
    now, before = _effective(VARIANT_STEPS[step][2]), _effective(VARIANT_STEPS[step - 1][2])
    changes = {k: v for k, v in now.items() if k != "variant" and v != before[k]}
    return changes if changes and set(changes) <= set(SCORING_ONLY) else {}


def variant_steps(
    dataset: str = "mnist-5k",
    anomaly: int = 1,
    seed: int = 0,
    profile: str | None = None,
    device: str = "auto",
    steps: Sequence[int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the configurations of :data:`VARIANT_STEPS` (all, or the indices in ``steps``).

    A step that only changes the scoring rescores the previous step's model when that model was
    trained here; otherwise each step trains from scratch (with ``checkpoint_dir``: load-or-train).
    Returns one row per step: ``step``, ``label``, ``auroc``, ``auprc``.
    """
    from .data import make_task

    chosen = list(range(len(VARIANT_STEPS))) if steps is None else [int(s) for s in steps]
    for s in chosen:
        if not 0 <= s < len(VARIANT_STEPS):
            raise PDDLiteError(f"no variant step {s}; there are {len(VARIANT_STEPS)} (0..{len(VARIANT_STEPS) - 1})")
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    rows, models = [], {}
    for s in tqdm(chosen, desc="paper -> sample notebook", disable=not progress):
        label, task_args, pdd_args = VARIANT_STEPS[s]
        task = make_task(dataset, anomaly, seed=seed, root=root, download=download, **task_args)
        prev = models.get(s - 1)
        changes = scoring_changes(s)
        if changes and prev is not None:
            metrics = rescore(prev, task, **changes)
            model = prev
        else:
            opts = dict(pdd_args)
            variant = opts.pop("variant")
            ckpt = None if folder is None else folder / f"variant-step-{s}-{dataset}-a{anomaly}-s{seed}.pt"
            model = PDD(profile=profile, variant=variant, device=device, seed=seed, checkpoint=ckpt,
                        progress=progress, **opts).fit(task)
            metrics = evaluate(task.test_is_anomaly, model.decision_function(task.test_images))
        models[s] = model
        rows.append({"step": s, "label": label, **metrics})
    return rows

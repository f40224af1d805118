"""pddlite.ablation: task transforms, tuning copies of one pre-training, sweeps and the variant walk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pddlite import PDD, PDDLiteError, ablation, make_task
from pddlite.variants import differences
from pddlite.metrics import evaluate

TINY = {"max_train_images": 128, "pretrain_batch_size": 64, "tune_batch_size": 64}


@pytest.fixture(scope="module")
def task():
    return make_task("mnist-5k", anomaly=1, shots=10, seed=0)


@pytest.fixture(scope="module")
def pretrained(task, torch_single_thread):
    return PDD(profile="smoke", device="cpu", seed=0, progress=False, **TINY).pretrain(task)


# --------------------------------------------------------------------------- task transforms


def test_with_wrong_labels_flips_the_asked_fraction(task):
    wrong = ablation.with_wrong_labels(task, 0.25, seed=1)
    changed = wrong.prototype_labels != task.prototype_labels
    assert int(changed.sum()) == round(0.25 * len(task.prototype_labels))
    # every new label is another normal class, never the anomaly class
    assert set(wrong.prototype_labels[changed].tolist()) <= set(task.normal_classes)
    assert torch.equal(wrong.prototype_images, task.prototype_images)
    assert torch.equal(wrong.train_images, task.train_images)
    # the original task is untouched, and the draw is repeatable
    assert not torch.equal(task.prototype_labels, wrong.prototype_labels)
    assert torch.equal(ablation.with_wrong_labels(task, 0.25, seed=1).prototype_labels, wrong.prototype_labels)
    assert not torch.equal(ablation.with_wrong_labels(task, 0.25, seed=2).prototype_labels, wrong.prototype_labels)


def test_with_wrong_labels_edges(task):
    assert torch.equal(ablation.with_wrong_labels(task, 0.0).prototype_labels, task.prototype_labels)
    everything = ablation.with_wrong_labels(task, 1.0)
    assert bool((everything.prototype_labels != task.prototype_labels).all())
    with pytest.raises(PDDLiteError):
        ablation.with_wrong_labels(task, 1.5)


def test_with_shots_keeps_the_first_k_per_class(task):
    small = ablation.with_shots(task, 3)
    assert small.shots == 3
    assert len(small.prototype_labels) == 3 * len(task.normal_classes)
    for c in task.normal_classes:
        want = task.prototype_images[task.prototype_labels == c][:3]
        assert torch.equal(small.prototype_images[small.prototype_labels == c], want)
    assert torch.equal(small.train_images, task.train_images)
    for bad in (1, 11, 2.5, True):
        with pytest.raises(PDDLiteError):
            ablation.with_shots(task, bad)


def test_prototypes_are_nested_across_shots():
    """The reason with_shots is exact: make_task's K-shot prototypes are the first K of a larger draw."""
    five = make_task("mnist-5k", anomaly=1, shots=5, seed=0)
    ten = make_task("mnist-5k", anomaly=1, shots=10, seed=0)
    assert torch.equal(ablation.with_shots(ten, 5).prototype_images, five.prototype_images)


# --------------------------------------------------------------------------- tuning copies


def test_tune_up_from_leaves_the_pretrained_model_alone(pretrained, task):
    before = {k: v.clone() for k, v in pretrained.discriminator_.state_dict().items()}
    tuned = ablation.tune_up_from(pretrained, task, beta=0.0)
    assert tuned is not pretrained and tuned.stage_ == "done" and tuned.config_.beta == 0.0
    assert pretrained.stage_ == "pretrained" and pretrained.config_.beta == 3.0
    for k, v in pretrained.discriminator_.state_dict().items():
        assert torch.equal(v, before[k])
    assert np.isfinite(tuned.decision_function(task.test_images)).all()


def test_tune_up_from_equals_a_plain_fit(pretrained, task):
    plain = PDD(profile="smoke", device="cpu", seed=0, progress=False, **TINY).fit(task)
    copy = ablation.tune_up_from(pretrained, task)
    np.testing.assert_array_equal(plain.decision_function(task.test_images), copy.decision_function(task.test_images))


def test_tune_up_from_refuses_pretraining_options_and_unfitted_models(pretrained, task):
    with pytest.raises(PDDLiteError, match="pre-training"):
        ablation.tune_up_from(pretrained, task, width=0.5)
    with pytest.raises(PDDLiteError):
        ablation.tune_up_from(pretrained, task, beta=-1.0)
    fresh = PDD(profile="smoke", device="cpu", progress=False)
    with pytest.raises(PDDLiteError, match="pretrain"):
        ablation.tune_up_from(fresh, task)


def test_tune_up_from_checkpoint_loads_instead_of_training(pretrained, task, tmp_path, monkeypatch):
    path = tmp_path / "beta0.pt"
    first = ablation.tune_up_from(pretrained, task, checkpoint=path, beta=0.0)
    assert path.exists()

    from pddlite import tuneup

    def fail(*args, **kwargs):
        raise AssertionError("a finished tune-up checkpoint must be loaded, not trained again")

    monkeypatch.setattr(tuneup.TuneUpTrainer, "train_epoch", fail)
    again = ablation.tune_up_from(pretrained, task, checkpoint=path, beta=0.0)
    np.testing.assert_array_equal(first.decision_function(task.test_images), again.decision_function(task.test_images))


def test_rescore_matches_decision_function(pretrained, task):
    tuned = ablation.tune_up_from(pretrained, task)
    want = evaluate(task.test_is_anomaly, tuned.decision_function(task.test_images))
    got = ablation.rescore(tuned, task)
    assert got["auroc"] == pytest.approx(want["auroc"])
    assert got["auprc"] == pytest.approx(want["auprc"])
    with pytest.raises(PDDLiteError):
        ablation.rescore(tuned, task, scoring="svm")


def test_rescore_scores_inductive_umap_as_the_estimator_does(pretrained, task):
    pytest.importorskip("umap")
    tuned = ablation.tune_up_from(pretrained, task)
    inductive = tuned.copy_with(scoring="umap-inductive").fit_scorer(task)
    want = evaluate(task.test_is_anomaly, inductive.decision_function(task.test_images))
    got = ablation.rescore(tuned, task, scoring="umap-inductive")
    assert got == pytest.approx(want)


def test_rescored_gives_the_scores_and_may_reread_raw_features(pretrained, task):
    tuned = ablation.tune_up_from(pretrained, task)
    np.testing.assert_allclose(ablation.rescored(tuned, task), tuned.decision_function(task.test_images))
    pseudo = ablation.rescored(tuned, task, scoring="kde-pseudo")
    want = tuned.copy_with(scoring="kde-pseudo").fit_scorer(task).decision_function(task.test_images)
    np.testing.assert_allclose(pseudo, want)
    assert evaluate(task.test_is_anomaly, pseudo) == pytest.approx(ablation.rescore(tuned, task, scoring="kde-pseudo"))
    raw = ablation.rescored(tuned, task, normalization="none")
    want = tuned.copy_with(normalization="none").fit_scorer(task).decision_function(task.test_images)
    np.testing.assert_allclose(raw, want)
    assert tuned.config_.normalization == "center-l2"  # the model itself is untouched
    with pytest.raises(PDDLiteError, match="only the scoring"):
        ablation.rescored(tuned, task, beta=1.0)
    with pytest.raises(PDDLiteError):
        ablation.rescored(tuned, task, scoring="svm")


def test_tuneup_curve_scores_every_epoch_and_ends_at_the_tuned_model(pretrained, task):
    model, rows = ablation.tuneup_curve(pretrained, task, tune_epochs=2)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert {k: rows[0][k] for k in ("auroc", "auprc")} == pytest.approx(ablation.rescore(pretrained, task))  # epoch 0: pre-trained
    plain = ablation.tune_up_from(pretrained, task, tune_epochs=2)
    want = evaluate(task.test_is_anomaly, plain.decision_function(task.test_images))
    assert rows[-1]["auroc"] == pytest.approx(want["auroc"]) and rows[-1]["auprc"] == pytest.approx(want["auprc"])
    np.testing.assert_array_equal(model.decision_function(task.test_images), plain.decision_function(task.test_images))
    assert pretrained.stage_ == "pretrained"


def test_tuneup_curve_adversarial_only_control_and_refusals(pretrained, task):
    control, rows = ablation.tuneup_curve(pretrained, task, margin_steps=False)
    assert control.config_.margin_steps is False and len(rows) == 2
    assert all(r["loss_margin"] == 0.0 for r in control.history_["tuneup"])
    with pytest.raises(PDDLiteError, match="pre-training"):
        ablation.tuneup_curve(pretrained, task, width=0.5)
    with pytest.raises(PDDLiteError, match="pretrain"):
        ablation.tuneup_curve(control, task)


# --------------------------------------------------------------------------- sweeps


def test_sweep_rows_and_pretrain_metrics(pretrained, task):
    rows = ablation.sweep(pretrained, task, "beta", [0.0, 3.0], progress=False)
    assert [r["value"] for r in rows] == [0.0, 3.0]
    for r in rows:
        assert r["param"] == "beta"
        assert {"auroc", "auprc", "pretrain_auroc", "pretrain_auprc"} <= set(r)
    # the pre-trained embedding does not depend on beta
    assert rows[0]["pretrain_auroc"] == rows[1]["pretrain_auroc"]
    base = evaluate(task.test_is_anomaly, pretrained.decision_function(task.test_images))
    assert rows[0]["pretrain_auroc"] == pytest.approx(base["auroc"])


def test_sweep_reuses_base_for_the_default_value(pretrained, task, monkeypatch):
    base = ablation.tune_up_from(pretrained, task)

    def fail(*args, **kwargs):
        raise AssertionError("the default value must reuse the base model")

    monkeypatch.setattr(ablation, "tune_up_from", fail)
    rows = ablation.sweep(pretrained, task, "q_intra", [0.5], base=base, progress=False)
    want = evaluate(task.test_is_anomaly, base.decision_function(task.test_images))
    assert rows[0]["auroc"] == pytest.approx(want["auroc"])
    rows = ablation.sweep(pretrained, task, "bandwidth", [1.0, pretrained.config_.bandwidth], base=base, progress=False)
    assert rows[1]["auroc"] == pytest.approx(want["auroc"])
    ablation.sweep(pretrained, task, "shots", [10], base=base, progress=False)
    ablation.sweep(pretrained, task, "wrong_labels", [0.0], base=base, progress=False)


def test_sweep_task_parameters_and_checkpoints(pretrained, task, tmp_path):
    rows = ablation.sweep(pretrained, task, "shots", [2, 10], checkpoint_dir=tmp_path, progress=False)
    assert [r["value"] for r in rows] == [2, 10]
    # fewer prototypes give another pre-training score too (Eq. 7 is refitted on them)
    assert rows[0]["pretrain_auroc"] != rows[1]["pretrain_auroc"]
    rows = ablation.sweep(pretrained, task, "wrong_labels", [0.5], checkpoint_dir=tmp_path, progress=False)
    assert 0.0 <= rows[0]["auroc"] <= 1.0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["shots-10.pt", "shots-2.pt", "wrong_labels-0.5_seed-0.pt"]


def test_sweep_refuses_unknown_and_doubled_parameters(pretrained, task):
    with pytest.raises(PDDLiteError):
        ablation.sweep(pretrained, task, "width", [0.5])
    with pytest.raises(PDDLiteError):
        ablation.sweep(pretrained, task, "beta", [1.0], beta=2.0)


# --------------------------------------------------------------------------- paper -> sample notebook


def test_variant_steps_walk_from_pddlite_through_the_paper_one_change_at_a_time():
    steps = ablation.VARIANT_STEPS
    labels = [s[0] for s in steps]
    assert labels[0].startswith("pddlite") and labels[-1].startswith("sample notebook")
    assert steps[0][2] == {"variant": "pddlite"} and steps[-1][2] == {"variant": "reference"}
    paper = [i for i, s in enumerate(steps) if s[0].startswith("paper")]
    assert len(paper) == 1 and steps[paper[0]][2] == {"variant": "paper"}
    # every step but the last changes one thing: a task argument, or one group of PDD fields
    groups = {frozenset(g) for g in ablation.DEPARTURE_LABELS} | {frozenset({"scoring"})}
    for (_, ta, pa), (_, tb, pb) in zip(steps[:-2], steps[1:-1]):
        task_changed = {k for k in set(ta) | set(tb) if ta.get(k) != tb.get(k)}
        ea, eb = ablation._effective(pa), ablation._effective(pb)
        fields = frozenset(k for k in ea if k != "variant" and ea[k] != eb[k])
        assert (len(task_changed) == 1 and not fields) or (not task_changed and fields in groups), (pa, pb)
    # the departures walked are exactly those of the presets
    walked = set().union(*(set(g) for g in ablation.DEPARTURE_LABELS if set(g) & set(differences("pddlite", "paper"))))
    assert set(differences("pddlite", "paper")) <= walked


def test_scoring_changes_names_the_steps_that_only_rescore_the_step_before():
    rescoring = {s: ablation.scoring_changes(s) for s in range(len(ablation.VARIANT_STEPS))}
    # Eq. 7 on the prototypes, then w = 10, then the sample notebook's UMAP: scoring on the same task
    assert {s for s, c in rescoring.items() if c} == {1, 2, 7}
    assert rescoring[1] == {"scoring": "kde"}
    assert rescoring[2] == {"bandwidth": 10.0, "bandwidth_unit": "absolute"}
    assert rescoring[7] == {"scoring": "umap"}
    assert rescoring[0] == {} and ablation.scoring_changes(len(ablation.VARIANT_STEPS)) == {}


def test_variant_steps_runs_and_rescoring_step(monkeypatch):
    from pddlite import profiles

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.Profile(name="tiny", width=0.125, epoch_fraction=0.0, min_epochs=1, max_train_images=96, batch_size=48, description="test"))
    rows = ablation.variant_steps(profile="tiny", device="cpu", steps=[0], progress=False)
    assert [r["step"] for r in rows] == [0]
    assert 0.0 <= rows[0]["auroc"] <= 1.0 and 0.0 <= rows[0]["auprc"] <= 1.0
    with pytest.raises(PDDLiteError):
        ablation.variant_steps(profile="tiny", device="cpu", steps=[99], progress=False)


def test_variant_steps_rescores_when_only_the_scoring_changes(monkeypatch):
    from pddlite import profiles

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.Profile(name="tiny", width=0.125, epoch_fraction=0.0, min_epochs=1, max_train_images=96, batch_size=48, description="test"))
    calls = []

    def fake_rescore(model, task, bandwidth=None, scoring="kde", **options):
        calls.append((model.config_.normalization, scoring, task.shots))
        return {"auroc": 0.5, "auprc": 0.1}

    monkeypatch.setattr(ablation, "rescore", fake_rescore)
    umap = next(i for i, s in enumerate(ablation.VARIANT_STEPS) if s[2].get("scoring") == "umap")
    rows = ablation.variant_steps(profile="tiny", device="cpu", steps=[umap - 1, umap], progress=False)
    assert [r["step"] for r in rows] == [umap - 1, umap]
    assert calls == [("none", "umap", 10)]  # the umap step = the step before's model, scored the notebook's way
    assert rows[1]["auroc"] == 0.5

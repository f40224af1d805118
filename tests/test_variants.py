"""The three variants: presets of one set of options (pddlite.variants), run by one code path."""

import numpy as np
import pytest
import torch

from pddlite import PDD, PDDConfig, PDDLiteError, make_task
from pddlite.tuneup import TuneUpTrainer
from pddlite.variants import DEFAULT_VARIANT, VARIANTS, differences

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def task():
    return make_task("mnist-5k", anomaly=1, shots=10, seed=0)


def test_every_variant_sets_the_same_fields_so_differences_is_complete():
    fields = {f for f in PDDConfig.__dataclass_fields__}
    for name, options in VARIANTS.items():
        assert set(options) == set(VARIANTS["paper"]) and set(options) <= fields, name
    for a in VARIANTS:
        for b in VARIANTS:
            ca, cb = PDDConfig.for_variant(a), PDDConfig.for_variant(b)
            want = {k for k in fields if k != "variant" and getattr(ca, k) != getattr(cb, k)}
            assert set(differences(a, b)) == want, (a, b)


def test_the_paper_variant_is_the_text():
    c = PDDConfig.for_variant("paper", "quick")
    assert (c.normalization, c.bandwidth, c.bandwidth_unit, c.scoring) == ("none", 10.0, "absolute", "kde")
    assert (c.margin, c.beta, c.q_intra, c.q_inter, c.lr, c.margin_lr) == ("eq56", 3.0, 0.5, 0.25, 2e-3, 2e-3)
    assert not c.keep_prototypes and c.layout == "paper"


def test_the_reference_variant_is_the_sample_notebook():
    c = PDDConfig.for_variant("reference", "quick")
    assert (c.margin, c.scoring, c.z_std, c.lr, c.layout, c.keep_prototypes) == (
        "reference", "umap", 0.1, 2e-4, "reference", True)
    assert PDD(profile="quick", variant="reference").schedule("mnist")["tune_batch_size"] == 100
    assert PDD(profile="smoke", variant="reference").schedule("mnist")["tune_batch_size"] == 64


def test_pddlite_is_the_default_and_departs_from_the_paper_only_where_listed():
    assert DEFAULT_VARIANT == "pddlite" and PDD(profile="smoke").variant == "pddlite"
    assert PDDConfig() == PDDConfig.for_variant("pddlite", "paper")  # the dataclass defaults are pddlite's
    diff = differences("pddlite", "paper")
    # every departure is a tune-up or scoring option: the two variants share their pre-training
    pretraining = {"layout", "keep_prototypes", "width", "pretrain_epochs", "pretrain_batch_size", "lr", "z_std",
                   "max_train_images"}
    assert diff and not set(diff) & pretraining
    assert set(diff) <= set(VARIANTS["pddlite"])


def test_unknown_names_are_errors_not_branches():
    with pytest.raises(PDDLiteError, match="unknown variant 'papr'"):
        PDD(variant="papr")
    with pytest.raises(PDDLiteError, match="unknown margin 'eq4'"):
        PDD(margin="eq4")
    with pytest.raises(PDDLiteError, match="unknown bandwidth_unit"):
        PDD(bandwidth_unit="pixels")
    g = torch.nn.Linear(1, 1)
    with pytest.raises(PDDLiteError, match="unknown margin terms 'papr'"):
        TuneUpTrainer(g, g, torch.zeros(2, 1), torch.zeros(2), margin="papr")


def test_pddlite_scores_an_image_the_same_alone_or_in_a_batch(task):
    """Inductive: the scores of the test set in one call equal those of its two halves."""
    model = PDD(profile="smoke", device="cpu", progress=False, seed=1).fit(task)
    whole = model.decision_function(task.test_images)
    halves = np.concatenate([model.decision_function(task.test_images[:300]),
                             model.decision_function(task.test_images[300:])])
    np.testing.assert_allclose(whole, halves, rtol=0, atol=1e-9)
    # alone: float32 convolutions pick other kernels for a batch of one (differences ~1e-7), no more
    one = model.decision_function(task.test_images[7:8])
    np.testing.assert_allclose(one, whole[7:8], rtol=0, atol=1e-5)


def test_bandwidth_in_the_embeddings_units(task):
    from pddlite.scoring import median_intra_class_distance

    model = PDD(profile="smoke", device="cpu", progress=False, seed=1).pretrain(task)
    scale = median_intra_class_distance(model.prototype_embeddings_, model.prototype_labels_)
    assert model.scorer_.bandwidth == pytest.approx(model.config_.bandwidth * scale)
    absolute = model.copy_with(bandwidth_unit="absolute", bandwidth=0.7).fit_scorer(task)
    assert absolute.scorer_.bandwidth == 0.7


def test_recalibrated_batchnorm_and_augmented_prototypes_change_the_model(task):
    base = PDD(profile="smoke", device="cpu", progress=False, seed=2).pretrain(task)
    plain = base.decision_function(task.test_images)
    recal = base.copy_with(recalibrate_bn=True).fit_scorer(task)
    assert recal.embedder_ is not None and recal.embedder_ is not recal.discriminator_
    assert not np.allclose(plain, recal.decision_function(task.test_images))
    np.testing.assert_array_equal(plain, base.decision_function(task.test_images))  # the original is untouched
    a = base.copy_with().tune_up(task).decision_function(task.test_images)
    b = base.copy_with(augment_prototypes=True).tune_up(task).decision_function(task.test_images)
    assert not np.allclose(a, b)


def test_margin_steps_off_is_the_adversarial_only_control(task):
    base = PDD(profile="smoke", device="cpu", progress=False, seed=2).pretrain(task)
    control = base.copy_with(margin_steps=False).tune_up(task)
    assert all(h["loss_margin"] == 0.0 for h in control.history_["tuneup"])
    tuned = base.copy_with().tune_up(task)
    assert all(h["loss_margin"] > 0.0 for h in tuned.history_["tuneup"])


def test_variants_with_the_same_pretraining_share_it_through_the_cache(task, tmp_path, monkeypatch):
    from pddlite import trainer

    first = PDD(profile="smoke", variant="paper", device="cpu", progress=False, seed=4, pretrain_cache=tmp_path)
    first.pretrain(task)
    assert len(list(tmp_path.glob("pretrained-*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("a cached pre-training must not run again")

    monkeypatch.setattr(trainer.EpochTrainer, "fit", fail)
    second = PDD(profile="smoke", variant="pddlite", device="cpu", progress=False, seed=4, pretrain_cache=tmp_path)
    second.pretrain(task)
    for a, b in zip(first.discriminator_.state_dict().values(), second.discriminator_.state_dict().values()):
        assert torch.equal(a, b)
    assert second.history_["pretrain"] == first.history_["pretrain"] and second.stage_ == "pretrained"
    monkeypatch.undo()
    # another seed, or other unlabeled images, is another pre-training
    PDD(profile="smoke", device="cpu", progress=False, seed=5, pretrain_cache=tmp_path).pretrain(task)
    assert len(list(tmp_path.glob("pretrained-*.pt"))) == 2


def test_a_moving_average_of_the_tune_up_is_the_tuned_model(task, tmp_path):
    base = PDD(profile="smoke", device="cpu", progress=False, seed=2).pretrain(task)
    plain = base.copy_with().tune_up(task)
    averaged = base.copy_with(ema_decay=0.5, checkpoint=tmp_path / "ema.pt").tune_up(task)
    assert not np.allclose(plain.decision_function(task.test_images), averaged.decision_function(task.test_images))
    # a finished checkpoint holds the averaged weights: loading it scores the same
    again = base.copy_with(ema_decay=0.5, checkpoint=tmp_path / "ema.pt").tune_up(task)
    np.testing.assert_array_equal(again.decision_function(task.test_images),
                                  averaged.decision_function(task.test_images))
    with pytest.raises(PDDLiteError, match=r"ema_decay must be a number in \(0, 1\) \(or None\), got 1.5"):
        PDD(ema_decay=1.5)

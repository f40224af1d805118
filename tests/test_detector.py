"""The Detector base: one constructor, one fitted check, one image check and one runner for every method."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sklearn.base import clone

from pddlite import PDDLiteError, make_task
from pddlite.detector import Detector
from pddlite.methods import METHODS

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def task():
    return make_task("mnist-5k", anomaly=1, shots=5, seed=0, device="cpu")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_a_detector_with_the_same_run_time_options(method):
    cls = METHODS[method]
    assert issubclass(cls, Detector) and cls.method == method
    model = cls(profile="smoke", device="cpu", seed=5, progress=False, deterministic=method not in PIXEL)
    assert (model.profile, model.device, model.seed, model.progress) == ("smoke", "cpu", 5, False)  # as given
    assert not model.is_fitted() and repr(model).startswith(f"{cls.__name__}(") and "profile='smoke'" in repr(model)
    resolved = model._resolve()  # what fit sets: the profile and the run-time options, resolved
    assert (resolved["profile_"].name, resolved["runtime_"].device.type, resolved["runtime_"].seed) == ("smoke", "cpu", 5)
    assert resolved["runtime_"].precision.name == "fp32" and resolved["runtime_"].deterministic is (method not in PIXEL)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_detector_refuses_bad_run_time_options_in_one_line(method):
    cls = METHODS[method]
    with pytest.raises(PDDLiteError, match="seed"):
        cls(profile="smoke", device="cpu", seed=-1)
    with pytest.raises(PDDLiteError, match="profile"):
        cls(profile="fast", device="cpu")
    with pytest.raises(PDDLiteError, match="unknown .* option.*no_such_option; known: profile"):
        cls(profile="smoke", device="cpu", no_such_option=1)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_detector_says_to_fit_before_scoring(method):
    with pytest.raises(PDDLiteError, match=r"not fitted yet: call fit\(task\)"):
        METHODS[method](profile="smoke", device="cpu").decision_function(torch.zeros(2, 1, 28, 28))


@pytest.mark.parametrize("method", ["pixel-knn", "pixel-centroid", "mcdd"])
def test_fitted_detectors_check_the_images_they_score_at_one_door(task, method):
    """The images a fitted detector scores go through checked_images: shape, range and finiteness."""
    model = METHODS[method](profile="smoke", device="cpu", progress=False).fit(task)
    good = task.test_images[:3]
    assert torch.equal(model.checked_images(good), good.float())
    with pytest.raises(PDDLiteError, match="expected images shaped"):
        model.decision_function(torch.zeros(2, 3, 64, 64))
    with pytest.raises(PDDLiteError, match=r"\[-1, 1\]"):
        model.decision_function(np.full((2, 1, 28, 28), 255, dtype=np.uint8).astype(np.float32))
    with pytest.raises(PDDLiteError, match="NaN|finite"):
        model.decision_function(torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(PDDLiteError, match=r"in \[0, 1\], not pddlite's \[-1, 1\]: rescale them with x \* 2 - 1"):
        model.decision_function(good * 0.5 + 0.5)  # [0, 1] lies inside [-1, 1]: only the batch shows it
    assert model.decision_function((good * 0.5 + 0.5)[:1]).shape == (1,)  # one bright image is scored


def test_run_fits_and_scores_the_task_s_split(task):
    out = METHODS["pixel-knn"](profile="smoke", seed=0, device="cpu", progress=False).run(task)
    assert set(out) >= {"auroc", "auprc", "model"} and 0.0 <= out["auroc"] <= 1.0
    with pytest.raises(PDDLiteError, match="unknown PixelKNN option.*variant"):
        METHODS["pixel-knn"](profile="smoke", seed=0, device="cpu", variant="paper")


#: the detectors that train nothing (a run-time option of training is refused, not ignored)
PIXEL = ("pixel-knn", "pixel-centroid", "pixel-knn-unlabeled")


@pytest.fixture(scope="module")
def small_task():
    """A task small enough to fit every method in seconds: 3 normal classes, 5 shots, 120 unlabeled images."""
    task = make_task("mnist-5k", anomaly=1, shots=5, seed=0, device="cpu")
    keep = torch.isin(task.train_labels, torch.tensor([0, 2, 3]))
    protos = torch.isin(task.prototype_labels, torch.tensor([0, 2, 3]))
    return dataclasses.replace(task, normal_classes=(0, 2, 3), train_images=task.train_images[keep][:120],
                               train_labels=task.train_labels[keep][:120],
                               prototype_images=task.prototype_images[protos], prototype_labels=task.prototype_labels[protos])


def _fast(method: str) -> dict:
    return {} if method in PIXEL else {"max_train_images": 120} if method != "pdd" else {"max_train_images": 120}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_a_scikit_learn_estimator(small_task, method):
    """clone round-trips, nothing fitted before fit, decision_scores_ / threshold_ / labels_ after it,
    and predict is decision_function > threshold_."""
    model = METHODS[method](profile="smoke", device="cpu", progress=False, seed=2, contamination=0.2, **_fast(method))
    twin = clone(model)
    assert type(twin) is type(model) and twin is not model
    assert twin.get_params() == model.get_params()
    assert clone(twin).get_params() == model.get_params()
    fitted_names = lambda m: [k for k in vars(m) if k.endswith("_") and not k.startswith("_")]  # noqa: E731
    assert fitted_names(model) == [] and not model.is_fitted()
    model.fit(small_task)
    assert {"decision_scores_", "threshold_", "labels_", "profile_", "runtime_"} <= set(fitted_names(model))
    assert model.decision_scores_.dtype == np.float64 and set(np.unique(model.labels_)) <= {0, 1}
    np.testing.assert_array_equal(model.labels_, (model.decision_scores_ > model.threshold_).astype(int))
    assert model.threshold_ == np.quantile(model.decision_scores_, 0.8)
    x = small_task.test_images[:40]
    np.testing.assert_array_equal(model.predict(x), (model.decision_function(x) > model.threshold_).astype(int))
    assert clone(model).get_params() == model.get_params() and fitted_names(clone(model)) == []
    model.set_params(contamination=0.3)
    assert model.get_params()["contamination"] == 0.3 and twin.get_params()["contamination"] == 0.2


@pytest.mark.parametrize("method", PIXEL)
def test_pixel_checks_refuse_run_time_options_they_cannot_honour(method):
    for option in ({"precision": "bf16"}, {"compile": True}, {"deterministic": True}, {"cuda_graphs": True}):
        with pytest.raises(PDDLiteError, match=f"cannot honour {next(iter(option))}="):
            METHODS[method](profile="smoke", device="cpu", **option)


@pytest.mark.parametrize("method", ["egbad", "ganomaly", "mcdd", "deepsvdd"])
def test_baselines_refuse_cuda_graphs_instead_of_ignoring_them(method):
    with pytest.raises(PDDLiteError, match="cannot honour cuda_graphs=True"):
        METHODS[method](profile="smoke", device="cpu", cuda_graphs=True)


def test_a_training_image_held_by_the_scorer_does_not_count_its_own_zero_distance(small_task):
    """PixelKNNUnlabeled holds the unlabeled images: each one's training score is its distance to the
    nearest OTHER held image, as a new image's would be; the same image scored as new gets 0."""
    model = METHODS["pixel-knn-unlabeled"](profile="smoke", device="cpu").fit(small_task)
    x = small_task.train_images[:5]
    assert np.all(model.decision_function(x) < 1e-5)  # scored as new, each finds itself (0 up to cdist's rounding)
    held = torch.cat([small_task.prototype_images, small_task.train_images]).double().flatten(1)
    d = torch.cdist(held[len(small_task.prototype_images):][:5], held)
    d[torch.arange(5), len(small_task.prototype_images) + torch.arange(5)] = float("inf")
    np.testing.assert_allclose(model.decision_scores_[:5], d.min(dim=1).values.numpy(), rtol=1e-12)
    assert np.all(model.decision_scores_ > 1.0)  # distances between different digits, in [-1, 1] pixels


def test_pdd_pseudo_labeled_scores_of_training_images_leave_their_own_kernel_out(small_task):
    """Under scoring="kde-pseudo" the unlabeled images are kernels of Eq. 7: a training image's
    score leaves its own kernel out (it would otherwise rank every training image as very normal)."""
    from pddlite.scoring import PrototypeKDE

    model = METHODS["pdd"](profile="smoke", device="cpu", progress=False, max_train_images=120).fit(small_task)
    assert model.config_.scoring == "kde-pseudo"
    z_train = model.embed(small_task.train_images)
    kde = model.scorer_
    assert isinstance(kde, PrototypeKDE) and len(kde.prototypes_) == len(small_task.prototype_images) + len(z_train)
    with_own = kde.rank_score(z_train).cpu().numpy()
    # by hand: the same KDE with image i's kernel removed from its class's sum, for a few images
    p = len(small_task.prototype_images)
    for i in range(3):
        e = -((kde.prototypes_ - z_train[i].double()) ** 2).sum(1) / (2 * kde.bandwidth ** 2)
        e[p + i] = float("-inf")
        own_class = kde.labels_[p + i]
        cols = kde.labels_ == own_class
        full = torch.logsumexp(-((kde.prototypes_[cols] - z_train[i].double()) ** 2).sum(1) / (2 * kde.bandwidth ** 2), 0)
        left_out = torch.logsumexp(e[cols], 0)
        assert left_out < full  # the own kernel is the largest term of its own class's density
        manual = kde.log_density(z_train[i:i + 1], held=torch.tensor([p + i]))[0]
        column = int(torch.nonzero(kde.classes_ == own_class))
        np.testing.assert_allclose(float(manual[column] - kde.log_density(z_train[i:i + 1])[0, column]),
                                   float(left_out - full), rtol=1e-9)
    assert np.all(model.decision_scores_ >= with_own - 1e-12) and np.any(model.decision_scores_ > with_own + 1e-6)

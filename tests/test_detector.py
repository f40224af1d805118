"""The Detector base: one constructor, one fitted check, one image check and one runner for every method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
    model = cls(profile="smoke", device="cpu", seed=5, progress=False, precision="fp32", deterministic=True)
    assert (model.profile.name, model.device.type, model.seed, model.progress, model.deterministic) == (
        "smoke", "cpu", 5, False, True)
    assert model.precision.name == "fp32" and not model.is_fitted() and "not fitted" in repr(model)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_detector_refuses_bad_run_time_options_in_one_line(method):
    cls = METHODS[method]
    with pytest.raises(PDDLiteError, match="seed"):
        cls(profile="smoke", device="cpu", seed=-1)
    with pytest.raises(PDDLiteError, match="profile"):
        cls(profile="fast", device="cpu")
    with pytest.raises(PDDLiteError, match="unknown"):
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
    out = METHODS["pixel-knn"].run(task, profile="smoke", seed=0, device="cpu", progress=False)
    assert set(out) >= {"auroc", "auprc", "model"} and 0.0 <= out["auroc"] <= 1.0
    with pytest.raises(PDDLiteError, match="no variant"):
        METHODS["pixel-knn"].run(task, profile="smoke", seed=0, device="cpu", variant="paper")

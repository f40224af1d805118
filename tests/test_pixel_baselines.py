"""Tests of the pixel-space sanity baselines (pddlite.baselines.pixel): hand-worked values, inductive."""

import numpy as np
import pytest
import torch

from pddlite.baselines import PixelCentroid, PixelKNN, PixelKNNUnlabeled
from pddlite.data import subsample_indices
from pddlite.errors import PDDLiteError
from pddlite.experiment import run_task
from pddlite.runtime import Runtime

QUIET_CPU = Runtime(device="cpu", progress=False)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def tiny_images(values):
    """1x28x28 images that are constant except for pixel (0, 0) and (0, 1)."""
    x = torch.full((len(values), 1, 28, 28), -1.0)
    for i, (a, b) in enumerate(values):
        x[i, 0, 0, 0], x[i, 0, 0, 1] = a, b
    return x


def test_pixel_knn_is_the_distance_to_the_nearest_prototype():
    protos = tiny_images([(0.0, 0.0), (1.0, 1.0)])
    model = PixelKNN().fit(protos, [0, 1])
    scores = model.decision_function(tiny_images([(0.0, 0.0), (0.3, 0.4), (1.0, 0.0)]))
    np.testing.assert_allclose(scores, [0.0, 0.5, 1.0])


def test_pixel_knn_unlabeled_is_the_distance_to_the_nearest_training_image():
    # prototypes (0, 0) and (1, 1); one unlabeled image at (0, 1): (0.1, 1.0) is 0.1 from it and
    # 0.9 from (1, 1), which is all the plain PixelKNN, without the unlabeled image, can see
    images = tiny_images([(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    labels = [0, 1, -1]
    query = tiny_images([(0.1, 1.0), (0.0, 0.0)])
    np.testing.assert_allclose(PixelKNNUnlabeled().fit(images, labels).decision_function(query), [0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(PixelKNN().fit(images[:2], [0, 1]).decision_function(query), [0.9, 0.0], atol=1e-12)


def test_pixel_knn_unlabeled_reads_the_capped_subset_pdd_reads(mnist5k_task):
    task = mnist5k_task
    model = PixelKNNUnlabeled(profile="smoke", seed=3).fit(task)
    keep = subsample_indices(len(task.train_images), model.profile_.max_train_images, seed=3)
    unlabeled = task.train_images if keep is None else task.train_images[keep]
    stored = torch.cat([task.prototype_images, unlabeled]).double().flatten(1)
    torch.testing.assert_close(model.prototypes_, stored.cpu(), rtol=0, atol=0)
    # the array form gives the same scores as the task form
    images = torch.cat([task.prototype_images, unlabeled])
    labels = torch.cat([task.prototype_labels, torch.full((len(unlabeled),), -1)])
    arrays = PixelKNNUnlabeled(profile="smoke", seed=3)
    np.testing.assert_array_equal(arrays.fit(images, labels).decision_function(task.test_images[:50]),
                                  model.decision_function(task.test_images[:50]))
    with pytest.raises(PDDLiteError, match="-1 for unlabeled images"):
        PixelKNNUnlabeled().fit(images)


def test_pixel_centroid_is_minus_the_best_cosine_after_centring():
    # prototypes (pixel a, pixel b): class 0 at (1, -1) and (1, -1), class 1 at (-1, 1) and (-1, 1):
    # the centre is (0, 0) on those two pixels (-1 elsewhere: cancels), class means (1, -1) and (-1, 1)
    protos = tiny_images([(1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, 1.0)])
    model = PixelCentroid().fit(protos, [0, 0, 1, 1])
    # (1, 1) is orthogonal to both means -> 0; (2, -2) is class 0's direction -> -1
    scores = model.decision_function(tiny_images([(1.0, 1.0), (1.0, -1.0)]))
    np.testing.assert_allclose(scores, [0.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("cls", [PixelKNN, PixelCentroid, PixelKNNUnlabeled])
def test_pixel_baselines_are_inductive(cls, mnist5k_task):
    task = mnist5k_task
    model = cls().fit(task)
    whole = model.decision_function(task.test_images)
    halves = np.concatenate([model.decision_function(task.test_images[:500]),
                             model.decision_function(task.test_images[500:])])
    np.testing.assert_array_equal(whole, halves)
    assert np.isfinite(whole).all() and whole.std() > 0


def test_pixel_methods_run_as_methods_and_refuse_pdd_options():
    row = run_task("mnist-5k", 1, profile="smoke", method="pixel-knn", runtime=QUIET_CPU)
    assert row["method"] == "pixel-knn" and 0 <= row["auroc"] <= 1 and row["split"] == "test"
    val = run_task("mnist-5k", 1, profile="smoke", method="pixel-centroid", runtime=QUIET_CPU,
                   split="validation")
    assert val["split"] == "validation"
    with pytest.raises(PDDLiteError, match="variants belong to PDD"):
        run_task("mnist-5k", 1, profile="smoke", method="pixel-knn", runtime=QUIET_CPU, variant="paper")
    with pytest.raises(PDDLiteError, match="unknown PixelKNN option.*k; known: .*chunk_size"):
        PixelKNN(k=3)
    with pytest.raises(PDDLiteError, match="needs labels y: the class of each prototype"):
        PixelKNN().fit(torch.zeros(2, 1, 28, 28))
    with pytest.raises(PDDLiteError, match="not fitted"):
        PixelCentroid().decision_function(torch.zeros(2, 1, 28, 28))


def test_chunk_size_is_a_positive_whole_number():
    with pytest.raises(PDDLiteError, match="chunk_size must be a positive whole number, got 0"):
        PixelKNN(chunk_size=0)
    with pytest.raises(PDDLiteError, match="chunk_size must be a positive whole number, got 'big'"):
        PixelCentroid(chunk_size="big")
    protos = tiny_images([(0.0, 0.0), (1.0, 1.0)])
    np.testing.assert_array_equal(PixelKNN(chunk_size=1).fit(protos, [0, 1]).decision_function(protos),
                                  PixelKNN().fit(protos, [0, 1]).decision_function(protos))

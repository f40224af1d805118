"""Tests of the validation task (pddlite.data.split_validation_task / make_validation_task).

Every default in pddlite is chosen on these tasks, so they must be built from training data alone,
keep the prototypes of the task they validate, and never share an image between their parts.
"""

import numpy as np
import pytest
import torch

from pddlite import make_task, make_validation_task
from pddlite.data import split_task, split_validation_task
from pddlite.errors import PDDLiteError

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def keys(images):
    return [bytes(x.numpy().tobytes()) for x in images]


@pytest.fixture(scope="module")
def pair():
    return make_task("mnist-5k", anomaly=7, shots=20, seed=3), make_validation_task("mnist-5k", anomaly=7, shots=20, seed=3)


def test_sizes_and_anomaly_rate(pair):
    real, val = pair
    # 3,600 normal training images - 180 prototypes = 3,420; 20% of each class held out: 9 x 76 = 684
    assert val.split == "validation" and real.split == "test"
    assert len(val.train_images) == 3420 - 684 and len(val.prototype_images) == 180
    n_anomalies = int(val.test_is_anomaly.sum())
    # digit 7 is 10% of mnist-5k's training split: 684 x 0.1 / 0.9 = 76 anomalies
    assert n_anomalies == 76 and len(val.test_images) == 684 + 76
    assert set(val.test_labels[val.test_is_anomaly].tolist()) == {7}
    assert 7 not in val.train_labels.tolist() and 7 not in val.test_labels[~val.test_is_anomaly].tolist()
    per_class = torch.bincount(val.test_labels[~val.test_is_anomaly], minlength=10).tolist()
    assert per_class == [76] * 7 + [0] + [76] * 2


def test_same_prototypes_as_the_task_it_validates(pair):
    real, val = pair
    assert torch.equal(real.prototype_images, val.prototype_images)
    assert torch.equal(real.prototype_labels, val.prototype_labels)


def test_parts_are_disjoint_and_come_from_training_data(pair):
    real, val = pair
    unlabeled, protos, held = keys(val.train_images), keys(val.prototype_images), keys(val.test_images)
    assert len(set(held)) == len(held)
    assert not set(held) & set(unlabeled) and not set(held) & set(protos) and not set(unlabeled) & set(protos)
    # every validation normal was an unlabeled image of the real task; no test image appears
    assert set(keys(val.test_images[~val.test_is_anomaly])) <= set(keys(real.train_images))
    assert not set(held) & set(keys(real.test_images))


def test_the_test_split_is_never_read():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((600, 1, 28, 28), dtype=np.float32)) * 2 - 1
    y = torch.arange(600) % 3
    a = split_validation_task(x, y, anomaly=0, shots=5, seed=1)
    # the same training data with any test split: split_task draws the same prototypes
    t = split_task(x, y, x[:10], y[:10], anomaly=0, shots=5, seed=1)
    assert torch.equal(a.prototype_images, t.prototype_images)
    b = split_validation_task(x, y, anomaly=0, shots=5, seed=1)
    assert torch.equal(a.test_images, b.test_images) and torch.equal(a.train_images, b.train_images)
    c = split_validation_task(x, y, anomaly=0, shots=5, seed=2)
    assert not torch.equal(a.test_images, c.test_images)


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.2, 2])
def test_holdout_must_be_a_fraction(holdout):
    x, y = torch.zeros(60, 1, 28, 28), torch.arange(60) % 3
    with pytest.raises(PDDLiteError, match="holdout must be a fraction"):
        split_validation_task(x, y, anomaly=0, shots=2, holdout=holdout)


def test_needs_the_anomaly_class_in_training():
    x, y = torch.zeros(60, 1, 28, 28), torch.arange(60) % 3
    with pytest.raises(PDDLiteError, match="has no class 5"):
        split_validation_task(x, y, anomaly=5, shots=2)

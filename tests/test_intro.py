"""pddlite.intro: the introduction's 2-D toy, one sphere against one density per class."""

from __future__ import annotations

import numpy as np
import pytest

from pddlite import PDDLiteError, intro


def test_the_between_class_anomaly_is_normal_to_the_sphere_and_anomalous_to_class_densities():
    toy = intro.between_classes_toy(n_classes=3, seed=0)
    summary = intro.toy_summary(toy)
    # the sphere's centre is the mean of all normal data, where the anomalies sit: more normal than every normal point
    assert summary["sphere"] == 0.0
    # Eq. 7 per class: more anomalous than every normal point
    assert summary["class densities"] == 1.0


def test_an_anomaly_outside_every_class_is_caught_by_both():
    toy = intro.between_classes_toy(anomaly_at=(7.0, 7.0), seed=1)
    summary = intro.toy_summary(toy)
    assert summary["sphere"] == 1.0 and summary["class densities"] == 1.0


def test_toy_shapes_and_class_centres_on_the_circle():
    toy = intro.between_classes_toy(n_classes=4, per_class=10, n_anomalies=3, radius=2.0)
    assert toy.normal.shape == (40, 2) and toy.anomalies.shape == (3, 2)
    assert np.bincount(toy.labels).tolist() == [10] * 4
    assert np.allclose(np.linalg.norm(toy.centres, axis=1), 2.0)
    with pytest.raises(PDDLiteError):
        intro.between_classes_toy(n_classes=1)


def test_scores_on_the_grid_match_the_pointwise_scores():
    toy = intro.between_classes_toy(per_class=8, seed=2)
    xs, ys, sphere, dens = intro.score_grid(toy, steps=11)
    assert sphere.shape == dens.shape == (11, 11)
    point = np.array([[xs[3], ys[7]]])
    assert np.isclose(sphere[7, 3], intro.sphere_score(toy.normal, point)[0])
    assert np.isclose(dens[7, 3], intro.class_density_score(toy.normal, toy.labels, point)[0])


def test_normal_rank_is_the_share_of_normal_scores_below():
    assert intro.normal_rank(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.5, 9.0])).tolist() == [0.0, 0.5, 1.0]

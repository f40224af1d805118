"""pddlite.error_analysis: the worst false alarms, the missed anomalies, and their nearest prototypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pddlite import PDDLiteError, error_analysis


def test_top_false_alarms_and_missed_anomalies_pick_the_right_images():
    scores = np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.05])
    is_anomaly = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    assert error_analysis.top_false_alarms(scores, is_anomaly, 2).tolist() == [1, 2]  # normal, highest first
    assert error_analysis.missed_anomalies(scores, torch.tensor(is_anomaly), 2).tolist() == [5, 3]  # anomalies, lowest first
    assert len(error_analysis.top_false_alarms(scores, is_anomaly, 10)) == 3  # no more than there are
    with pytest.raises(PDDLiteError):
        error_analysis.top_false_alarms(scores[:3], is_anomaly)


def test_nearest_prototypes_in_embeddings_and_in_pixels():
    prototypes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    idx, dist = error_analysis.nearest_prototypes(torch.tensor([[0.9, 0.1], [4.0, 4.0]]), prototypes, k=2)
    assert idx.tolist() == [[1, 0], [2, 1]]
    assert dist[0, 0] == pytest.approx(np.hypot(0.1, 0.1))
    images = torch.zeros(3, 1, 4, 4)
    images[1] += 1
    idx, _ = error_analysis.nearest_prototypes(images[1:2] * 0.9, images, k=1)  # images are flattened
    assert idx.tolist() == [[1]]
    with pytest.raises(PDDLiteError):
        error_analysis.nearest_prototypes(torch.zeros(2, 3), prototypes)


def test_class_counts_most_frequent_first():
    labels = np.array([3, 3, 7, 7, 7, 0])
    assert error_analysis.class_counts(labels, [0, 2, 3, 4, 5]) == {7: 3, 3: 1, 0: 1}

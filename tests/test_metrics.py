"""Tests of pddlite.metrics: AUROC and AUPRC with the anomaly class as the positive class (Sec. 5.1)."""

import numpy as np
import pytest
import torch

from pddlite.errors import PDDLiteError
from pddlite.metrics import auprc, auroc, evaluate

# Four test points: anomalies (positives) score 0.35 and 0.8, normals 0.1 and 0.4.
IS_ANOMALY = [False, True, False, True]
SCORES = [0.1, 0.35, 0.4, 0.8]


def test_auroc_hand_example():
    # Of the 2 x 2 (anomaly, normal) pairs, the anomaly scores higher in 3: 0.35 > 0.1,
    # 0.8 > 0.1, 0.8 > 0.4 (but 0.35 < 0.4): AUROC = 3/4.
    assert auroc(IS_ANOMALY, SCORES) == pytest.approx(0.75)


def test_auprc_hand_example():
    # By decreasing score: 0.8 (anomaly) precision 1 at recall 1/2; 0.4 (normal);
    # 0.35 (anomaly) precision 2/3 at recall 1. Average precision = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert auprc(IS_ANOMALY, SCORES) == pytest.approx(5 / 6)


def test_anomaly_is_the_positive_class():
    # Swapping which class is called anomalous turns the 3 of 4 winning pairs into 1 of 4, and the
    # average precision to: 0.4 (now positive) precision 1/2 at recall 1/2, 0.1 precision 2/4 at 1 -> 1/2.
    flipped = [not a for a in IS_ANOMALY]
    assert auroc(flipped, SCORES) == pytest.approx(0.25)
    assert auprc(flipped, SCORES) == pytest.approx(0.5)


def test_ties_count_half():
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert auroc([0, 1], [2.0, 2.0]) == pytest.approx(0.5)


def test_perfect_and_reversed_ranking():
    assert auroc([0, 0, 1], [1.0, 2.0, 3.0]) == 1.0
    assert auroc([0, 0, 1], [3.0, 2.0, 1.0]) == 0.0
    assert auprc([0, 0, 1], [1.0, 2.0, 3.0]) == 1.0


def test_torch_inputs_and_evaluate():
    y = torch.tensor(IS_ANOMALY)
    s = torch.tensor(SCORES, dtype=torch.float64, requires_grad=True)
    out = evaluate(y, s)
    assert set(out) == {"auroc", "auprc"}
    assert out["auroc"] == pytest.approx(0.75)
    assert out["auprc"] == pytest.approx(5 / 6)
    assert isinstance(out["auroc"], float)


def test_large_scores_keep_their_order():
    # Scores near the float64 maximum (a saturated A(x)) must still be ranked, not overflow.
    big = np.finfo(np.float64).max
    assert auroc(IS_ANOMALY, np.array(SCORES) * big) == pytest.approx(0.75)
    assert auprc(IS_ANOMALY, np.array(SCORES) * big) == pytest.approx(5 / 6)


@pytest.mark.parametrize("labels", [[False] * 4, [True] * 4])
def test_one_class_only_is_refused(labels):
    with pytest.raises(PDDLiteError, match="both"):
        auroc(labels, SCORES)
    with pytest.raises(PDDLiteError, match="both"):
        auprc(labels, SCORES)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(PDDLiteError, match="NaN or inf"):
        auroc(IS_ANOMALY, [0.1, bad, 0.4, 0.8])
    with pytest.raises(PDDLiteError, match="NaN or inf"):
        auprc(IS_ANOMALY, [0.1, bad, 0.4, 0.8])


def test_length_mismatch_is_refused():
    with pytest.raises(PDDLiteError, match="scores"):
        auroc(IS_ANOMALY, SCORES[:3])

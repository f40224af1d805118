"""AUROC and AUPRC with the anomaly class as the positive class (paper, Sec. 5.1).

Both come from scikit-learn. AUPRC is the average precision (the step-wise area under the
precision-recall curve), which is what ``average_precision_score`` computes; a detector that
guesses scores the anomaly rate, not 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from .errors import PDDLiteError


def _arrays(is_anomaly, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_anomaly.cpu() if isinstance(is_anomaly, torch.Tensor) else is_anomaly).astype(bool).ravel()
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise PDDLiteError(f"{len(s)} scores for {len(y)} labels")
    if y.all() or not y.any():
        raise PDDLiteError("AUROC/AUPRC need both normal and anomalous test images")
    if not np.isfinite(s).all():
        raise PDDLiteError("the anomaly scores contain NaN or inf")
    return y, s


def auroc(is_anomaly, scores) -> float:
    """Area under the ROC curve; anomaly = positive, higher score = more anomalous."""
    y, s = _arrays(is_anomaly, scores)
    return float(roc_auc_score(y, s))


def auprc(is_anomaly, scores) -> float:
    """Area under the precision-recall curve (average precision); anomaly = positive."""
    y, s = _arrays(is_anomaly, scores)
    return float(average_precision_score(y, s))


def evaluate(is_anomaly, scores) -> dict[str, float]:
    """Both metrics as a dict: ``{"auroc": ..., "auprc": ...}``."""
    return {"auroc": auroc(is_anomaly, scores), "auprc": auprc(is_anomaly, scores)}

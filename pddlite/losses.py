"""The margin losses of Sec. 4 (Eqs. 4-6) and the authors' sample-notebook variant.

All losses take embedded prototypes ``z`` (P x d) and their labels ``y`` (P), compute one
pairwise-distance matrix, and select pairs with boolean masks: no Python loop over classes or
pairs. Each unordered pair (j < k) is counted once.

The thresholds R_intra and R_inter are quantiles of the current pair distances and are treated
as constants (detached): the gradient flows through the pair distances only, as in a hinge with a
data-dependent margin.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .errors import PDDLiteError

_TINY = 1e-12  # squared distances below this count as zero (coinciding embeddings)


def pairwise_distances(z: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distances ||z_j - z_k|| between all rows, with a finite gradient everywhere.

    Uses ||a||^2 + ||b||^2 - 2 a.b after centring (centring leaves distances unchanged and keeps
    the cancellation small in high dimension). Where two embeddings coincide the distance is 0 and
    its gradient is 0 (the square root's gradient would be infinite there).
    """
    z = z - z.mean(dim=0, keepdim=True).detach()
    sq_norms = (z * z).sum(dim=1)
    d2 = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (z @ z.T)).clamp_min(0.0)
    d2 = d2 * (1.0 - torch.eye(len(z), device=z.device, dtype=z.dtype))  # exact zeros on the diagonal
    if squared:
        return d2
    positive = d2 > _TINY
    return torch.where(positive, d2.clamp_min(_TINY).sqrt(), torch.zeros_like(d2))


def _check(z: torch.Tensor, y: torch.Tensor) -> None:
    if z.ndim != 2:
        raise PDDLiteError(f"embeddings must be a P x d matrix, got shape {tuple(z.shape)}")
    if y.ndim != 1 or len(y) != len(z):
        raise PDDLiteError(f"labels must be a vector of length {len(z)}, got shape {tuple(y.shape)}")


def pair_masks(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean P x P masks of the unordered (j < k) same-class and different-class pairs."""
    upper = torch.ones(len(y), len(y), dtype=torch.bool, device=y.device).triu(diagonal=1)
    same = y[:, None] == y[None, :]
    return same & upper, ~same & upper


class PairIndex(NamedTuple):
    """Row and column indices of the unordered (j < k) same-class and different-class pairs."""

    same: tuple[torch.Tensor, torch.Tensor]
    different: tuple[torch.Tensor, torch.Tensor]


def pair_indices(y: torch.Tensor) -> PairIndex:
    """The pairs :func:`pair_masks` selects, as indices, in the same (row-major) order.

    Finding them reads a count on the host once; selecting by them afterwards does not, where a
    boolean mask would at every step. The tune-up's labels never change, so it computes them once
    and its margin step can be replayed as a CUDA graph (:mod:`pddlite.graphs`).
    """
    same, different = pair_masks(y)
    return PairIndex(tuple(same.nonzero(as_tuple=True)), tuple(different.nonzero(as_tuple=True)))


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile of a vector with linear interpolation (NumPy's default), detached: a constant
    threshold. The same arithmetic as ``torch.quantile`` (tested bit for bit): the position q (n - 1),
    the sorted values at its floor and ceiling, :func:`torch.lerp` between them; and no host sync.

    Computed in the values' own precision (float32 or float64; half precision is promoted to
    float32): a float64 threshold rounded to float32 would sit off the pair distance it equals,
    giving that pair a spurious hinge value and gradient.
    """
    if not 0.0 <= q <= 1.0:
        raise PDDLiteError(f"a quantile must lie in [0, 1], got {q}")
    v = values.detach().flatten()
    if v.dtype not in (torch.float32, torch.float64):
        v = v.float()
    position = q * (len(v) - 1)
    below, above = math.floor(position), math.ceil(position)
    ordered = v.sort().values
    return torch.lerp(ordered[below], ordered[above], position - below).to(values.dtype)


def intra_class_loss(z: torch.Tensor, y: torch.Tensor, q: float = 0.5, pairs: PairIndex | None = None) -> torch.Tensor:
    """Eq. 5: sum over same-class pairs of max(0, ||z_j - z_k|| - R_intra).

    R_intra is the ``q``-quantile (linear interpolation) of the same-class pair distances,
    held constant. Only pairs longer than the threshold contribute, so the descent shrinks the
    largest intra-class distances first, a smooth stand-in for the class diameter of Eq. 4.
    ``pairs`` is :func:`pair_indices` of ``y``, computed here when not given.
    """
    _check(z, y)
    d = pairwise_distances(z)[(pairs or pair_indices(y)).same]
    if d.numel() == 0:
        raise PDDLiteError("intra_class_loss needs at least two prototypes of one class")
    return torch.relu(d - _quantile(d, q)).sum()


def inter_class_loss(z: torch.Tensor, y: torch.Tensor, q: float = 0.25, pairs: PairIndex | None = None) -> torch.Tensor:
    """Eq. 6: sum over different-class pairs of max(0, R_inter - ||z_j - z_k||).

    R_inter is the ``q``-quantile of the different-class pair distances, held constant: the
    loss pushes apart the closest pairs of different classes. ``pairs`` as in :func:`intra_class_loss`.
    """
    _check(z, y)
    d = pairwise_distances(z)[(pairs or pair_indices(y)).different]
    if d.numel() == 0:
        raise PDDLiteError("inter_class_loss needs prototypes of at least two classes")
    return torch.relu(_quantile(d, q) - d).sum()


def margin_loss(
    z: torch.Tensor, y: torch.Tensor, beta: float = 3.0, q_intra: float = 0.5, q_inter: float = 0.25,
    pairs: PairIndex | None = None,
) -> torch.Tensor:
    """The PDD loss L = L_intra + beta * L_inter (Eqs. 5 and 6; beta = 3 in Sec. 5.1); ``pairs`` is
    :func:`pair_indices` of ``y`` (computed here when not given)."""
    _check(z, y)
    pairs = pairs or pair_indices(y)
    return intra_class_loss(z, y, q_intra, pairs) + beta * inter_class_loss(z, y, q_inter, pairs)


def diameter_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 4 summed over classes: sum_c R_c*, R_c* the largest distance between two prototypes of c.

    Only the single longest pair of each class receives a gradient, which is why the paper
    replaces it with the hinge sum of Eq. 5.
    """
    _check(z, y)
    same, _ = pair_masks(y)
    d = pairwise_distances(z).masked_fill(~same, float("-inf"))
    row_max = d.max(dim=1).values  # longest same-class pair starting at each prototype (j < k)
    classes, index = torch.unique(y, return_inverse=True)
    per_class = torch.full((len(classes),), float("-inf"), device=z.device, dtype=z.dtype)
    per_class = per_class.scatter_reduce(0, index, row_max, reduce="amax")
    return torch.where(torch.isfinite(per_class), per_class, torch.zeros_like(per_class)).sum()


# --------------------------------------------------------------------------- sample-notebook variant


def _class_stats(d2: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean and (population) std of the unordered within-class squared distances."""
    same, _ = pair_masks(y)
    classes, index = torch.unique(y, return_inverse=True)
    onehot = (index[:, None] == torch.arange(len(classes), device=y.device)[None, :]).to(d2.dtype)
    # count[c] and sum[c] over pairs (j<k) with both in class c, via one-hot contractions
    pair_w = same.to(d2.dtype)
    count = torch.einsum("jc,jk,kc->c", onehot, pair_w, onehot)
    total = torch.einsum("jc,jk,kc->c", onehot, pair_w * d2, onehot)
    total_sq = torch.einsum("jc,jk,kc->c", onehot, pair_w * d2 * d2, onehot)
    if bool((count == 0).any()):
        raise PDDLiteError("the reference losses need at least two prototypes in every class")
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    return mean, var.sqrt()


def reference_intra_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The sample notebook's intra term: RMS of (class mean - R) over classes whose mean exceeds R.

    Uses squared distances; the class mean is over its within-class pairs; R is the median of the
    class means (held constant). Returns 0 when no class exceeds R.
    """
    _check(z, y)
    mean, _ = _class_stats(pairwise_distances(z, squared=True), y)
    excess = torch.relu(mean - _quantile(mean, 0.5))
    n = (excess > 0).sum()
    return torch.where(n > 0, ((excess ** 2).sum() / n.clamp_min(1)).sqrt(), excess.sum() * 0.0)


def reference_inter_loss(z: torch.Tensor, y: torch.Tensor, lower_triangle_quirk: bool = True) -> torch.Tensor:
    """The sample notebook's inter term: RMS of (R - d) over between-class pairs with d < R.

    d are squared distances; R = max(median of the between-class d, max over classes of
    (class mean + 2 std) of the within-class d), held constant. With ``lower_triangle_quirk`` only
    the pairs whose within-class ranks satisfy rank(j) > rank(k) count (the notebook keeps the
    strict lower triangle of each between-class block: 45 of 100 pairs for 10 shots).
    """
    _check(z, y)
    d2 = pairwise_distances(z, squared=True)
    _, diff = pair_masks(y)
    if lower_triangle_quirk:
        rank = _rank_within_class(y)
        # orient each pair by class order, then keep rank(first class) > rank(second class)
        first_is_lower = y[:, None] < y[None, :]
        r_first = torch.where(first_is_lower, rank[:, None], rank[None, :])
        r_second = torch.where(first_is_lower, rank[None, :], rank[:, None])
        diff = diff & (r_first > r_second)
    d = d2[diff]
    if d.numel() == 0:
        raise PDDLiteError("reference_inter_loss needs prototypes of at least two classes")
    mean, std = _class_stats(d2, y)
    threshold = torch.maximum(_quantile(d2[pair_masks(y)[1]], 0.5), (mean + 2 * std).max().detach())
    short = torch.relu(threshold - d)
    n = (short > 0).sum()
    return torch.where(n > 0, ((short ** 2).sum() / n.clamp_min(1)).sqrt(), short.sum() * 0.0)


def _rank_within_class(y: torch.Tensor) -> torch.Tensor:
    """The position of each prototype among those of its class, in the order given."""
    same = (y[:, None] == y[None, :]).to(torch.int64)
    return (same.tril(diagonal=-1)).sum(dim=1)

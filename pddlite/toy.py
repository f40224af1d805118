"""A 2-D toy for the margin losses of Sec. 4: free points moved by gradient descent on Eqs. 4-6.

In PDD the losses of :mod:`pddlite.losses` act on embeddings f(p_j; W) and their gradients move
the network weights W. Here the embeddings are free points in the plane: a gradient step moves the
points directly, so one can watch what each loss asks of the embedding. The losses are the
library's own (:func:`~pddlite.losses.diameter_loss` for Eq. 4,
:func:`~pddlite.losses.intra_class_loss` for Eq. 5, :func:`~pddlite.losses.inter_class_loss` for
Eq. 6 and :func:`~pddlite.losses.margin_loss` for L = L_intra + beta L_inter), not copies.

:func:`compare_descent` measures the paper's claim that descending the hinge sum of Eq. 5 shrinks
the classes "substantially faster" than descending the diameters R_c* of Eq. 4 (only the longest
pair of each class receives a gradient there). :func:`compare_descent_network` repeats the
measurement where the paper makes it, on the weights of a discriminator.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .embedding import normalize
from .errors import PDDLiteError
from .options import choice
from .losses import (_quantile, diameter_loss, inter_class_loss, intra_class_loss, margin_loss, pair_masks,
                     pairwise_distances)
from .modes import network_mode

#: The losses a toy run can descend, by name, with the equation each implements.
LOSSES: dict[str, str] = {
    "margin": "Eqs. 5-6: L_intra + beta * L_inter",
    "intra": "Eq. 5: hinge sum over same-class pairs above the q_intra-quantile",
    "inter": "Eq. 6: hinge sum over different-class pairs below the q_inter-quantile",
    "diameter": "Eq. 4: sum over classes of the diameter R_c*",
    "margin_eq4": "Eq. 4 in place of Eq. 5: sum_c R_c* + beta * L_inter",
}


def loss_function(name: str, beta: float = 3.0, q_intra: float = 0.5, q_inter: float = 0.25
                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``name`` (a key of :data:`LOSSES`) as a function of (embeddings, labels)."""
    if choice("toy loss", name, LOSSES) == "margin":
        return lambda z, y: margin_loss(z, y, beta, q_intra, q_inter)
    if name == "intra":
        return lambda z, y: intra_class_loss(z, y, q_intra)
    if name == "inter":
        return lambda z, y: inter_class_loss(z, y, q_inter)
    if name == "diameter":
        return diameter_loss
    return lambda z, y: diameter_loss(z, y) + beta * inter_class_loss(z, y, q_inter)  # "margin_eq4"


def separation(z: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """How compact and how separated the classes are, measured the same way for every loss.

    * ``diameter``: the sum over classes of R_c* (the value of Eq. 4),
    * ``mean_intra`` / ``mean_inter``: the mean same-class / different-class pair distance,
    * ``ratio``: mean_intra / mean_inter, scale-free (smaller: tighter classes, further apart).
    """
    z = z.detach().float()
    d = pairwise_distances(z)
    same, diff = pair_masks(y)
    mean_intra = float(d[same].mean()) if same.any() else float("nan")
    mean_inter = float(d[diff].mean()) if diff.any() else float("nan")
    return {
        "diameter": float(diameter_loss(z, y)),
        "mean_intra": mean_intra,
        "mean_inter": mean_inter,
        "ratio": mean_intra / mean_inter if mean_inter > 0 else float("nan"),
    }


def ib_terms(z: torch.Tensor, y: torch.Tensor, sigma: float = 0.5, sigma_hat: float = 1.0) -> dict[str, float]:
    """The two terms of the information bottleneck read in distances (Eqs. 2-3), up to constants.

    * ``relevance`` (Eq. 2, I(Y;Z)): the mean over points of
      log softmax_y(-||z - mu_y||^2 / (2 sigma^2)) at the point's own class, mu_y the class mean,
      one spread ``sigma`` for every class: larger when each point is nearer its own class mean;
    * ``compression`` (Eq. 3, I(X;Z)): minus the mean squared distance over all pairs, divided by
      2 ``sigma_hat``^2: larger (less compression) when the points are closer together;
      ``compression_same`` and ``compression_different`` are the parts of that sum from same-class
      and from different-class pairs (they add up to ``compression``).

    Both use **squared** distances, as the Gaussian assumptions give them; Eqs. 4-6 use plain ones.
    """
    z = z.detach().float()
    yy = torch.as_tensor(y).long()
    classes, index = torch.unique(yy, return_inverse=True)
    means = torch.stack([z[index == c].mean(dim=0) for c in range(len(classes))])
    sq = torch.cdist(z, means) ** 2
    relevance = torch.log_softmax(-sq / (2 * sigma ** 2), dim=1).gather(1, index[:, None]).mean()
    same, different = pair_masks(yy)
    n_pairs = int(same.sum() + different.sum())
    sq_pairs = torch.cdist(z, z) ** 2
    part = {name: float(-sq_pairs[mask].sum() / (n_pairs * 2 * sigma_hat ** 2))
            for name, mask in (("same", same), ("different", different))}
    return {"relevance": float(relevance), "compression": part["same"] + part["different"],
            "compression_same": part["same"], "compression_different": part["different"]}


def thresholds(z: torch.Tensor, y: torch.Tensor, q_intra: float = 0.5, q_inter: float = 0.25
               ) -> dict[str, object]:
    """The thresholds of Eqs. 5-6 as the losses compute them, and which pairs each hinge touches.

    R_intra is **one** quantile over the same-class pairs of all classes pooled (R_inter over all
    different-class pairs), not one per class. Returns ``R_intra``, ``R_inter``, the pair counts
    ``intra_pairs``, ``intra_above`` (pairs longer than R_intra: the terms of Eq. 5),
    ``inter_pairs``, ``inter_below`` (pairs shorter than R_inter: the terms of Eq. 6), and
    ``above_per_class``: {class: (pairs above R_intra, pairs of that class)}.
    """
    z = z.detach().float()
    yy = torch.as_tensor(y).long()
    d = pairwise_distances(z)
    same, diff = pair_masks(yy)
    r_intra, r_inter = float(_quantile(d[same], q_intra)), float(_quantile(d[diff], q_inter))
    above = same & (d > r_intra)
    per_class = {}
    for c in torch.unique(yy).tolist():
        rows = (yy == c)[:, None]
        per_class[int(c)] = (int((above & rows).sum()), int((same & rows).sum()))
    return {"R_intra": r_intra, "R_inter": r_inter,
            "intra_pairs": int(same.sum()), "intra_above": int(above.sum()),
            "inter_pairs": int(diff.sum()), "inter_below": int((diff & (d < r_inter)).sum()),
            "above_per_class": per_class}


@dataclass
class DescentRun:
    """One descent: the loss at every step, tracked quantities, and (for points) the paths.

    ``losses[i]`` and ``metrics[k][i]`` are measured before step ``i + 1``; the last entry of each
    metric is the state after the final step (so the metrics have ``steps + 1`` entries).
    """

    loss: str
    labels: torch.Tensor
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    trajectory: np.ndarray | None = None  # (steps + 1) x P x 2, free points only
    initial_gradient: np.ndarray | None = None  # P x 2, free points only

    def steps_to(self, fraction: float, metric: str = "diameter") -> int | None:
        """The first step after which ``metric`` is at most ``fraction`` of its start, or None."""
        values = self.metrics[metric]
        target = fraction * values[0]
        for i, v in enumerate(values):
            if v <= target:
                return i
        return None


def _record(run: DescentRun, z: torch.Tensor, y: torch.Tensor) -> None:
    for k, v in separation(z, y).items():
        run.metrics.setdefault(k, []).append(v)


def make_toy_prototypes(
    n_classes: int = 3, shots: int = 6, radius: float = 1.5, spread: float = 0.8, seed: int = 0,
    unit: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``shots`` 2-D points per class around class centres evenly spaced on a circle.

    With the defaults the classes overlap a little, so both terms of the loss have work to do.
    ``unit=True`` scales every point to length 1, onto the unit circle, as pddlite's default
    embedding (centred, L2-normalised) lies on the unit sphere.
    Returns (points P x 2 float32, labels P int64), class by class.
    """
    if n_classes < 2 or shots < 2:
        raise PDDLiteError("the toy needs at least two classes of at least two points each")
    g = torch.Generator().manual_seed(int(seed))
    angles = torch.arange(n_classes, dtype=torch.float32) * (2 * math.pi / n_classes)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    points = centres.repeat_interleave(shots, dim=0) + spread * torch.randn(n_classes * shots, 2, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(shots)
    return (_to_unit(points) if unit else points), labels


def _to_unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


def gradient(points: torch.Tensor, labels: torch.Tensor, loss: str = "margin", **params: float) -> torch.Tensor:
    """The gradient of the loss with respect to each point (P x 2): a descent step moves along minus it."""
    z = points.detach().clone().float().requires_grad_(True)
    value = loss_function(loss, **params)(z, labels)
    (grad,) = torch.autograd.grad(value, z)
    return grad


def descend(
    points: torch.Tensor,
    labels: torch.Tensor,
    loss: str = "margin",
    steps: int = 50,
    lr: float = 0.05,
    normalize_step: bool = False,
    unit: bool = False,
    **params: float,
) -> DescentRun:
    """``steps`` steps of plain gradient descent on free points; returns a :class:`DescentRun`.

    ``normalize_step=True`` moves the points by exactly ``lr`` (Frobenius norm of the whole step)
    each time, so two losses can be compared by the direction of their gradients alone.
    ``unit=True`` scales every point back to length 1 after each step (projected gradient
    descent on the unit circle), as pddlite's L2-normalised embedding stays on the unit sphere.
    ``params`` go to :func:`loss_function` (``beta``, ``q_intra``, ``q_inter``).
    """
    if steps < 0 or lr <= 0:
        raise PDDLiteError("steps must be >= 0 and lr > 0")
    fn = loss_function(loss, **params)
    y = torch.as_tensor(labels).long()
    z = points.detach().clone().float()
    run = DescentRun(loss=loss, labels=y)
    path = [z.clone()]
    for step in range(steps + 1):
        zz = z.clone().requires_grad_(True)
        value = fn(zz, y)
        run.losses.append(float(value.detach()))
        _record(run, z, y)
        if step == steps:
            break
        (grad,) = torch.autograd.grad(value, zz)
        if step == 0:
            run.initial_gradient = grad.numpy().copy()
        if normalize_step:
            grad = grad / grad.norm().clamp_min(1e-12)
        z = z - lr * grad
        if unit:
            z = _to_unit(z)
        path.append(z.clone())
    if steps == 0:
        run.initial_gradient = gradient(points, y, loss, **params).numpy()
    run.trajectory = torch.stack(path).numpy()
    return run


def compare_descent(
    points: torch.Tensor,
    labels: torch.Tensor,
    losses: Sequence[str] = ("diameter", "intra"),
    steps: int = 100,
    lr: float = 0.02,
    normalize_step: bool = False,
    unit: bool = False,
    **params: float,
) -> dict[str, DescentRun]:
    """Descend each loss from the same starting points with the same step rule (Eq. 4 against Eq. 5)."""
    return {name: descend(points, labels, name, steps, lr, normalize_step, unit, **params) for name in losses}


def compare_descent_network(
    discriminator: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    losses: Sequence[str] = ("diameter", "intra"),
    steps: int = 30,
    lr: float = 2e-4,
    optimizer: str = "adam",
    normalization: str = "center-l2",
    **params: float,
) -> dict[str, DescentRun]:
    """Eq. 4 against Eq. 5 where the paper descends them: on the weights W of the embedding network.

    Each loss gets its own copy of ``discriminator`` (its ``features`` are f(x; W), as in the
    tune-up, in eval mode and normalised as ``normalization`` says, ``"center-l2"`` centring on
    the mean of the embedded ``images`` as the tune-up does with its prototypes); the copies take ``steps``
    optimiser steps (``"adam"``, as the tune-up, or ``"sgd"``) on the feature layers only, and the
    same :func:`separation` quantities of the embedded ``images`` are recorded at every step.
    The network passed in is left unchanged.
    """
    if optimizer not in ("adam", "sgd"):
        raise PDDLiteError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    y = torch.as_tensor(labels).long().to(images.device)
    runs = {}
    for name in losses:
        fn = loss_function(name, **params)
        net = copy.deepcopy(discriminator)
        body = getattr(net, "body", net)
        opt = (torch.optim.Adam(body.parameters(), lr=lr, betas=(0.5, 0.999)) if optimizer == "adam"
               else torch.optim.SGD(body.parameters(), lr=lr))
        run = DescentRun(loss=name, labels=y.cpu())
        for step in range(steps + 1):
            with network_mode(net, train=False):
                raw = net.features(images).float()
            # the tune-up's embedding: "center-l2" centres on the prototypes' mean (held constant)
            z = normalize(raw, normalization, raw.mean(dim=0).detach()) if normalization == "center-l2" \
                else normalize(raw, normalization)
            value = fn(z, y)
            run.losses.append(float(value.detach()))
            _record(run, z, y)
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        runs[name] = run
    return runs


def descent_table(runs: dict[str, DescentRun], metric: str = "diameter",
                  fractions: Sequence[float] = (0.9, 0.75, 0.5)) -> list[dict[str, object]]:
    """Rows for a table: per run, the start and end of ``metric`` and the steps to reach each fraction."""
    rows = []
    for name, run in runs.items():
        values = run.metrics[metric]
        row: dict[str, object] = {"loss": name, f"{metric} at start": round(values[0], 4),
                                  f"{metric} at end": round(values[-1], 4)}
        for f in fractions:
            row[f"steps to {int(round(f * 100))}%"] = run.steps_to(f, metric)
        rows.append(row)
    return rows

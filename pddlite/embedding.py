"""The PDD embedding f(x): the discriminator's flattened last feature map, optionally normalised.

The paper embeds with the discriminator's features (Tables 3-4) and measures Euclidean
distances there (Eqs. 4-7). Raw features have norms that vary with the image (a thin digit '1'
lights up fewer units than an '8'), and after the final LeakyReLU they nearly all share one
orthant, so raw distances mostly measure "how much ink". pddlite therefore offers:

* ``"none"``: the raw features, the paper taken literally;
* ``"l2"``: each embedding divided by its norm (compares directions, but all directions are close);
* ``"center-l2"`` (the default): subtract the centre c, the mean raw feature of the prototypes,
  then divide by the norm, so that embeddings spread over the whole unit sphere around the
  normal data. c is recomputed from the prototypes at every tune-up step and fixed at scoring.

The choice was measured (see the table in docs/results.md): on mnist-5k with anomaly 1, Eq. 7 after 8 epochs of
pre-training at lr 2e-4 scores AUROC 0.58 with ``"none"``, 0.68 with ``"l2"`` and 0.92 with
``"center-l2"``.

BatchNorm: embeddings are computed in eval mode (running statistics), for prototypes during the
tune-up as well as for test images at scoring time, so the loss shapes exactly the function that
scores. (In train mode, the 180 prototypes would be normalised by their own batch statistics,
a different function from the one applied to a test image.)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .device import autocast
from .errors import PDDLiteError
from .options import choice
from .modes import network_mode

NORMALIZATIONS = ("center-l2", "l2", "none")


def normalize(features: torch.Tensor, how: str = "center-l2", center: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise raw embeddings: ``"center-l2"`` (needs ``center``), ``"l2"`` or ``"none"``."""
    if choice("embedding normalisation", how, NORMALIZATIONS) == "none":
        return features
    if how == "center-l2":
        if center is None:
            raise PDDLiteError("center-l2 normalisation needs the centre (the prototypes' mean raw feature)")
        features = features - center
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


def embed(
    discriminator: nn.Module,
    images: torch.Tensor,
    normalization: str = "center-l2",
    center: torch.Tensor | None = None,
    chunk: int = 2048,
) -> torch.Tensor:
    """f(x) for many images, in eval mode and without gradients, as float32 on the images' device."""
    out = []
    with torch.no_grad(), network_mode(discriminator, train=False), autocast(images.device):
        for part in images.split(chunk):
            out.append(discriminator.features(part).float())
    raw = torch.cat(out) if out else torch.empty(0, device=images.device)
    return normalize(raw, normalization, center)


def prototype_center(discriminator: nn.Module, prototypes: torch.Tensor) -> torch.Tensor:
    """The centre c of ``"center-l2"``: the mean raw feature of the prototypes, eval mode."""
    return embed(discriminator, prototypes, "none").mean(dim=0)


@contextlib.contextmanager
def fresh_batchnorm_statistics(*modules: nn.Module) -> Iterator[None]:
    """Inside the block, the BatchNorm layers of ``modules`` start their running statistics afresh
    and accumulate the plain average of every batch they see (train mode, momentum ``None``);
    on leaving, each layer's momentum and each module's mode are restored. Weights are not touched.
    """
    norms = [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        with network_mode(*modules, train=True):
            yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, images: torch.Tensor, batch_size: int = 200) -> nn.Module:
    """Recompute every BatchNorm layer's running statistics from ``images`` alone, in place.

    During GAN training a discriminator's running statistics average over real and generated
    batches (two of every three forward passes see fakes), so in eval mode f(x) normalises real
    images with statistics that are mostly those of generated ones. This pass replaces them by the
    plain average over ``images`` (:func:`fresh_batchnorm_statistics`). Beyond the paper.
    """
    with fresh_batchnorm_statistics(module), autocast(images.device):
        for part in images.split(batch_size):
            module(part)
    return module

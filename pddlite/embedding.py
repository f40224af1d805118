"""The PDD embedding f(x): the discriminator's flattened last feature map, optionally normalised.

The paper embeds with the discriminator's features (Tables 3-4) and measures Euclidean
distances there (Eqs. 4-7). Raw features have norms that vary with the image (a thin digit '1'
lights up fewer units than an '8'), so raw distances mix "how much ink" with "which class"; with
``normalize="l2"`` every embedding is divided by its norm, so distances compare directions only.
pddlite's measured default is ``"l2"`` (see the README's table of measurements); ``"none"`` is the
paper taken literally.

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

NORMALIZATIONS = ("l2", "none")


def normalize(features: torch.Tensor, how: str = "l2") -> torch.Tensor:
    """Normalise embeddings: ``"l2"`` (unit Euclidean norm) or ``"none"``."""
    if how == "none":
        return features
    if how == "l2":
        return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    raise PDDLiteError(f"unknown embedding normalisation {how!r}; choose one of {NORMALIZATIONS}")


@contextlib.contextmanager
def bn_mode(module: nn.Module, mode: str) -> Iterator[None]:
    """Temporarily put ``module`` in ``"eval"`` or ``"train"`` mode, restoring its mode after."""
    if mode not in ("eval", "train"):
        raise PDDLiteError(f"BatchNorm mode must be 'eval' or 'train', got {mode!r}")
    was = module.training
    module.train(mode == "train")
    try:
        yield
    finally:
        module.train(was)


def embed(
    discriminator: nn.Module,
    images: torch.Tensor,
    normalization: str = "l2",
    chunk: int = 2048,
) -> torch.Tensor:
    """f(x) for many images, in eval mode and without gradients, as float32 on the images' device."""
    out = []
    with torch.no_grad(), bn_mode(discriminator, "eval"), autocast(images.device):
        for part in images.split(chunk):
            out.append(normalize(discriminator.features(part).float(), normalization))
    return torch.cat(out) if out else torch.empty(0)

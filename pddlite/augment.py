"""Random views of whole image batches: shifts and rotations for the prototypes in the tune-up,
crops and flips for MCDD's image recipe.

The margin loss of Eqs. 5-6 sees only the K x N prototypes. Drawn afresh at every margin step, a
small affine jitter (a shift of a pixel or two and a rotation of a few degrees, digits stay
digits) shows the loss a different view of each prototype every time, so that it cannot be met by
memorising 180 exact images. This is beyond the paper, which trains on the prototypes as they are.

:func:`random_crop_flip` is the augmentation of the Deep-MCDD image script (a random crop of the
zero-padded image and a horizontal flip), used by :class:`pddlite.baselines.MCDD` on 64x64 images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    max_shift: float = 2.0,
    max_degrees: float = 10.0,
    fill: float = -1.0,
) -> torch.Tensor:
    """Each image shifted by up to ``max_shift`` pixels per axis and rotated by up to ``max_degrees``.

    One batched ``grid_sample`` (bilinear), no Python loop over images. Pixels that come in from
    outside the frame take the value ``fill`` (-1, the background of images in [-1, 1]). The
    random numbers come from ``generator`` on the CPU, so the same seed gives the same views on
    any device.
    """
    n, _, h, w = images.shape
    u = torch.rand(n, 3, generator=generator) * 2.0 - 1.0  # uniform in [-1, 1): angle, dx, dy
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in normalised coordinates: a shift of s pixels is 2 s / size
    theta = torch.stack([
        torch.stack([cos, -sin, u[:, 1] * 2.0 * max_shift / w], dim=1),
        torch.stack([sin, cos, u[:, 2] * 2.0 * max_shift / h], dim=1),
    ], dim=1).to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros: sample (x - fill) and add fill back, so the padding is `fill`
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int, fill: float = -1.0) -> torch.Tensor:
    """Each image padded by ``pad`` pixels of ``fill``, cropped back to its size at a random offset,
    and flipped left-right with probability 1/2: a shift by a whole number of pixels, exactly.

    One gather over the batch, no loop over images; the offsets and flips come from ``generator``
    on the CPU, so the same seed gives the same views on any device.
    """
    n, c, h, w = images.shape
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = F.pad(images, (pad, pad, pad, pad), value=fill)
    rows = (offsets[:, :1] + torch.arange(h)).to(images.device)  # n x h
    cols = (offsets[:, 1:] + torch.arange(w)).to(images.device)  # n x w
    cols = torch.where(flips.to(images.device)[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]

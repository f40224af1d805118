"""The three variants of PDD: presets of one set of options, run by one code path.

A variant is data: a dict of :class:`pddlite.PDDConfig` fields. Nothing in pddlite branches on a
variant's name; the trainer, the scorer and the task read the fields.

* ``paper``: what the paper's text says where it speaks (Sec. 4, Sec. 5.1, Tables 2-4): raw
  features f(x), Euclidean Eqs. 5-6 with beta 3 and q 0.5 / 0.25, Eq. 7 with w = 10, Adam lr 0.002
  for both stages, Table 2's schedule; where it is silent, the documented choice next to the field
  (z ~ N(0, 1), continued adversarial training during the tune-up, BatchNorm in eval mode).
* ``reference``: the authors' sample notebook (see its notes): squared-distance terms alternated
  by epoch at 1% and 0.1% of lr 2e-4, z ~ N(0, 0.1^2), prototypes kept in the unlabeled set, the
  notebook's generator layout, tune-up batches of 100, and transductive UMAP-3D + KDE scoring.
* ``pddlite`` (the default): the paper's pre-training and losses, with four departures, each
  chosen on validation tasks (:func:`pddlite.make_validation_task`, never a test split) and
  measured in docs/results.md: the embedding centred on the prototypes' mean and L2-normalised; the
  Eq. 7 bandwidth in the embedding's own units (at w = 10 on unit vectors Eq. 7 is its class-mean
  limit, 0.04-0.06 AUROC lower); the margin steps at lr 2e-4 (at the paper's 0.002 the gain peaks
  after about 40 steps and then falls; at 2e-4 it keeps growing over 156); and, beyond the paper,
  Eq. 7 over the prototypes and the unlabeled training images pseudo-labeled by their nearest
  prototype (``scoring="kde-pseudo"``), with w = 0.1 x the median within-class prototype distance
  (ten classes x three seeds: 0.907 mean AUROC against 0.836 for Eq. 7 on the prototypes alone at
  its best w, 0.25 x median). It is inductive: an image's score depends on that image and the
  training data only.
"""

from __future__ import annotations

from typing import Any

from .options import choice

#: variant name -> the PDDConfig fields it sets (every other field keeps its dataclass default).
#: Every variant sets the same fields, so two variants differ exactly where their entries do.
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": dict(
        layout="paper", keep_prototypes=False, z_std=1.0, lr=2e-3, margin="eq56", margin_lr=2e-3,
        normalization="none", bandwidth=10.0, bandwidth_unit="absolute", scoring="kde",
        augment_prototypes=False, recalibrate_bn=False, notebook_tune_batch_size=None,
    ),
    "reference": dict(
        layout="reference", keep_prototypes=True, z_std=0.1, lr=2e-4, margin="reference", margin_lr=2e-4,
        normalization="none", bandwidth=10.0, bandwidth_unit="absolute", scoring="umap",
        augment_prototypes=False, recalibrate_bn=False, notebook_tune_batch_size=100,
    ),
    "pddlite": dict(
        layout="paper", keep_prototypes=False, z_std=1.0, lr=2e-3, margin="eq56", margin_lr=2e-4,
        normalization="center-l2", bandwidth=0.1, bandwidth_unit="intra-median", scoring="kde-pseudo",
        augment_prototypes=False, recalibrate_bn=False, notebook_tune_batch_size=None,
    ),
}

DEFAULT_VARIANT = "pddlite"


def variant_options(name: str) -> dict[str, Any]:
    """The fields of variant ``name`` (a copy), or a one-line error naming the known variants."""
    return dict(VARIANTS[choice("variant", name, VARIANTS)])


def differences(a: str, b: str) -> dict[str, tuple[Any, Any]]:
    """field -> (value in ``a``, value in ``b``) for every field where the two variants differ."""
    va, vb = variant_options(a), variant_options(b)
    return {k: (va[k], vb[k]) for k in va if va[k] != vb[k]}

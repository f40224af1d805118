"""The two families of margin terms of the tune-up, as two small strategies handed to one trainer.

* :class:`Eq56Terms` (``margin="eq56"``, the ``paper`` and ``pddlite`` variants): Eqs. 5-6,
  L = L_intra + beta * L_inter (:func:`pddlite.losses.margin_loss`) over all embedded prototypes,
  embedded in eval mode and normalised as the scorer will see them, one Adam optimiser.
* :class:`NotebookTerms` (``margin="reference"``, the authors' sample notebook): the notebook's
  terms on squared distances, :func:`pddlite.losses.reference_intra_loss` on even epochs and
  :func:`pddlite.losses.reference_inter_loss` on odd ones, each with its own Adam optimiser at 1%
  and 0.1% of the base learning rate, prototypes embedded in train mode; the generator steps on
  twice the batch of fakes at twice the learning rate.

:class:`pddlite.tuneup.TuneUpTrainer` asks a strategy for its optimisers and, at every margin
step, for the loss and the optimiser to step; it has no branch of its own on the family.
"""

from __future__ import annotations

import torch
from torch import nn

from .embedding import normalize
from .options import choice
from .gan import adam
from .losses import PairIndex, margin_loss, pair_indices, reference_inter_loss, reference_intra_loss
from .modes import network_mode


class MarginTerms:
    """A family of margin terms: its optimisers, its loss, and how it changes the adversarial steps."""

    name: str = ""
    graph_safe: bool = False  # whether a margin step can be replayed as a CUDA graph (pddlite.graphs)
    generator_lr_factor: float = 1.0  # the tune-up's generator learning rate, as a multiple of lr
    fake_factor: int = 1  # generated images per real image in the generator's step

    def optimizers(self, features: list[nn.Parameter], lr: float, margin_lr: float,
                   betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def loss(self, discriminator: nn.Module, prototypes: torch.Tensor, labels: torch.Tensor, epoch: int,
             autocast) -> tuple[torch.Tensor, str]:
        """The margin loss of one step and the name of the optimiser that steps on it."""
        raise NotImplementedError


class Eq56Terms(MarginTerms):
    """Eqs. 5-6 with the paper's beta, q_intra and q_inter, on embeddings normalised by ``normalization``."""

    name = "eq56"
    graph_safe = True  # pairs selected by indices computed once (pair_indices), quantiles by sorting

    def __init__(self, beta: float = 3.0, q_intra: float = 0.5, q_inter: float = 0.25,
                 normalization: str = "center-l2"):
        self.beta, self.q_intra, self.q_inter, self.normalization = beta, q_intra, q_inter, normalization
        self._pairs: tuple[torch.Tensor, PairIndex] | None = None

    def pairs(self, labels: torch.Tensor) -> PairIndex:
        """:func:`~pddlite.losses.pair_indices` of ``labels``, found once: a trainer's prototype
        labels never change, and selecting by indices needs no host sync at each step."""
        if self._pairs is None or self._pairs[0] is not labels:
            self._pairs = (labels, pair_indices(labels))
        return self._pairs[1]

    def optimizers(self, features, lr, margin_lr, betas):
        return {"margin": adam(features, margin_lr, betas)}

    def loss(self, discriminator, prototypes, labels, epoch, autocast):
        with network_mode(discriminator, train=False), autocast():
            raw = discriminator.features(prototypes).float()
        z = normalize(raw, self.normalization, raw.mean(dim=0).detach())
        return margin_loss(z, labels, self.beta, self.q_intra, self.q_inter, self.pairs(labels)), "margin"


class NotebookTerms(MarginTerms):
    """The sample notebook's squared-distance terms, alternated by epoch (see the module docstring)."""

    name = "reference"
    generator_lr_factor = 2.0
    fake_factor = 2

    def optimizers(self, features, lr, margin_lr, betas):
        return {"intra": adam(features, lr * 0.01, betas), "inter": adam(features, lr * 0.001, betas)}

    def loss(self, discriminator, prototypes, labels, epoch, autocast):
        with network_mode(discriminator, train=True), autocast():
            z = discriminator.features(prototypes).float()
        if epoch % 2 == 0:  # the notebook alternates the two terms by epoch
            return reference_intra_loss(z, labels), "intra"
        return reference_inter_loss(z, labels), "inter"


#: ``PDDConfig.margin`` -> its strategy
MARGIN_TERMS: dict[str, type[MarginTerms]] = {"eq56": Eq56Terms, "reference": NotebookTerms}


def margin_terms(name: str, beta: float = 3.0, q_intra: float = 0.5, q_inter: float = 0.25,
                 normalization: str = "center-l2") -> MarginTerms:
    """The strategy ``name`` names; Eqs. 5-6 take the quantiles, beta and the normalisation."""
    if choice("margin terms", name, MARGIN_TERMS) == "eq56":
        return Eq56Terms(beta, q_intra, q_inter, normalization)
    return NotebookTerms()

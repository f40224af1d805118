"""The PDD tune-up ("IB training", Sec. 4): margin losses on the embedded prototypes.

After each batch of continued adversarial training on the unlabeled data (``adversarial=True``,
the default) the discriminator's feature layers take one margin step on the prototypes, with the
terms of a :class:`pddlite.margins.MarginTerms` strategy: Eqs. 5-6 (``margin="eq56"``, the
``paper`` and ``pddlite`` variants) or the sample notebook's terms (``margin="reference"``).
Continued adversarial training keeps the features anchored to the whole unlabeled set; without it
the margin loss sees only the K x N prototypes and over-fits them (measured: see docs/results.md).
``adversarial=False`` runs the margin steps alone; ``margin_steps=False`` runs the adversarial
steps alone (the control of the ablation: it separates the margin loss from the tune-up's extra
epochs of adversarial training). ``augment=True`` draws a random small shift and rotation of
every prototype at every margin step (:func:`pddlite.augment.random_affine`; beyond the paper).
``ema_decay`` keeps an exponential moving average of the discriminator's weights over the
tune-up's steps (:class:`pddlite.ema.WeightAverage`, beyond the paper) in ``trainer.ema.average``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .augment import random_affine
from .ema import WeightAverage
from .gan import GANTrainer, adam
from .margins import MarginTerms, margin_terms
from .runtime import Runtime


class TuneUpTrainer(GANTrainer):
    """Continues a pre-trained GAN with the margin loss on the prototypes (Eqs. 5-6)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        prototypes: torch.Tensor,
        prototype_labels: torch.Tensor,
        *,
        margin: str | MarginTerms = "eq56",
        lr: float = 2e-4,
        margin_lr: float = 2e-4,
        margin_steps: bool = True,
        betas: tuple[float, float] = (0.5, 0.999),
        beta: float = 3.0,
        q_intra: float = 0.5,
        q_inter: float = 0.25,
        adversarial: bool = True,
        normalization: str = "center-l2",
        z_std: float = 1.0,
        augment: bool = False,
        ema_decay: float | None = None,
        runtime: Runtime = Runtime(),
    ):
        # Eqs. 5-6 read beta, the quantiles and the normalisation; a strategy object brings its own
        self.terms = margin if isinstance(margin, MarginTerms) else margin_terms(margin, beta, q_intra, q_inter,
                                                                                 normalization)
        super().__init__(generator, discriminator, lr, betas, z_std, runtime)
        self.optimizers["generator"] = adam(generator.parameters(), self.terms.generator_lr_factor * lr, betas)
        self.prototypes, self.prototype_labels = prototypes, prototype_labels
        self.margin_steps = bool(margin_steps)
        self.adversarial = adversarial
        self.augment = bool(augment)
        self.augment_generator = torch.Generator().manual_seed(self.seed + 2)
        self.ema = None
        if ema_decay is not None:
            self.ema = WeightAverage(discriminator, ema_decay).to(self.device)
            self.modules["ema"] = self.ema  # saved and restored with the trainer's state
        self.optimizers.update(self.terms.optimizers(list(discriminator.body.parameters()), lr, margin_lr, betas))

    def step_prototypes(self) -> torch.Tensor:
        """The prototype images of one margin step: with ``augment``, a fresh random view of each."""
        if self.augment:
            return random_affine(self.prototypes, self.augment_generator)
        return self.prototypes

    def margin_step(self, prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """One optimiser step of the prototype loss; returns the loss value. ``prototypes`` are
        :meth:`step_prototypes`' images, drawn here when not given."""
        if prototypes is None:
            prototypes = self.step_prototypes()
        loss, name = self.terms.loss(self.discriminator, prototypes, self.prototype_labels, self.epoch, self.autocast)
        self.optimize(loss, self.optimizers[name])
        return loss.detach()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "augment_generator": self.augment_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "augment_generator" in state:
            self.augment_generator.set_state(state["augment_generator"])

    loss_names = ("loss_d", "loss_g", "loss_margin")

    def select(self, images: torch.Tensor, idx: torch.Tensor) -> tuple:
        """What one step trains on, every random draw made here and not in the step (so that it can
        be replayed as a CUDA graph): the real images, the generator's noise (none without the
        adversarial steps) and, with ``augment``, the margin step's views of the prototypes."""
        real = images[idx]
        noise = self.step_noise(len(idx), self.terms.fake_factor) if self.adversarial else ()
        views = (self.step_prototypes(),) if self.augment and self.margin_steps else ()
        return (real, noise, *views)

    def batch_losses(self, batch: tuple) -> Sequence[torch.Tensor]:
        """An adversarial step on the unlabeled batch, then a margin step (either can be switched off)."""
        real, noise, *views = batch
        zero = torch.zeros((), device=self.device)
        if self.adversarial:
            loss_d, loss_g = self.step(real, noise=noise)
        else:
            loss_d = loss_g = zero
        loss_margin = self.margin_step(*views) if self.margin_steps else zero
        if self.ema is not None:
            self.ema.update()
        return loss_d, loss_g, loss_margin

    def graph_unsupported(self) -> str | None:
        if not self.terms.graph_safe:
            return (f"the {self.terms.name!r} margin terms select pairs by counts read on the host, so their "
                    "step cannot be a CUDA graph (the Eq. 5-6 terms of the paper and pddlite variants can)")
        return None

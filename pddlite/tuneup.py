"""The PDD tune-up ("IB training", Sec. 4): margin losses on the embedded prototypes.

Two families of margin terms, selected by ``margin``:

``"eq56"`` (Eqs. 5-6, the ``paper`` and ``pddlite`` variants): after each batch of continued
adversarial training on the unlabeled data (``adversarial=True``, the default) the
discriminator's feature layers take one Adam step on
L = L_intra + beta * L_inter over all embedded prototypes. Continued adversarial training keeps
the features anchored to the whole unlabeled set; without it the margin loss sees only the
K x N prototypes and over-fits them (measured: see the README). ``adversarial=False`` runs the
margin steps alone; ``margin_steps=False`` runs the adversarial steps alone (the control of the
ablation: it separates the margin loss from the tune-up's extra epochs of adversarial training).
``augment=True`` draws a random small shift and rotation of every prototype at every margin step
(:func:`pddlite.augment.random_affine`; beyond the paper). ``ema_decay`` keeps an exponential
moving average of the discriminator's weights over the tune-up's steps (:class:`pddlite.ema.
WeightAverage`, beyond the paper) in ``trainer.ema.average``.

``"reference"`` (the authors' sample notebook, the ``reference`` variant): per batch one
discriminator and one generator step (the generator on twice the batch of fakes, at twice the
learning rate), then the notebook's terms
on squared distances (:func:`pddlite.losses.reference_intra_loss` on even epochs,
:func:`pddlite.losses.reference_inter_loss` on odd epochs), each with its own Adam optimiser at
1% and 0.1% of the base learning rate, prototypes embedded in train mode as the notebook does.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .augment import random_affine
from .device import Precision
from .ema import WeightAverage
from .embedding import normalize
from .errors import PDDLiteError
from .gan import GANTrainer, adam
from .losses import margin_loss, reference_inter_loss, reference_intra_loss
from .modes import network_mode


class TuneUpTrainer(GANTrainer):
    """Continues a pre-trained GAN with the margin loss on the prototypes (Eqs. 5-6)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        prototypes: torch.Tensor,
        prototype_labels: torch.Tensor,
        *,
        margin: str = "eq56",
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
        device: torch.device | str = "cpu",
        seed: int = 0,
        precision: str | Precision = "auto",
    ):
        if margin not in ("eq56", "reference"):
            raise PDDLiteError(f"unknown margin terms {margin!r}; choose 'eq56' (Eqs. 5-6) or 'reference'")
        notebook = margin == "reference"
        gen_lr = 2 * lr if notebook else lr
        super().__init__(generator, discriminator, lr, betas, z_std, device, seed, precision)
        self.optimizers["generator"] = adam(generator.parameters(), gen_lr, betas)
        self.prototypes, self.prototype_labels = prototypes, prototype_labels
        self.margin, self.beta, self.q_intra, self.q_inter = margin, beta, q_intra, q_inter
        self.margin_steps = bool(margin_steps)
        self.adversarial, self.normalization = adversarial, normalization
        self.augment = bool(augment)
        self.augment_generator = torch.Generator().manual_seed(seed + 2)
        self.ema = None
        if ema_decay is not None:
            self.ema = WeightAverage(discriminator, ema_decay).to(self.device)
            self.modules["ema"] = self.ema  # saved and restored with the trainer's state
        features = list(discriminator.body.parameters())
        if not notebook:
            self.optimizers["margin"] = adam(features, margin_lr, betas)
        else:
            self.optimizers["intra"] = adam(features, lr * 0.01, betas)
            self.optimizers["inter"] = adam(features, lr * 0.001, betas)

    def margin_step(self) -> torch.Tensor:
        """One optimiser step of the prototype loss; returns the loss value."""
        d = self.discriminator
        prototypes = self.prototypes
        if self.augment:
            prototypes = random_affine(prototypes, self.augment_generator)
        if self.margin == "eq56":
            with network_mode(d, train=False), self.autocast():
                raw = d.features(prototypes).float()
            z = normalize(raw, self.normalization, raw.mean(dim=0).detach())
            loss = margin_loss(z, self.prototype_labels, self.beta, self.q_intra, self.q_inter)
            opt = self.optimizers["margin"]
        else:
            with network_mode(d, train=True), self.autocast():
                z = d.features(prototypes).float()
            intra = self.epoch % 2 == 0  # the notebook alternates the two terms by epoch
            loss = reference_intra_loss(z, self.prototype_labels) if intra else reference_inter_loss(z, self.prototype_labels)
            opt = self.optimizers["intra" if intra else "inter"]
        self.optimize(loss, opt)
        return loss.detach()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "augment_generator": self.augment_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "augment_generator" in state:
            self.augment_generator.set_state(state["augment_generator"])

    loss_names = ("loss_d", "loss_g", "loss_margin")

    def batch_losses(self, batch: torch.Tensor) -> Sequence[torch.Tensor]:
        """An adversarial step on the unlabeled batch, then a margin step (either can be switched off)."""
        zero = torch.zeros((), device=self.device)
        if self.adversarial:
            loss_d, loss_g = self.step(batch, fake_factor=2 if self.margin == "reference" else 1)
        else:
            loss_d = loss_g = zero
        loss_margin = self.margin_step() if self.margin_steps else zero
        if self.ema is not None:
            self.ema.update()
        return loss_d, loss_g, loss_margin

"""The PDD tune-up ("IB training", Sec. 4): margin losses on the embedded prototypes.

Two variants, selected by ``variant``:

``"paper"`` (Eqs. 5-6): after each batch of continued adversarial training on the unlabeled data
(``adversarial=True``, the default) the discriminator's feature layers take one Adam step on
L = L_intra + beta * L_inter over all embedded prototypes. Continued adversarial training keeps
the features anchored to the whole unlabeled set; without it the margin loss sees only the
K x N prototypes and over-fits them (measured: see the README). ``adversarial=False`` runs the
margin steps alone, for the ablation.

``"reference"`` (the authors' sample notebook): per batch one discriminator and one generator step
(the generator on twice the batch of fakes, at twice the learning rate), then the notebook's terms
on squared distances (:func:`pddlite.losses.reference_intra_loss` on even epochs,
:func:`pddlite.losses.reference_inter_loss` on odd epochs), each with its own Adam optimiser at
1% and 0.1% of the base learning rate, prototypes embedded in train mode as the notebook does.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .device import autocast
from .embedding import bn_mode, normalize
from .gan import GANTrainer, adam
from .losses import margin_loss, reference_inter_loss, reference_intra_loss


class TuneUpTrainer(GANTrainer):
    """Continues a pre-trained GAN with the margin loss on the prototypes (Eqs. 5-6)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        prototypes: torch.Tensor,
        prototype_labels: torch.Tensor,
        *,
        variant: str = "paper",
        lr: float = 2e-4,
        margin_lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        beta: float = 3.0,
        q_intra: float = 0.5,
        q_inter: float = 0.25,
        adversarial: bool = True,
        normalization: str = "center-l2",
        z_std: float = 1.0,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        gen_lr = 2 * lr if variant == "reference" else lr
        super().__init__(generator, discriminator, lr, betas, z_std, device, seed)
        self.optimizers["generator"] = adam(generator.parameters(), gen_lr, betas)
        self.prototypes, self.prototype_labels = prototypes, prototype_labels
        self.variant, self.beta, self.q_intra, self.q_inter = variant, beta, q_intra, q_inter
        self.adversarial, self.normalization = adversarial, normalization
        features = list(discriminator.body.parameters())
        if variant == "paper":
            self.optimizers["margin"] = adam(features, margin_lr, betas)
        else:
            self.optimizers["intra"] = adam(features, lr * 0.01, betas)
            self.optimizers["inter"] = adam(features, lr * 0.001, betas)

    def margin_step(self) -> torch.Tensor:
        """One optimiser step of the variant's prototype loss; returns the loss value."""
        d = self.discriminator
        if self.variant == "paper":
            with bn_mode(d, "eval"), autocast(self.device):
                raw = d.features(self.prototypes).float()
            z = normalize(raw, self.normalization, raw.mean(dim=0).detach())
            loss = margin_loss(z, self.prototype_labels, self.beta, self.q_intra, self.q_inter)
            opt = self.optimizers["margin"]
        else:
            with bn_mode(d, "train"), autocast(self.device):
                z = d.features(self.prototypes).float()
            intra = self.epoch % 2 == 0  # the notebook alternates the two terms by epoch
            loss = reference_intra_loss(z, self.prototype_labels) if intra else reference_inter_loss(z, self.prototype_labels)
            opt = self.optimizers["intra" if intra else "inter"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    loss_names = ("loss_d", "loss_g", "loss_margin")

    def batch_losses(self, batch: torch.Tensor) -> Sequence[torch.Tensor]:
        """An adversarial step on the unlabeled batch (unless disabled), then a margin step."""
        if self.adversarial:
            loss_d, loss_g = self.step(batch, fake_factor=2 if self.variant == "reference" else 1)
        else:
            loss_d = loss_g = torch.zeros((), device=self.device)
        return loss_d, loss_g, self.margin_step()

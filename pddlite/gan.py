"""Adversarial training: the GAN pre-training of PDD and the BiGAN of Sec. 3 (and EGBAD).

Both trainers run the loop of :class:`pddlite.trainer.EpochTrainer` (seeded index batches, mixed
precision, resumable state) and add the generator's noise; they use Adam with the DCGAN betas
(0.5, 0.999) and the non-saturating binary cross-entropy loss.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .modes import network_mode
from .nets import Z_DIM
from .runtime import Runtime
from .trainer import EpochTrainer


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the label 'real' (1), on logits, averaged."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float32))


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the label 'fake' (0), on logits, averaged."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.zeros_like(logits, dtype=torch.float32))


def adam(params, lr: float, betas: tuple[float, float] = (0.5, 0.999)) -> torch.optim.Adam:
    """Adam with the DCGAN betas used throughout pddlite (and by the sample notebook)."""
    return torch.optim.Adam(params, lr=lr, betas=betas)


class AdversarialTrainer(EpochTrainer):
    """An :class:`~pddlite.trainer.EpochTrainer` that draws generator noise from its own seeded stream."""

    def __init__(self, runtime: Runtime, z_std: float):
        super().__init__(runtime)
        self.z_std = float(z_std)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)

    def noise(self, n: int) -> torch.Tensor:
        """z ~ N(0, z_std^2 I) in 100 dimensions (Tables 3-4 input)."""
        return torch.randn(n, Z_DIM, generator=self.noise_generator, device=self.device) * self.z_std

    def state_dict(self) -> dict:
        return {**super().state_dict(), "noise_generator": self.noise_generator.get_state().cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.noise_generator.set_state(state["noise_generator"])


class GANTrainer(AdversarialTrainer):
    """Unsupervised GAN pre-training of the Table 3/4 generator and discriminator (BCE, Adam)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        z_std: float = 1.0,
        runtime: Runtime = Runtime(),
    ):
        super().__init__(runtime, z_std)
        self.generator, self.discriminator = generator, discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {
            "generator": adam(generator.parameters(), lr, betas),
            "discriminator": adam(discriminator.parameters(), lr, betas),
        }

    def step_noise(self, n: int, fake_factor: int = 1) -> tuple[torch.Tensor, ...]:
        """The generator's inputs for one :meth:`step` on ``n`` real images, in the order the step
        uses them: ``n`` for the discriminator's fakes, then ``n * fake_factor`` for the generator's
        step when ``fake_factor`` is not 1. Drawn before the step, so that a step replayed as a CUDA
        graph (:mod:`pddlite.graphs`) still trains on fresh noise."""
        first = self.noise(n)
        return (first,) if fake_factor == 1 else (first, self.noise(n * fake_factor))

    def step(self, real: torch.Tensor, fake_factor: int = 1,
             noise: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator step and one generator step; returns the detached (loss_d, loss_g).

        ``fake_factor`` draws that many times the batch size of fakes for the generator step
        (the sample notebook uses 2 during its tune-up). ``noise`` is :meth:`step_noise`'s, drawn
        here when not given.
        """
        g, d = self.generator, self.discriminator
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        if noise is None:
            noise = self.step_noise(len(real), fake_factor)
        with self.autocast():
            fake = g(noise[0])
            loss_d = bce_real(d(real)) + bce_fake(d(fake.detach()))
        self.optimize(loss_d, opt_d)
        with self.autocast():
            if len(noise) > 1:
                fake = g(noise[1])
            loss_g = bce_real(d(fake))
        self.optimize(loss_g, opt_g)
        return loss_d.detach(), loss_g.detach()

    loss_names = ("loss_d", "loss_g")

    def select(self, images: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The real images of the batch and the step's noise."""
        return images[idx], self.step_noise(len(idx))

    def batch_losses(self, batch: tuple[torch.Tensor, tuple[torch.Tensor, ...]]) -> Sequence[torch.Tensor]:
        real, noise = batch
        return self.step(real, noise=noise)

    def graph_unsupported(self) -> str | None:
        return None  # noise drawn in select, no host value read, Adam made capturable

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images in eval mode, from a fixed noise seed (for sample grids)."""
        z = torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(seed)).to(self.device) * self.z_std
        with network_mode(self.generator, train=False):
            return self.generator(z).float()


class BiGANTrainer(AdversarialTrainer):
    """BiGAN (Donahue et al.; the BiGAN of EGBAD): generator G, encoder E, joint discriminator D(x, z).

    D learns to tell (x, E(x)) from (G(z), z); G and E learn to fool it, which makes E approximately
    invert G. Reconstruction is G(E(x)) (Sec. 3, Fig. 1).
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        discriminator: nn.Module,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        z_std: float = 1.0,
        runtime: Runtime = Runtime(),
    ):
        super().__init__(runtime, z_std)
        self.generator, self.encoder, self.discriminator = generator, encoder, discriminator
        self.modules = {"generator": generator, "encoder": encoder, "discriminator": discriminator}
        self.optimizers = {
            "generator_encoder": adam(list(generator.parameters()) + list(encoder.parameters()), lr, betas),
            "discriminator": adam(discriminator.parameters(), lr, betas),
        }

    def step(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, e, d = self.generator, self.encoder, self.discriminator
        opt_ge, opt_d = self.optimizers["generator_encoder"], self.optimizers["discriminator"]
        with self.autocast():
            z = self.noise(len(real))
            fake = g(z)
            z_real = e(real)
            loss_d = bce_real(d(real, z_real.detach())) + bce_fake(d(fake.detach(), z))
        self.optimize(loss_d, opt_d)
        with self.autocast():
            # swapped labels train G and E jointly (the non-saturating BiGAN objective)
            loss_ge = bce_real(d(fake, z)) + bce_fake(d(real, z_real))
        self.optimize(loss_ge, opt_ge)
        return loss_d.detach(), loss_ge.detach()

    loss_names = ("loss_d", "loss_ge")

    def batch_losses(self, batch: torch.Tensor) -> Sequence[torch.Tensor]:
        return self.step(batch)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """G(E(x)) in eval mode, in chunks."""
        with network_mode(*self.modules.values(), train=False):
            return torch.cat([self.generator(self.encoder(part)).float() for part in images.split(chunk)])


def reconstruction_error(images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel error per image (Fig. 2's anomaly score)."""
    return (images.float() - reconstructions.float()).abs().flatten(1).mean(dim=1)

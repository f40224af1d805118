"""Adversarial training: the GAN pre-training of PDD and the BiGAN of Sec. 3 (and EGBAD).

Both trainers keep the images on the device and draw shuffled index batches from a seeded CPU
generator (:func:`pddlite.data.batches`), use Adam with the DCGAN betas (0.5, 0.999) and the
non-saturating binary cross-entropy loss, run in the device's mixed precision
(:func:`pddlite.device.choose_precision`: bfloat16, or float16 with loss scaling), and can save and
restore their whole state (networks, optimisers, epoch, random state) between epochs, so a long
run interrupted by a Colab time-out resumes where it stopped.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import batches
from .device import Precision, choose_precision
from .modes import network_mode
from .nets import Z_DIM


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the label 'real' (1), on logits, averaged."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float32))


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against the label 'fake' (0), on logits, averaged."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.zeros_like(logits, dtype=torch.float32))


def adam(params, lr: float, betas: tuple[float, float] = (0.5, 0.999)) -> torch.optim.Adam:
    """Adam with the DCGAN betas used throughout pddlite (and by the sample notebook)."""
    return torch.optim.Adam(params, lr=lr, betas=betas)


class EpochTrainer:
    """Shared bookkeeping: epoch counter, loss history, data and noise generators, state."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, device: torch.device, seed: int, z_std: float, precision: str | Precision = "auto"):
        self.device = device
        self.seed = int(seed)
        self.precision = choose_precision(device, precision)
        self.scaler = self.precision.grad_scaler()
        self.z_std = float(z_std)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.data_generator = torch.Generator().manual_seed(seed)
        self.noise_generator = torch.Generator(device=device).manual_seed(seed + 1)

    def autocast(self):
        """The forward passes' mixed precision (a no-op in float32)."""
        return self.precision.autocast()

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step on ``loss``: zero the gradients, back-propagate, step. In float16 the
        loss is scaled and the step skipped when a gradient overflowed (GradScaler); otherwise this
        is exactly ``loss.backward(); optimizer.step()``."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def noise(self, n: int) -> torch.Tensor:
        """z ~ N(0, z_std^2 I) in 100 dimensions (Tables 3-4 input)."""
        return torch.randn(n, Z_DIM, generator=self.noise_generator, device=self.device) * self.z_std

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "history": self.history,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "data_generator": self.data_generator.get_state(),
            "noise_generator": self.noise_generator.get_state().cpu(),
            "grad_scaler": self.scaler.state_dict(),  # empty unless float16
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.data_generator.set_state(state["data_generator"])
        self.noise_generator.set_state(state["noise_generator"])
        if self.scaler.is_enabled() and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])

    #: names of the losses that :meth:`batch_losses` returns, in order (keys of ``history``)
    loss_names: tuple[str, ...] = ()

    def batch_losses(self, batch: torch.Tensor) -> Sequence[torch.Tensor]:  # pragma: no cover
        """Train on one batch and return its detached losses, named by :attr:`loss_names`."""
        raise NotImplementedError

    def train_epoch(self, images: torch.Tensor, batch_size: int) -> dict[str, float]:
        """One shuffled pass over ``images``; the mean of each loss, with one host sync per epoch."""
        sums = torch.zeros(len(self.loss_names), device=self.device)
        n = 0
        for idx in batches(len(images), batch_size, self.data_generator, self.device):
            sums += torch.stack(list(self.batch_losses(images[idx])))
            n += 1
        return dict(zip(self.loss_names, (sums / max(n, 1)).tolist()))

    def fit(
        self,
        images: torch.Tensor,
        epochs: int,
        batch_size: int,
        progress: bool = True,
        desc: str = "training",
        on_epoch_end: Callable[["EpochTrainer"], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs are done in total (a resumed trainer continues its count)."""
        for m in self.modules.values():
            m.train()
        bar = tqdm(total=epochs, initial=self.epoch, desc=desc, disable=not progress, unit="epoch")
        while self.epoch < epochs:
            start = time.perf_counter()
            losses = self.train_epoch(images, batch_size)  # ends with one host sync (the epoch's losses)
            rate = len(images) / max(time.perf_counter() - start, 1e-9)
            self.epoch += 1
            self.history.append({"epoch": self.epoch, **losses})
            bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()}, "img/s": f"{rate:.0f}"})
            bar.update(1)
            if on_epoch_end is not None:
                on_epoch_end(self)
        bar.close()
        return self.history


class GANTrainer(EpochTrainer):
    """Unsupervised GAN pre-training of the Table 3/4 generator and discriminator (BCE, Adam)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        z_std: float = 1.0,
        device: torch.device | str = "cpu",
        seed: int = 0,
        precision: str | Precision = "auto",
    ):
        super().__init__(torch.device(device), seed, z_std, precision)
        self.generator, self.discriminator = generator, discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {
            "generator": adam(generator.parameters(), lr, betas),
            "discriminator": adam(discriminator.parameters(), lr, betas),
        }

    def step(self, real: torch.Tensor, fake_factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator step and one generator step; returns the detached (loss_d, loss_g).

        ``fake_factor`` draws that many times the batch size of fakes for the generator step
        (the sample notebook uses 2 during its tune-up).
        """
        g, d = self.generator, self.discriminator
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        with self.autocast():
            fake = g(self.noise(len(real)))
            loss_d = bce_real(d(real)) + bce_fake(d(fake.detach()))
        self.optimize(loss_d, opt_d)
        with self.autocast():
            if fake_factor != 1:
                fake = g(self.noise(len(real) * fake_factor))
            loss_g = bce_real(d(fake))
        self.optimize(loss_g, opt_g)
        return loss_d.detach(), loss_g.detach()

    loss_names = ("loss_d", "loss_g")

    def batch_losses(self, batch: torch.Tensor) -> Sequence[torch.Tensor]:
        return self.step(batch)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images in eval mode, from a fixed noise seed (for sample grids)."""
        z = torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(seed)).to(self.device) * self.z_std
        with network_mode(self.generator, train=False):
            return self.generator(z).float()


class BiGANTrainer(EpochTrainer):
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
        device: torch.device | str = "cpu",
        seed: int = 0,
        precision: str | Precision = "auto",
    ):
        super().__init__(torch.device(device), seed, z_std, precision)
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

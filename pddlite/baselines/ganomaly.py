"""GANomaly (Akcay et al., ACCV 2018), an unsupervised baseline of Sec. 5.

The generator is an encoder - decoder - encoder: G_E maps an image x to a latent code z, G_D
decodes z to a reconstruction x' and a second encoder E maps x' to z'. A DCGAN discriminator D
tells x from x'. The generator minimises

    w_adv * L_adv + w_con * mean|x - x'| + w_enc * mean (z - z')^2,     (w_adv, w_con, w_enc) = (1, 50, 1)

(L_con and L_enc are means over pixels and code units, as in the public code, whose weights
assume them) and the anomaly score is the mean squared difference of the two codes,
mean_j (z_j - z'_j)^2.

Hyper-parameters and where they come from:

* batch size and epochs: Table 2 of the PDD paper (300 / 15 for MNIST and Fashion-MNIST,
  300 / 40 for CIFAR-10), scaled by the profile, with at least the profile's minimum number of
  generator steps (:meth:`pddlite.profiles.Profile.schedule`).
* networks: the DCGAN encoder / decoder / discriminator of GANomaly, built from the Table 3/4
  networks that PDD uses: each encoder is the Table 3/4 discriminator's conv stack followed by a
  convolution over the whole last feature map to the 100-d code (for 64x64 images this is exactly
  the DCGAN encoder of the GANomaly code: 64 -> 32 -> 16 -> 8 -> 4 -> 1x1x100), the decoder is the
  Table 3/4 generator and the discriminator is the Table 3/4 discriminator, whose features f are
  its last feature map. Two departures from the public code on 28x28 images, kept so that every
  method of the comparison shares the same networks: the code resizes MNIST to 32x32 and its
  encoder has 64 -> 128 -> 256 channels where Table 3(b) has 8 -> 16 -> 32 -> 64 (4 to 8 times
  narrower), and its LeakyReLU slope is 0.2 where Tables 3-4 use 0.01.
* optimiser: Adam, learning rate 2e-4, betas (0.5, 0.999) for both networks; nz = 100;
  DCGAN initialisation (all from the GANomaly code's defaults).
* training loop: the public code's current version (the one whose feature-matching loss pddlite
  uses): per batch, one generator step, then one discriminator step on the same reconstructions
  (BCE, the mean of the real and the fake term), and the discriminator is re-initialised when
  that mean falls below 1e-5. (The 2018 version stepped D first, trained G with a BCE loss and
  reset D when either term fell below 1e-5; pddlite does not mix the two.)
* L_adv (feature matching). ``adversarial="code"`` (default) is the public code's: the mean
  squared difference between f(x) and f(x'), image by image and unit by unit; at initialisation it
  is of the order of L_con and L_enc, as the weights (1, 50, 1) expect. ``adversarial="paper"``
  is the GANomaly paper's L_adv = E_x || f(x) - E_x f(G(x)) ||_2 (per image, the plain L2 norm of
  the distance of its real features to the batch mean of the reconstructions' features). Being a
  norm over all 3,136 (28x28; 8,192 for 64x64) features rather than a mean, it is about 50 times
  the code's value at initialisation (measured on 64 mnist-5k images at width 1: 32.3 against
  0.63, with L_con 0.84 and L_enc 1.32), as large as 50 x L_con, so that with the same weights the
  adversarial term weighs as much as the reconstruction.
* evaluation: in eval mode (BatchNorm running statistics) after the last epoch. The public code
  scores in train mode and keeps the epoch with the best test AUROC; users of that code found that
  eval mode changes the results, and choosing the epoch on the test set is not an evaluation.
  The code's min-max rescaling of the scores is omitted: it does not change AUROC or AUPRC.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..runtime import Runtime
from .. import options
from ..gan import adam, bce_fake, bce_real
from ..nets import Z_DIM, conv_trunk, init_weights, make_gan
from ..trainer import EpochTrainer
from ._base import BaselineDetector

ADVERSARIAL_LOSSES = ("code", "paper")


class LatentEncoder(nn.Module):
    """x -> z: the Table 3/4 discriminator's conv stack, then one convolution over the whole map to ``nz``."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, nz: int = Z_DIM):
        super().__init__()
        self.body, c_last, side = conv_trunk(image_shape, width)
        self.to_code = nn.Conv2d(c_last, nz, side, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(self.body(x)).flatten(1)


class GANomalyGenerator(nn.Module):
    """G_E -> G_D -> E: returns (reconstruction x', code z, code of the reconstruction z')."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0):
        super().__init__()
        self.encoder1 = LatentEncoder(image_shape, width)
        self.decoder, _ = make_gan(image_shape, width)
        self.encoder2 = LatentEncoder(image_shape, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder1(x)
        x_rec = self.decoder(z)
        return x_rec, z, self.encoder2(x_rec)


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor, how: str = "paper") -> torch.Tensor:
    """GANomaly's adversarial loss on discriminator features (see the module docstring)."""
    f_real, f_fake = f_real.float().flatten(1), f_fake.float().flatten(1)
    if options.choice("adversarial loss", how, ADVERSARIAL_LOSSES) == "paper":
        return (f_real - f_fake.mean(dim=0, keepdim=True)).norm(dim=1).mean()
    return ((f_real - f_fake) ** 2).mean()  # "code"


class GANomalyTrainer(EpochTrainer):
    """One generator step, then one discriminator step per batch (GANomaly's ``optimize_params``)."""

    def __init__(self, generator: GANomalyGenerator, discriminator: nn.Module, *, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999), w_adv: float = 1.0, w_con: float = 50.0,
                 w_enc: float = 1.0, adversarial: str = "code", runtime: Runtime = Runtime()):
        super().__init__(runtime)
        self.generator, self.discriminator = generator, discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {"generator": adam(generator.parameters(), lr, betas),
                           "discriminator": adam(discriminator.parameters(), lr, betas)}
        self.w_adv, self.w_con, self.w_enc, self.adversarial = w_adv, w_con, w_enc, adversarial
        self.reinitialisations = 0

    def step(self, real: torch.Tensor) -> torch.Tensor:
        g, d = self.generator, self.discriminator
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        with self.autocast():
            fake, z, z_rec = g(real)
            # D's predictions come first, on the reconstructions before G moves (the code's forward_d)
            loss_d = 0.5 * (bce_real(d(real)) + bce_fake(d(fake.detach())))
            with torch.no_grad():
                f_real = d.features(real)
            adv = feature_matching(f_real, d.features(fake), self.adversarial)
            con = (real.float() - fake.float()).abs().mean()
            enc = ((z.float() - z_rec.float()) ** 2).mean()
            loss_g = self.w_adv * adv + self.w_con * con + self.w_enc * enc
        self.optimize(loss_g, opt_g)
        self.optimize(loss_d, opt_d)
        if loss_d.item() < 1e-5:  # the code's guard against a perfect D (one host sync per step, as there)
            d.apply(init_weights)
            self.reinitialisations += 1
        return torch.stack([loss_d.detach(), loss_g.detach(), adv.detach(), con.detach(), enc.detach()])

    loss_names = ("loss_d", "loss_g", "adv", "con", "enc")

    def batch_losses(self, batch: torch.Tensor) -> torch.Tensor:
        return self.step(batch)


class GANomaly(BaselineDetector):
    """GANomaly anomaly detector, PyOD-style; see the module docstring for every setting.

    Args:
        profile, device, seed, progress, epochs, batch_size, width, max_train_images: see
            :class:`~pddlite.baselines._base.BaselineDetector`.
        lr: Adam learning rate (2e-4).
        w_adv, w_con, w_enc: weights of the adversarial, reconstruction and latent losses (1, 50, 1).
        adversarial: ``"code"`` (default, the public code's mean of squares) or ``"paper"`` (an L2
            norm, about 50 times larger) form of the feature-matching loss.

    Fitted attributes: ``generator_`` (:class:`GANomalyGenerator`), ``discriminator_``, ``trainer_``,
    ``history_``.
    """

    method = "ganomaly"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *, lr: float = 2e-4,
                 w_adv: float = 1.0, w_con: float = 50.0, w_enc: float = 1.0, adversarial: str = "code",
                 epochs: int | None = None, batch_size: int | None = None, width: float | None = None,
                 max_train_images: int | None = None, precision: str = "auto", deterministic: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        options.choice("adversarial loss", self.adversarial, ADVERSARIAL_LOSSES)
        options.positive("lr", self.lr)
        for name in ("w_adv", "w_con", "w_enc"):
            options.number(name, getattr(self, name), 0.0)
        return super()._resolve()

    def default_schedule(self, dataset: str, n_images: int | None = None) -> tuple[int, int]:
        return self._profile().schedule("ganomaly", dataset, n_images)

    def _build(self, image_shape, n_classes) -> None:
        generator = GANomalyGenerator(image_shape, self.width_)
        _, discriminator = make_gan(image_shape, self.width_)
        generator.apply(init_weights)
        discriminator.apply(init_weights)
        self.generator_, self.discriminator_ = generator.to(self.device_), discriminator.to(self.device_)
        self.trainer_ = GANomalyTrainer(
            self.generator_, self.discriminator_, lr=self.lr, w_adv=self.w_adv, w_con=self.w_con,
            w_enc=self.w_enc, adversarial=self.adversarial, runtime=self.runtime_)

    def _train(self, images, labels, batch_size, epochs) -> None:
        self.history_ = self.trainer_.fit(images, epochs, batch_size, self.runtime_.progress, "GANomaly")

    def _scoring_modules(self) -> list[nn.Module]:
        return [self.generator_]

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        _, z, z_rec = self.generator_(x)
        return ((z.float() - z_rec.float()) ** 2).mean(dim=1)

"""EGBAD: Efficient GAN-Based Anomaly Detection (Zenati et al., 2018), an unsupervised baseline of Sec. 5.

A BiGAN (Donahue et al.) learns a generator G: z -> x, an encoder E: x -> z and a discriminator
D(x, z) on joint pairs; E learns to invert G. The anomaly score of an image is

    A(x) = (1 - w) * ||x - G(E(x))||_1 + w * ||f(x, E(x)) - f(G(E(x)), E(x))||_1

with f the discriminator's feature layer (the "feature matching" variant) and w = 0.1.

Hyper-parameters and where they come from:

* batch size and epochs: Table 2 of the PDD paper (MNIST 100 / 20, Fashion-MNIST 100 / 30,
  CIFAR-10 150 / 30), scaled by the profile.
* networks: the generator of Tables 3-4 (so that every GAN in the comparison shares PDD's
  generator), :class:`pddlite.nets.Encoder` (the Table 3/4 discriminator's conv stack -> 100-d z) and
  :class:`pddlite.nets.JointDiscriminator` (x through the same conv stack, z through Linear(512),
  a joint Linear(1024) feature layer, then a logit), DCGAN initialisation. The EGBAD public code's
  MNIST networks differ in detail (a 200-d latent, dense layers in G, dropout 0.5 and LeakyReLU
  slope 0.1 in D); the PDD paper does not say which networks its baselines used.
* optimiser: Adam, betas (0.5, 0.999), learning rate 1e-5 for 28x28 images, as the EGBAD public
  code (``bigan/mnist_utilities.py``); that code has no CIFAR-10 setting, and for 64x64 images
  pddlite uses 2e-4, the DCGAN rate used everywhere else in pddlite.
* score: feature-matching variant, L1 norms (``degree=1``), w = 0.1, as the public code's
  defaults and the EGBAD paper's ``alpha = 0.9`` on the reconstruction term.
* exponential moving average of the weights, decay 0.999, used for scoring: the public code
  scores with these averages (the paper does not mention them); ``ema_decay=None`` scores the raw
  weights. Two changes make the average mean the same in a short run as in a long one. The decay
  is warmed up, min(0.999, (1 + n) / (10 + n)) at the n-th step (TensorFlow's
  ``ExponentialMovingAverage`` with ``num_updates``; the code starts at 0.999 from the initial
  weights, which after the 10,760 steps of a Table 2 run on MNIST is harmless, but after 500 steps
  leaves 0.999^500 = 61% of the initial weights in the average). And after training, the
  BatchNorm statistics of the averaged networks are recomputed with the averaged weights, over one
  pass of the training images with the same kinds of batches as training: E on real images, G on
  prior noise, D on (x, E(x)) and (G(z), z) pairs (the live networks' statistics belong to other
  weights).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ema import WeightAverage
from ..embedding import fresh_batchnorm_statistics
from .. import options
from ..gan import BiGANTrainer
from ..nets import Z_DIM, Encoder, JointDiscriminator, init_weights, make_gan
from ._base import BaselineDetector

#: Adam learning rate per image shape (see the module docstring for the sources).
EGBAD_LR = {(1, 28, 28): 1e-5, (3, 64, 64): 2e-4}


class EMABiGANTrainer(BiGANTrainer):
    """A :class:`~pddlite.gan.BiGANTrainer` that also keeps warmed-up moving averages of G, E and D.

    After every optimiser step each network's :class:`pddlite.ema.WeightAverage` is updated;
    :meth:`averaged` returns the three averaged networks, whose BatchNorm statistics
    :meth:`recalibrate_averages` recomputes.
    """

    def __init__(self, *args: Any, ema_decay: float = 0.999, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ema_decay = float(ema_decay)
        self.averages = {k: WeightAverage(m, self.ema_decay).to(self.device) for k, m in self.modules.items()}

    def step(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses = super().step(real)
        for average in self.averages.values():
            average.update()
        return losses

    def averaged(self) -> dict[str, nn.Module]:
        """The averaged networks (their BatchNorm statistics are the live ones until recalibrated)."""
        return {k: a.average for k, a in self.averages.items()}

    @torch.no_grad()
    def recalibrate_averages(self, images: torch.Tensor, batch_size: int) -> dict[str, nn.Module]:
        """BatchNorm statistics of the averaged G, E and D from one pass over ``images``, fed as in
        training; the noise comes from its own seeded generator, so training's draws are untouched."""
        nets = self.averaged()
        g, e, d = nets["generator"], nets["encoder"], nets["discriminator"]
        noise = torch.Generator(device=self.device).manual_seed(self.seed + 2)
        with fresh_batchnorm_statistics(g, e, d), self.autocast():
            for x in images.split(batch_size):
                z = torch.randn(len(x), Z_DIM, generator=noise, device=self.device) * self.z_std
                d(x, e(x))
                d(g(z), z)
        return nets

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["ema"] = {k: a.state_dict() for k, a in self.averages.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, a in self.averages.items():
            a.load_state_dict(state["ema"][k])


class EGBAD(BaselineDetector):
    """EGBAD (BiGAN) anomaly detector, PyOD-style; see the module docstring for every setting.

    Args:
        profile, device, seed, progress, epochs, batch_size, width, max_train_images: see
            :class:`~pddlite.baselines._base.BaselineDetector`.
        lr: Adam learning rate (default: 1e-5 for 28x28 images, 2e-4 for 64x64).
        weight: w in the score, the weight of the feature-matching term (0.1).
        ema_decay: decay of the weight averages used for scoring (0.999), or ``None`` for none.

    Fitted attributes: ``generator_``, ``encoder_``, ``discriminator_`` (the networks that score:
    the averaged ones unless ``ema_decay=None``), ``trainer_``, ``history_``.
    """

    method = "egbad"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *,
                 lr: float | None = None, weight: float = 0.1, ema_decay: float | None = 0.999,
                 epochs: int | None = None, batch_size: int | None = None, width: float | None = None,
                 max_train_images: int | None = None, precision: str = "auto", deterministic: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        options.number("weight", self.weight, 0.0, 1.0)
        options.number("ema_decay", self.ema_decay, 0.0, 1.0, low_open=True, high_open=True, optional=True)
        options.positive("lr", self.lr, optional=True)
        return super()._resolve()

    def default_schedule(self, dataset: str, n_images: int | None = None) -> tuple[int, int]:
        return self._profile().schedule("egbad", dataset, n_images)

    def _build(self, image_shape, n_classes) -> None:
        generator, _ = make_gan(image_shape, self.width_)
        encoder = Encoder(image_shape, self.width_)
        discriminator = JointDiscriminator(image_shape, self.width_)
        for net in (generator, encoder, discriminator):
            net.apply(init_weights)
        self.lr_ = self.lr if self.lr is not None else EGBAD_LR[tuple(image_shape)]
        g, e, d = (net.to(self.device_) for net in (generator, encoder, discriminator))
        if self.ema_decay is None:
            self.trainer_ = BiGANTrainer(g, e, d, lr=self.lr_, runtime=self.runtime_)
        else:
            self.trainer_ = EMABiGANTrainer(g, e, d, lr=self.lr_, runtime=self.runtime_, ema_decay=self.ema_decay)

    def _train(self, images, labels, batch_size, epochs) -> None:
        self.history_ = self.trainer_.fit(images, epochs, batch_size, self.runtime_.progress, "EGBAD (BiGAN)")
        if self.ema_decay is not None:
            nets = self.trainer_.recalibrate_averages(images, batch_size)
        else:
            nets = self.trainer_.modules
        self.generator_, self.encoder_, self.discriminator_ = nets["generator"], nets["encoder"], nets["discriminator"]

    def _scoring_modules(self) -> list[nn.Module]:
        return [self.generator_, self.encoder_, self.discriminator_]

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder_(x)
        rec = self.generator_(z)
        residual = (x.float() - rec.float()).abs().flatten(1).sum(dim=1)
        f_real = self.discriminator_.features(x, z).float()
        f_rec = self.discriminator_.features(rec, z).float()
        feature = (f_real - f_rec).abs().flatten(1).sum(dim=1)
        return (1.0 - self.weight) * residual + self.weight * feature

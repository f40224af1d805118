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
  weights. The averages cover the trainable parameters; BatchNorm statistics are the trained ones.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import PDDLiteError
from ..experiment import register_method
from ..gan import BiGANTrainer
from ..nets import Encoder, JointDiscriminator, init_weights, make_gan
from ._base import BaselineDetector, make_runner

#: Adam learning rate per image shape (see the module docstring for the sources).
EGBAD_LR = {(1, 28, 28): 1e-5, (3, 64, 64): 2e-4}


class EMABiGANTrainer(BiGANTrainer):
    """A :class:`~pddlite.gan.BiGANTrainer` that also keeps exponential moving averages of the weights.

    After every optimiser step, ``shadow = decay * shadow + (1 - decay) * weight`` for every
    trainable parameter of G, E and D (the shadows start at the initial weights, as TensorFlow's
    ``ExponentialMovingAverage`` in the EGBAD code). :meth:`averaged` returns the three networks
    with the averaged weights and the live BatchNorm statistics.
    """

    def __init__(self, *args: Any, ema_decay: float = 0.999, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ema_decay = float(ema_decay)
        self.shadows = {k: copy.deepcopy(m).requires_grad_(False) for k, m in self.modules.items()}

    def step(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses = super().step(real)
        with torch.no_grad():
            live = [p for k in self.modules for p in self.modules[k].parameters()]
            shadow = [p for k in self.modules for p in self.shadows[k].parameters()]
            torch._foreach_lerp_(shadow, live, 1.0 - self.ema_decay)
        return losses

    def averaged(self) -> dict[str, nn.Module]:
        """The averaged networks, with the BatchNorm running statistics of the live ones."""
        with torch.no_grad():
            for k, m in self.modules.items():
                for b_shadow, b_live in zip(self.shadows[k].buffers(), m.buffers()):
                    b_shadow.copy_(b_live)
        return self.shadows

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["ema"] = {k: m.state_dict() for k, m in self.shadows.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, m in self.shadows.items():
            m.load_state_dict(state["ema"][k])


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
                 lr: float | None = None, weight: float = 0.1, ema_decay: float | None = 0.999, **common: Any):
        super().__init__(profile, device, seed, progress, **common)
        if not 0.0 <= weight <= 1.0:
            raise PDDLiteError(f"weight must lie in [0, 1], got {weight}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise PDDLiteError(f"ema_decay must lie in [0, 1) or be None, got {ema_decay}")
        if lr is not None and not lr > 0:
            raise PDDLiteError(f"lr must be positive, got {lr}")
        self.lr, self.weight, self.ema_decay = lr, float(weight), ema_decay

    def default_schedule(self, dataset: str) -> tuple[int, int]:
        return self.profile.schedule("egbad", dataset)

    def _build(self, image_shape, n_classes) -> None:
        generator, _ = make_gan(image_shape, self.width)
        encoder = Encoder(image_shape, self.width)
        discriminator = JointDiscriminator(image_shape, self.width)
        for net in (generator, encoder, discriminator):
            net.apply(init_weights)
        self.lr_ = self.lr if self.lr is not None else EGBAD_LR[tuple(image_shape)]
        g, e, d = (net.to(self.device) for net in (generator, encoder, discriminator))
        if self.ema_decay is None:
            self.trainer_ = BiGANTrainer(g, e, d, lr=self.lr_, device=self.device, seed=self.seed)
        else:
            self.trainer_ = EMABiGANTrainer(g, e, d, lr=self.lr_, device=self.device, seed=self.seed,
                                            ema_decay=self.ema_decay)

    def _train(self, images, labels, batch_size, epochs) -> None:
        self.history_ = self.trainer_.fit(images, epochs, batch_size, self.progress, "EGBAD (BiGAN)")
        nets = self.trainer_.averaged() if self.ema_decay is not None else self.trainer_.modules
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


run_egbad = register_method("egbad")(make_runner(EGBAD))

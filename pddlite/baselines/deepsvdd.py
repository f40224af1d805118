"""Deep SVDD, one-class (Ruff et al., ICML 2018): the single-enclosure baseline.

The paper's introduction argues that one hypersphere around all normal data fits multi-class
normality badly; this baseline measures it. All normal classes are pooled into one class (no
labels are used). A bias-free network phi maps an image to a representation, a centre c is fixed
as the mean representation of the training data after an initial pass, and training minimises

    mean_i ||phi(x_i) - c||^2      (+ weight decay)

The anomaly score is ||phi(x) - c||^2. phi has no bias terms and no affine BatchNorm parameters:
with them the network could map every input onto c (the "hypersphere collapse" that Ruff et al.
prove possible), and c is fixed, never trained, for the same reason.

The network is the conv stack of the Table 3/4 discriminator (PDD's embedding), made bias-free,
then a bias-free linear map to 32 dimensions for 28x28 images and 128 for 64x64 (the
representation sizes of Ruff et al.'s MNIST and CIFAR-10 networks). The weights are initialised
by training an autoencoder first (Ruff et al.: "pretrain"), whose decoder mirrors phi (a linear
map back to the last feature map, then transposed convolutions in the reverse order of the conv
stack, bias-free, tanh output), as Ruff et al.'s autoencoders mirror their encoders. (With the
heavier Table 3/4 generator as the decoder, pre-training on 28x28 images was 16 times slower,
measured with ``benchmarks/bench_baselines.py``.) Coordinates of c closer to 0 than 0.1 are
moved to +-0.1, as the later versions of the public code do, so that no unit can trivially
match c by dying.

The PDD paper has no Deep SVDD row in Table 2; pddlite's schedule (:data:`DEEPSVDD_SCHEDULE`) is the
one of the public code's README (github.com/lukasruff/Deep-SVDD-PyTorch) for MNIST and CIFAR-10,
with Fashion-MNIST on MNIST's setting (same image size and network):

=============  =====  ====================================  ==========================================
dataset        batch  Deep SVDD: Adam lr 1e-4, wd 5e-7       autoencoder: Adam lr 1e-4
=============  =====  ====================================  ==========================================
MNIST, F-MNIST 200    150 epochs, lr x 0.1 from epoch 50    150 epochs, x 0.1 from 50, wd 5e-4
CIFAR-10       200    150 epochs, lr x 0.1 from epoch 50    350 epochs, x 0.1 from 250, wd 5e-7
=============  =====  ====================================  ==========================================

Epochs count from 1: the 50th epoch already runs at the lower rate, as in the public code (whose
scheduler steps at the start of each epoch).

The epochs (and the epoch of the learning-rate drop, in proportion) are scaled by the profile
exactly as :meth:`pddlite.profiles.Profile.schedule` scales Table 2's (a profile's
``fixed_epochs`` may set ``"deepsvdd"`` and ``"deepsvdd-autoencoder"``); the profile's batch size,
when it sets one, replaces 200. The ICML paper describes a two-phase learning-rate schedule of
the same kind (1e-4, then 1e-5); pddlite takes the concrete numbers from the README's commands.
Cost: on CIFAR-10 the 350 pre-training epochs make a Deep SVDD run several times as long as a
PDD run (see the benchmark); ``DeepSVDD(ae_epochs=...)`` shortens it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import Runtime
from .. import options
from ..modes import network_mode
from ..nets import LEAKY_SLOPE, channels, conv_trunk, init_weights, unsupported_shape
from ..profiles import Profile, table2_dataset
from ..timing import TimedStage, steps_per_epoch
from ..trainer import EpochTrainer
from ._base import BaselineDetector, set_learning_rate, step_decay

#: (batch, epochs, lr-drop epoch, autoencoder epochs, autoencoder lr-drop epoch, autoencoder weight decay)
DEEPSVDD_SCHEDULE: dict[str, dict[str, float]] = {
    "mnist": {"batch": 200, "epochs": 150, "milestone": 50, "ae_epochs": 150, "ae_milestone": 50, "ae_weight_decay": 5e-4},
    "fashion-mnist": {"batch": 200, "epochs": 150, "milestone": 50, "ae_epochs": 150, "ae_milestone": 50, "ae_weight_decay": 5e-4},
    "cifar10": {"batch": 200, "epochs": 150, "milestone": 50, "ae_epochs": 350, "ae_milestone": 250, "ae_weight_decay": 5e-7},
}
REP_DIM = {(1, 28, 28): 32, (3, 64, 64): 128}


def deepsvdd_schedule(profile: Profile, dataset: str, n_images: int | None = None) -> dict[str, Any]:
    """Deep SVDD's schedule for ``dataset`` under ``profile`` (see the module docstring), in the
    profile's optimiser steps per stage over ``n_images`` images where it gives them."""
    base = DEEPSVDD_SCHEDULE[table2_dataset(dataset)]
    batch = profile.batch_size or int(base["batch"])
    epochs = profile.scale_epochs(int(base["epochs"]), "deepsvdd")
    epochs = profile.epochs_for_steps("deepsvdd", epochs, batch, n_images)
    ae_epochs = profile.scale_epochs(int(base["ae_epochs"]), "deepsvdd-autoencoder")
    ae_epochs = profile.epochs_for_steps("deepsvdd-autoencoder", ae_epochs, batch, n_images)
    return {
        "batch_size": batch,
        "epochs": epochs,
        "milestone": int(round(base["milestone"] * epochs / base["epochs"])),
        "ae_epochs": ae_epochs,
        "ae_milestone": int(round(base["ae_milestone"] * ae_epochs / base["ae_epochs"])),
        "ae_weight_decay": base["ae_weight_decay"],
    }


def bias_free(stack: nn.Sequential) -> nn.Sequential:
    """Remove every bias of a conv stack: conv biases dropped, BatchNorm without affine parameters."""
    for block in stack:
        for i, layer in enumerate(block):
            if isinstance(layer, nn.Conv2d) and layer.bias is not None:
                layer.register_parameter("bias", None)
            elif isinstance(layer, nn.BatchNorm2d) and layer.affine:
                block[i] = nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=False)
    return stack


class SVDDEncoder(nn.Module):
    """phi: the bias-free Table 3/4 conv stack, then a bias-free linear map to ``rep_dim``."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, rep_dim: int | None = None):
        super().__init__()
        stack, c_last, side = conv_trunk(image_shape, width)
        self.body, feat = bias_free(stack), c_last * side * side
        self.rep_dim = rep_dim if rep_dim is not None else REP_DIM[tuple(image_shape)]
        self.to_rep = nn.Linear(feat, self.rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x).flatten(1)
        # the representation in float32 even under bfloat16 autocast: training drives it to within
        # a tiny distance of c, finer than bfloat16 resolves
        with torch.autocast(h.device.type, enabled=False):
            return self.to_rep(h.float())


class SVDDDecoder(nn.Module):
    """The mirror image of :class:`SVDDEncoder`, for the autoencoder pre-training (bias-free, tanh output)."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, rep_dim: int = 32):
        super().__init__()
        shape = tuple(image_shape)
        act = LEAKY_SLOPE

        def up(c_in: int, c_out: int, kernel: int, stride: int, padding: int, output_padding: int = 0) -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding, bias=False),
                nn.BatchNorm2d(c_out, affine=False), nn.LeakyReLU(act, inplace=True))

        if shape == (1, 28, 28):  # mirrors 28x28x8 -> 14x14x16 -> 7x7x32 -> 7x7x64
            c8, c16, c32, c64 = (channels(n, width) for n in (8, 16, 32, 64))
            self.side, self.c_last = 7, c64
            self.blocks = nn.Sequential(
                up(c64, c32, 3, 1, 1), up(c32, c16, 3, 2, 1, 1), up(c16, c8, 3, 2, 1, 1),
                nn.ConvTranspose2d(c8, 1, 3, 1, 1, bias=False), nn.Tanh())
        elif shape == (3, 64, 64):  # mirrors 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512
            c64, c128, c256, c512 = (channels(n, width) for n in (64, 128, 256, 512))
            self.side, self.c_last = 4, c512
            self.blocks = nn.Sequential(
                up(c512, c256, 4, 2, 1), up(c256, c128, 4, 2, 1), up(c128, c64, 4, 2, 1),
                nn.ConvTranspose2d(c64, 3, 4, 2, 1, bias=False), nn.Tanh())
        else:
            raise unsupported_shape(shape)
        self.from_rep = nn.Linear(rep_dim, self.c_last * self.side * self.side, bias=False)

    def forward(self, rep: torch.Tensor) -> torch.Tensor:
        h = self.from_rep(rep).view(len(rep), self.c_last, self.side, self.side)
        return self.blocks(F.leaky_relu(h, LEAKY_SLOPE))


def make_decoder(image_shape: tuple[int, int, int], width: float, rep_dim: int) -> nn.Module:
    """The autoencoder's decoder for pre-training phi (see :class:`SVDDDecoder`)."""
    return SVDDDecoder(image_shape, width, rep_dim)


def _init_weights_bias_free(module: nn.Module) -> None:
    """DCGAN initialisation of the weights; parameter-free BatchNorm layers are left alone."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        init_weights(module)


class _StepLRMixin:
    """Adam's learning rate x 0.1 from the ``milestone``-th epoch on, counting from 1.

    The public code calls ``scheduler.step()`` at the start of each epoch (the PyTorch < 1.1
    order), so its MultiStepLR with milestone 50 already lowers the rate for the 50th epoch
    (0-based epoch 49), one epoch before a scheduler stepped after each epoch would. pddlite
    follows the code.
    """

    base_lr: float
    milestone: int

    def start_epoch(self) -> None:
        milestones = (self.milestone - 1,) if self.milestone else ()
        set_learning_rate(self.optimizers, step_decay(self.base_lr, self.epoch, milestones))


class AutoencoderTrainer(_StepLRMixin, EpochTrainer):
    """Pre-training of phi as the encoder of an autoencoder (sum of squared errors per image)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, *, lr: float = 1e-4, weight_decay: float = 5e-4,
                 milestone: int = 0, runtime: Runtime = Runtime()):
        super().__init__(runtime)
        self.encoder, self.decoder = encoder, decoder
        self.modules = {"encoder": encoder, "decoder": decoder}
        params = list(encoder.parameters()) + list(decoder.parameters())
        self.optimizers = {"autoencoder": torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)}
        self.base_lr, self.milestone = lr, milestone

    loss_names = ("loss_ae",)

    def batch_losses(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        with self.autocast():
            rec = self.decoder(self.encoder(x))
        loss = ((rec.float() - x.float()) ** 2).flatten(1).sum(dim=1).mean()
        self.optimize(loss, self.optimizers["autoencoder"])
        return (loss.detach(),)


class SVDDTrainer(_StepLRMixin, EpochTrainer):
    """One-class Deep SVDD: minimise the mean squared distance of phi(x) to the fixed centre c."""

    def __init__(self, encoder: nn.Module, center: torch.Tensor, *, lr: float = 1e-4, weight_decay: float = 5e-7,
                 milestone: int = 0, runtime: Runtime = Runtime()):
        super().__init__(runtime)
        self.encoder, self.center = encoder, center
        self.modules = {"encoder": encoder}
        self.optimizers = {"encoder": torch.optim.Adam(encoder.parameters(), lr=lr, weight_decay=weight_decay)}
        self.base_lr, self.milestone = lr, milestone

    loss_names = ("loss_svdd",)

    def batch_losses(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        with self.autocast():
            rep = self.encoder(x)
        loss = ((rep.float() - self.center) ** 2).sum(dim=1).mean()
        self.optimize(loss, self.optimizers["encoder"])
        return (loss.detach(),)


@torch.no_grad()
def initial_center(encoder: nn.Module, images: torch.Tensor, eps: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """c = mean phi(x) over the training images (eval mode), with |c_j| < eps moved to +-eps."""
    total, n = None, 0
    with network_mode(encoder, train=False):
        for part in images.split(chunk):
            rep = encoder(part).float()  # float32, like the scores
            total = rep.sum(dim=0) if total is None else total + rep.sum(dim=0)
            n += len(part)
    c = total / n
    c[(c.abs() < eps) & (c < 0)] = -eps
    c[(c.abs() < eps) & (c >= 0)] = eps
    return c


class DeepSVDD(BaselineDetector):
    """One-class Deep SVDD anomaly detector (all normal classes as one), PyOD-style.

    Args:
        profile, device, seed, progress, epochs, batch_size, width, max_train_images: see
            :class:`~pddlite.baselines._base.BaselineDetector`.
        lr: Adam learning rate of the one-class stage (1e-4; x 0.1 after the milestone).
        weight_decay: its weight decay (5e-7).
        ae_lr: learning rate of the autoencoder pre-training (1e-4).
        ae_epochs: pre-training epochs (default: the schedule's; 0 skips pre-training).
        rep_dim: the representation size (32 for 28x28, 128 for 64x64).
        eps: the smallest magnitude of a coordinate of c (0.1).

    Fitted attributes: ``encoder_`` (phi), ``center_`` (c), ``history_`` (per-epoch losses of
    ``"autoencoder"`` and ``"svdd"``).
    """

    method = "deepsvdd"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *, lr: float = 1e-4,
                 weight_decay: float = 5e-7, ae_lr: float = 1e-4, ae_epochs: int | None = None,
                 rep_dim: int | None = None, eps: float = 0.1, epochs: int | None = None, batch_size: int | None = None, width: float | None = None,
                 max_train_images: int | None = None, precision: str = "auto", deterministic: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        options.positive("lr", self.lr), options.positive("ae_lr", self.ae_lr)
        options.number("weight_decay", self.weight_decay, 0.0), options.number("eps", self.eps, 0.0)
        options.whole("ae_epochs", self.ae_epochs, minimum=0, optional=True)
        options.whole("rep_dim", self.rep_dim, optional=True)
        return super()._resolve()

    def default_schedule(self, dataset: str, n_images: int | None = None) -> tuple[int, int]:
        s = deepsvdd_schedule(self._profile(), dataset, n_images)
        return s["batch_size"], s["epochs"]

    def schedule(self, dataset: str, n_images: int | None = None) -> dict[str, Any]:
        s = deepsvdd_schedule(self._profile(), dataset, n_images)
        out = super().schedule(dataset, n_images)
        if self.epochs is not None:  # keep the learning-rate drop at the same fraction of training
            out["milestone"] = int(round(s["milestone"] * self.epochs / max(s["epochs"], 1)))
        else:
            out["milestone"] = s["milestone"]
        ae_epochs = self.ae_epochs if self.ae_epochs is not None else s["ae_epochs"]
        out["ae_epochs"] = ae_epochs
        out["ae_milestone"] = int(round(s["ae_milestone"] * ae_epochs / max(s["ae_epochs"], 1)))
        out["ae_weight_decay"] = s["ae_weight_decay"]
        return out

    def _build(self, image_shape, n_classes) -> None:
        self.encoder_ = SVDDEncoder(image_shape, self.width_, self.rep_dim)
        self.encoder_.apply(_init_weights_bias_free)
        self.decoder_ = make_decoder(image_shape, self.width_, self.encoder_.rep_dim)
        self.decoder_.apply(_init_weights_bias_free)
        self.encoder_.to(self.device_)
        self.decoder_.to(self.device_)

    def _autoencoder_trainer(self) -> AutoencoderTrainer:
        s = self.schedule_
        return AutoencoderTrainer(self.encoder_, self.decoder_, lr=self.ae_lr, weight_decay=s["ae_weight_decay"],
                                  milestone=s["ae_milestone"], runtime=self.runtime_)

    def _svdd_trainer(self, center: torch.Tensor) -> SVDDTrainer:
        return SVDDTrainer(self.encoder_, center, lr=self.lr, weight_decay=self.weight_decay,
                           milestone=self.schedule_["milestone"],
                           runtime=self.runtime_.with_seed(self.runtime_.seed + 1))

    def _train(self, images, labels, batch_size, epochs) -> None:
        s = self.schedule_
        self.history_ = {"autoencoder": [], "svdd": []}
        if s["ae_epochs"] > 0:
            self.history_["autoencoder"] = self._autoencoder_trainer().fit(
                images, s["ae_epochs"], batch_size, self.runtime_.progress, "Deep SVDD autoencoder pre-training")
        self.decoder_ = None  # only phi is kept
        self.center_ = initial_center(self.encoder_, images, self.eps)
        self.trainer_ = self._svdd_trainer(self.center_)
        self.history_["svdd"] = self.trainer_.fit(images, epochs, batch_size, self.runtime_.progress, "Deep SVDD")

    def _timed_stages(self, images, labels) -> list[TimedStage]:
        """The autoencoder's steps and the one-class steps; the centre is a placeholder of the
        right size (it is computed from the pre-trained encoder, and a step takes as long with any)."""
        s = self.schedule_
        per_epoch = steps_per_epoch(len(images), s["batch_size"])
        center = torch.zeros(self.encoder_.rep_dim, device=self.device_)
        return [TimedStage(self._autoencoder_trainer(), s["batch_size"], s["ae_epochs"] * per_epoch),
                TimedStage(self._svdd_trainer(center), s["batch_size"], s["epochs"] * per_epoch)]

    def _scoring_modules(self) -> list[nn.Module]:
        return [self.encoder_]

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.encoder_(x).float() - self.center_) ** 2).sum(dim=1)

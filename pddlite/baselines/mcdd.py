"""MCDD: Multi-class Data Description (Lee, Yu & Yu, KDD 2020), the fully labeled baseline of Sec. 5.

An embedding network f maps each image into a latent space where normal class k is a Gaussian
component with centre mu_k, scale sigma_k and bias b_k. With d the latent dimension,

    D_k(x) = ||f(x) - mu_k||^2 / (2 sigma_k^2) + d * log sigma_k

and training minimises

    lambda * mean_i D_{y_i}(x_i) + CrossEntropy(-D(x) + b, y)

(the first term pulls each image towards its class centre, the second pushes it away from the
others). The anomaly score is min_k D_k(x): the distance to the nearest class component. The bias
b only enters the classification term, not the score. MCDD sees the class labels of all normal
training images (``task.train_labels``), as in the paper: it has more supervision than PDD's
K-shot prototypes.

Hyper-parameters and where they come from:

* batch size and epochs: Table 2 of the PDD paper (150 / 40 for MNIST and Fashion-MNIST,
  200 / 80 for CIFAR-10), scaled by the profile.
* embedding: the same backbone as PDD's features (the conv stack of the Table 3/4 discriminator,
  DCGAN initialisation) followed by a linear latent head to d = 128 dimensions (the Deep-MCDD
  code's default ``latent_size``); head and centres Xavier-initialised, biases and log-scales zero,
  as in that code.
* two recipes, as the Deep-MCDD public code has two training scripts. ``"tabular"`` (its
  ``train_deepmcdd_table.py``): lambda = 1, Adam with learning rate 1e-3, no augmentation.
  ``"image"`` (its ``train_deepmcdd_image.py``, written for SVHN and CIFAR): lambda = 0.1, SGD with
  learning rate 0.1, Nesterov momentum 0.9 and weight decay 1e-4, the rate x 0.1 at 50% and again
  at 75% of the epochs, and every batch randomly cropped from the image zero-padded by 1/8 of its
  side (4 pixels of 32 there, 8 of 64 here) and flipped left-right
  (:func:`pddlite.augment.random_crop_flip`). ``recipe="auto"`` (default) takes ``"image"`` for the
  64x64 colour images of Table 4 and ``"tabular"`` for 28x28 digits and clothes, for which the
  code has no image setting (and a left-right flip would change what a digit is).
* scales: the code bounds sigma_k below by 1 (sigma_k = exp(relu(s_k))); the MCDD paper leaves
  sigma_k free. pddlite keeps the bound by default (``bounded_scale=True``): with a free scale the
  pull term has no lower bound (D_y -> -inf as a class collapses onto its centre with sigma -> 0),
  so the loss can diverge; ``bounded_scale=False`` is the paper's free scale. With the bound,
  sigma_k is not learned in practice: s_k starts at 0, where the ReLU passes no gradient, so
  sigma_k = 1 throughout training, as in the public code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import random_crop_flip
from ..runtime import Runtime
from .. import options
from ..errors import PDDLiteError
from ..modes import network_mode
from ..nets import conv_stack_for, init_weights
from ..trainer import EpochTrainer
from ..timing import TimedStage
from ._base import BaselineDetector, set_learning_rate, step_decay


class MCDDNet(nn.Module):
    """Embedding f (backbone + linear latent head) with per-class centres, log-scales and biases."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, width: float = 1.0,
                 latent_dim: int = 128, bounded_scale: bool = True):
        super().__init__()
        self.body, feat = conv_stack_for(image_shape, width)  # PDD's embedding backbone
        self.head = nn.Linear(feat, latent_dim)
        self.latent_dim, self.bounded_scale = latent_dim, bounded_scale
        self.centers = nn.Parameter(torch.empty(n_classes, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(n_classes))
        self.biases = nn.Parameter(torch.zeros(n_classes))
        self.body.apply(init_weights)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        nn.init.xavier_uniform_(self.centers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """D_k(x) for every class k: N x K, in float32."""
        f = self.embed(x).float()
        s = F.relu(self.log_scales) if self.bounded_scale else self.log_scales
        sq = ((f.unsqueeze(1) - self.centers.unsqueeze(0)) ** 2).sum(dim=2)
        return sq / (2.0 * torch.exp(2.0 * s)) + self.latent_dim * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.distances(x)


#: The two training recipes of the Deep-MCDD public code (see the module docstring).
RECIPES: dict[str, dict[str, Any]] = {
    "tabular": {"optimizer": "adam", "lr": 1e-3, "reg_lambda": 1.0, "weight_decay": 0.0,
                "milestones": (), "augment": False},
    "image": {"optimizer": "sgd", "lr": 0.1, "reg_lambda": 0.1, "weight_decay": 1e-4,
              "milestones": (0.5, 0.75), "augment": True},
}


def resolve_recipe(recipe: str, image_shape: tuple[int, ...]) -> str:
    """``"auto"``: ``"image"`` for 3x64x64 images, ``"tabular"`` otherwise."""
    if recipe == "auto":
        return "image" if tuple(image_shape) == (3, 64, 64) else "tabular"
    return recipe


class MCDDTrainer(EpochTrainer):
    """Minibatch training on lambda * pull + cross-entropy push, batches drawn by index, with the
    optimiser, learning-rate steps and augmentation of one of :data:`RECIPES`."""

    def __init__(self, net: MCDDNet, labels: torch.Tensor, *, recipe: str = "tabular", lr: float | None = None,
                 reg_lambda: float | None = None, epochs: int = 1, runtime: Runtime = Runtime()):
        super().__init__(runtime)
        settings = RECIPES[recipe]
        self.net, self.labels = net, labels
        self.recipe = recipe
        self.base_lr = float(lr if lr is not None else settings["lr"])
        self.reg_lambda = float(reg_lambda if reg_lambda is not None else settings["reg_lambda"])
        # the code's MultiStepLR(milestones=[int(n * 0.5), int(n * 0.75)]), stepped after each epoch
        self.milestones = tuple(m for m in (int(epochs * f) for f in settings["milestones"]) if m > 0)
        self.augment = bool(settings["augment"])
        self.augment_generator = torch.Generator().manual_seed(self.seed + 3)
        self.modules = {"net": net}
        if settings["optimizer"] == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=self.base_lr, momentum=0.9, nesterov=True,
                                  weight_decay=settings["weight_decay"])
        else:
            opt = torch.optim.Adam(net.parameters(), lr=self.base_lr, weight_decay=settings["weight_decay"])
        self.optimizers = {"net": opt}

    loss_names = ("loss", "pull", "push")

    def start_epoch(self) -> None:
        set_learning_rate(self.optimizers, step_decay(self.base_lr, self.epoch, self.milestones))

    def select(self, images: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images[idx], self.labels[idx]

    def batch_losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x, y = batch
        if self.augment:
            x = random_crop_flip(x, self.augment_generator, x.shape[-1] // 8)
        with self.autocast():
            dist = self.net(x)  # the distances, through the call that ``compile`` compiles
        pull = dist.gather(1, y.unsqueeze(1)).mean()
        push = F.cross_entropy(-dist + self.net.biases, y)
        loss = self.reg_lambda * pull + push
        self.optimize(loss, self.optimizers["net"])
        return loss.detach(), pull.detach(), push.detach()


class MCDD(BaselineDetector):
    """MCDD anomaly detector (trained on labeled normal classes), PyOD-style.

    Args:
        profile, device, seed, progress, epochs, batch_size, width, max_train_images: see
            :class:`~pddlite.baselines._base.BaselineDetector`.
        recipe: ``"auto"`` (default: ``"image"`` for 64x64 images, ``"tabular"`` for 28x28),
            ``"tabular"`` or ``"image"`` (see :data:`RECIPES`).
        lr: the recipe's initial learning rate unless given (Adam 1e-3 / SGD 0.1).
        reg_lambda: lambda, the weight of the pull term, unless given (1 / 0.1).
        latent_dim: d, the latent dimension (128).
        bounded_scale: keep sigma_k >= 1 as the public code does (default) or leave it free.

    ``fit(task)`` reads ``task.train_labels``; ``fit(images, labels)`` takes labels explicitly.
    Fitted attributes: ``net_`` (:class:`MCDDNet`), ``classes_``, ``recipe_``, ``trainer_``,
    ``history_``.
    """

    method = "mcdd"
    uses_labels = "all"

    def __init__(self, profile=None, device="auto", seed=0, progress=True, *, recipe: str = "auto",
                 lr: float | None = None, reg_lambda: float | None = None, latent_dim: int = 128,
                 bounded_scale: bool = True, epochs: int | None = None, batch_size: int | None = None, width: float | None = None,
                 max_train_images: int | None = None, precision: str = "auto", deterministic: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, contamination: float = 0.1):
        self._keep(locals())

    def _resolve(self) -> dict[str, Any]:
        options.choice("MCDD recipe", self.recipe, ("auto", *RECIPES))
        options.positive("lr", self.lr, optional=True)
        options.number("reg_lambda", self.reg_lambda, 0.0, optional=True)
        options.whole("latent_dim", self.latent_dim)
        options.flag("bounded_scale", self.bounded_scale)
        return super()._resolve()

    def default_schedule(self, dataset: str, n_images: int | None = None) -> tuple[int, int]:
        return self._profile().schedule("mcdd", dataset, n_images)

    def _build(self, image_shape, n_classes) -> None:
        if n_classes < 1:
            raise PDDLiteError("MCDD needs labeled normal training images")
        self.net_ = MCDDNet(image_shape, n_classes, self.width_, self.latent_dim, self.bounded_scale).to(self.device_)

    def _trainer(self, labels: torch.Tensor, epochs: int) -> MCDDTrainer:
        self.recipe_ = resolve_recipe(self.recipe, self.image_shape_)
        return MCDDTrainer(self.net_, labels, recipe=self.recipe_, lr=self.lr, reg_lambda=self.reg_lambda,
                           epochs=epochs, runtime=self.runtime_)

    def _train(self, images, labels, batch_size, epochs) -> None:
        self.trainer_ = self._trainer(labels, epochs)
        self.history_ = self.trainer_.fit(images, epochs, batch_size, self.runtime_.progress, "MCDD")

    def _timed_stages(self, images, labels) -> list[TimedStage]:
        self.trainer_ = self._trainer(labels, self.schedule_["epochs"])
        return super()._timed_stages(images, labels)

    def _scoring_modules(self) -> list[nn.Module]:
        return [self.net_]

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_.distances(x).min(dim=1).values

    def predict_class(self, images: torch.Tensor) -> torch.Tensor:
        """The nearest normal class of each image (an original class index), in eval mode."""
        dist = torch.as_tensor(self._class_distances(images))
        return self.classes_[dist.argmin(dim=1)]

    @torch.no_grad()
    def _class_distances(self, images: torch.Tensor):
        with network_mode(self.net_, train=False):
            x = images.float().to(self.device_)
            return torch.cat([self.net_.distances(part).float() for part in x.split(1024)]).cpu()

"""An exponential moving average of a network's weights (Polyak averaging).

Two users. The PDD tune-up (an option, beyond the paper): GAN discriminator features are a moving
target, and from one epoch to the next of the same run the AUROC of Eq. 7 on a validation task
swings by up to 0.1 (see docs/results.md); scoring with an average of the weights over the last steps
removes most of that swing without changing the training. EGBAD (its public code scores with
such averages, see :mod:`pddlite.baselines.egbad`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .options import number


class WeightAverage(nn.Module):
    """Holds ``average``, a copy of ``module`` whose weights follow an exponential moving average.

    ``update()`` after every optimiser step sets each weight to ``d * average + (1 - d) * current``
    with ``d = min(decay, (1 + n) / (10 + n))`` at the n-th update: the warm-up keeps the first
    updates from being dominated by the starting weights. Buffers (BatchNorm running statistics) are
    copied, not averaged. The average never receives gradients.
    """

    def __init__(self, module: nn.Module, decay: float = 0.95):
        super().__init__()
        self.decay = number("decay", decay, 0.0, 1.0, low_open=True, high_open=True)
        self.average = copy.deepcopy(module).eval()
        for p in self.average.parameters():
            p.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._source = [module]  # not a submodule: its weights belong to the trainer

    @torch.no_grad()
    def update(self) -> None:
        source = self._source[0]
        # the decay as a tensor on the weights' device: no host sync per optimiser step
        n = self.updates.to(torch.float32)
        d = torch.clamp((1.0 + n) / (10.0 + n), max=self.decay)
        for a, p in zip(self.average.parameters(), source.parameters()):
            a.lerp_(p.detach(), (1.0 - d).to(a.dtype))
        for a, b in zip(self.average.buffers(), source.buffers()):
            a.copy_(b)
        self.updates += 1

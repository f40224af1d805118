"""The training loop every pddlite model shares: epochs of shuffled index batches, resumable.

:class:`EpochTrainer` knows nothing of GANs: it keeps the epoch counter, the loss history, the
seeded batch order (:func:`pddlite.data.batches`: images stay on the device, a CPU generator
draws the order), the mixed precision (:func:`pddlite.device.choose_precision`) and the whole
state (networks, optimisers, epoch, random state), so that a run interrupted between epochs
resumes where it stopped. A trainer says only what differs: its networks and optimisers,
:meth:`~EpochTrainer.batch_losses` (one batch's step), and where needed
:meth:`~EpochTrainer.start_epoch` (a learning-rate schedule) and :meth:`~EpochTrainer.select`
(what of the data a batch is). The adversarial trainers of :mod:`pddlite.gan` add the noise.

``compile=True`` compiles, in place and once, the ``forward`` of every network in ``modules``
with :func:`torch.compile` (:meth:`nn.Module.compile <torch.nn.Module.compile>`) when training
starts (:meth:`~EpochTrainer.prepare_to_train`): these networks are small, so at batch 200 a GPU
waits on kernel launches more than it computes, and compiled code launches fewer, fused kernels.
Measured on an H200 (``benchmarks/gpu_check.py``, docs/performance.md), compiling the forward passes alone
does not pay: the steps ran 13-41% slower than uncompiled. The losses and optimiser steps stay
uncompiled and launch their kernels one by one; ``cuda_graphs`` (below) captures them all.
What runs compiled is each network's call, ``net(x)``, from then on: every step of the GAN
pre-training, the tune-up's adversarial steps, and the steps of every trained baseline (MCDD's
training calls its net, whose forward is the distances); it stays compiled afterwards, so scoring
through ``net(x)`` (GANomaly, Deep SVDD) compiles once more for eval mode. What is not compiled:
other methods of a network, which a compiled ``forward`` does not cover (the tune-up's margin
step and GANomaly's feature matching call ``discriminator.features``; PDD embeds through it), the
losses, the optimiser steps, and deep copies (PDD's :meth:`~pddlite.PDD.copy_with`, weight
averages), which come back uncompiled until a trainer of theirs starts. Compiling in place keeps
``state_dict`` keys, so checkpoints and the pre-training cache are the same files with and
without it.

``cuda_graphs=True`` replays each whole training step (what :meth:`~EpochTrainer.batch_losses`
runs: forward and backward passes, losses, optimiser steps) as one CUDA graph
(:class:`pddlite.graphs.StepGraph`), recaptured at every epoch's start. A trainer that allows it
says so in :meth:`~EpochTrainer.graph_unsupported`; the GAN pre-training and the tune-up with
Eqs. 5-6 do. It needs a CUDA device and bfloat16 or float32, and is not combined with ``compile``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import batches
from .graphs import StepGraph, make_capturable, refuse, unsupported_setting
from .runtime import Runtime

#: Keyword arguments of every in-place :func:`torch.compile`: empty, inductor's defaults. A test
#: sets ``{"backend": "eager"}`` here to check the plumbing without paying for a real compile.
_COMPILE_OPTIONS: dict[str, Any] = {}


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` has been compiled in place (a deep copy of it has not)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def compile_in_place(module: nn.Module) -> None:
    """Compile ``module``'s forward with :func:`torch.compile`, unless it already is: a network
    shared by two trainers (PDD's pre-training and tune-up) is compiled once."""
    if not is_compiled(module):
        module.compile(**_COMPILE_OPTIONS)


class EpochTrainer:
    """Shared bookkeeping and the loop: epoch counter, loss history, batch order, precision, state."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, runtime: Runtime = Runtime()):
        # resolving a resolved Runtime changes nothing; one built by hand (Runtime(), the defaults)
        # gets its device and precision here
        self.runtime = runtime.resolved()
        self.device, self.seed, self.precision = self.runtime.device, self.runtime.seed, self.runtime.precision
        self.compile, self.cuda_graphs = self.runtime.compile, self.runtime.cuda_graphs
        self.step_graph: StepGraph | None = None  # made by prepare_to_train when cuda_graphs
        self.scaler = self.precision.grad_scaler()
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.data_generator = torch.Generator().manual_seed(self.seed)

    def autocast(self):
        """The forward passes' mixed precision (a no-op in float32). It keeps no cache of cast
        weights, which a CUDA graph capture needs: a weight used twice in a step (the discriminator
        on real and on fake images) is cast twice and its two gradients summed in float32, so a step
        computes the same numbers with and without ``cuda_graphs``."""
        return self.precision.autocast(cache=False)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step on ``loss``: zero the gradients, back-propagate, step. In float16 the
        loss is scaled and the step skipped when a gradient overflowed (GradScaler); otherwise this
        is exactly ``loss.backward(); optimizer.step()``."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        with warnings.catch_warnings():
            # on CUDA every Adam is capturable (prepare_to_train), and its eager steps warn that this
            # "can impair performance": a choice made on purpose, so that eager and graph steps agree
            warnings.filterwarnings("ignore", message=".*capturable=True.*", category=UserWarning)
            self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "history": self.history,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "data_generator": self.data_generator.get_state(),
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
        if self.scaler.is_enabled() and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.step_graph = None  # it recorded the tensors that loading just replaced

    #: names of the losses that :meth:`batch_losses` returns, in order (keys of ``history``)
    loss_names: tuple[str, ...] = ()

    def batch_losses(self, batch: Any) -> Sequence[torch.Tensor]:  # pragma: no cover
        """Train on one batch and return its detached losses, named by :attr:`loss_names`."""
        raise NotImplementedError

    def start_epoch(self) -> None:
        """Called before each epoch (``self.epoch`` epochs are done): learning-rate schedules go here."""

    def select(self, images: torch.Tensor, idx: torch.Tensor) -> Any:
        """What :meth:`batch_losses` gets for the index batch ``idx``: the images, by default."""
        return images[idx]

    def graph_unsupported(self) -> str | None:
        """Why this trainer's step cannot be captured as a CUDA graph, or ``None`` if it can
        (:mod:`pddlite.graphs` lists what a step must do). A trainer whose step qualifies says so."""
        return f"{type(self).__name__}'s steps are not prepared for CUDA graphs"

    def check_cuda_graphs(self) -> None:
        """A one-line error if ``cuda_graphs`` was asked for where it cannot work."""
        refuse(unsupported_setting(self.device, self.precision, self.compile) or self.graph_unsupported())

    def prepare_to_train(self) -> None:
        """Every network in train mode, and with ``compile`` compiled in place (once; see the module
        docstring); on CUDA the optimisers made capturable, and with ``cuda_graphs`` the step graph made.
        :meth:`fit` calls it; so does anything that runs :meth:`train_step` alone."""
        for m in self.modules.values():
            m.train()
            if self.compile:
                compile_in_place(m)
        if self.device.type == "cuda":
            # Adam's step count on the GPU: no host value per step, the arithmetic a graph replays
            # (so eager and graph steps compute the same numbers; measured in benchmarks/gpu_check.py)
            for optimizer in self.optimizers.values():
                if "capturable" in optimizer.defaults:
                    make_capturable(optimizer)
        if self.cuda_graphs:
            self.check_cuda_graphs()
            if self.step_graph is None:
                self.step_graph = StepGraph(self.batch_losses)

    def train_step(self, batch: Any) -> Sequence[torch.Tensor]:
        """One training step on ``batch`` (what :meth:`select` returns): :meth:`batch_losses`, or its
        CUDA graph's replay with ``cuda_graphs``, whose returned losses the next step overwrites."""
        if self.step_graph is None:
            return self.batch_losses(batch)
        return self.step_graph(batch)

    def train_epoch(self, images: torch.Tensor, batch_size: int) -> dict[str, float]:
        """One shuffled pass over ``images``; the mean of each loss, with one host sync per epoch."""
        self.start_epoch()
        if self.step_graph is not None:
            self.step_graph.reset()  # the epoch may have changed a learning rate or the terms
        sums = torch.zeros(len(self.loss_names), device=self.device)
        n = 0
        for idx in batches(len(images), batch_size, self.data_generator, self.device):
            sums += torch.stack(list(self.train_step(self.select(images, idx))))
            n += 1
        return dict(zip(self.loss_names, (sums / max(n, 1)).tolist()))

    def fit(
        self,
        images: torch.Tensor,
        epochs: int,
        batch_size: int,
        progress: bool | None = None,
        desc: str = "training",
        on_epoch_end: Callable[["EpochTrainer"], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs are done in total (a resumed trainer continues its count);
        ``progress`` (a bar per epoch) is the runtime's unless given."""
        self.prepare_to_train()
        progress = self.runtime.progress if progress is None else progress
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

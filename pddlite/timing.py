"""The estimated wall time of a training run, from one timed training step of each stage.

Before :meth:`Detector.run <pddlite.detector.Detector.run>` (``pddlite run``) trains, and unless
progress is off, it prints one line on stderr such as::

    estimated training time: about 4 min (0.52 s per step x 460 steps, from one timed step on cpu)

Each stage of the run (PDD: the pre-training and the tune-up; a baseline: its one or two
trainers) is timed for one step at the run's batch size, width, device and precision, after one
warm-up step (which, with ``compile``, also compiles: the line then ends in ``compiled``), and its
seconds are multiplied by the optimiser steps the stage will take; ``s per step`` is the mean over
the run's steps. Data loading, scoring, checkpoints and compilation are left out, and one step is
a noisy sample: the figure says whether to wait for a run or to go and do something else, not
more.

Timing changes nothing of the run: the step is taken by a deep copy of the trainer (its
networks, optimisers and generators), and torch's, NumPy's and Python's global random states are
put back afterwards, so a run's numbers are the same with the estimate and without it.

For a device that is not at hand (a Colab T4 seen from a laptop), ``flops_per_second`` replaces
the timed step by a counted one: the step's floating-point operations (convolutions and matrix
products, forward and backward, as :mod:`torch.utils.flop_counter` counts them) at an assumed
sustained rate. The line then ends in ``from counted FLOPs at an assumed 4 TFLOP/s``. The
assumption carries the estimate: say which rate, and why, wherever the figure is quoted.
"""

from __future__ import annotations

import contextlib
import copy
import random
import sys
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .errors import PDDLiteError
from .graphs import WARMUP_STEPS
from .trainer import EpochTrainer


@contextlib.contextmanager
def random_state_kept(device: torch.device) -> Iterator[None]:
    """Run the block, then put torch's (CPU and ``device``), NumPy's and Python's global random
    states back as they were: whatever the block draws, the run after it draws the same."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _wait_for(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _scratch_step(trainer: EpochTrainer, images: torch.Tensor,
                  batch_size: int) -> Iterator[tuple[EpochTrainer, object]]:
    """A deep copy of ``trainer``, ready to train, and its batch of the first ``batch_size`` images;
    the global random states are put back afterwards, and ``trainer`` is never touched."""
    scratch = copy.deepcopy(trainer)
    index = torch.arange(min(batch_size, len(images)), device=scratch.device)
    with random_state_kept(scratch.device):
        scratch.prepare_to_train()
        yield scratch, scratch.select(images, index)


def seconds_per_step(trainer: EpochTrainer, images: torch.Tensor, batch_size: int) -> float:
    """Wall seconds of one training step of ``trainer`` on ``batch_size`` of ``images``.

    A deep copy of the trainer takes one warm-up step (cuDNN's algorithm search, and with
    ``compile`` the compilation, happen there), then the timed one; with ``cuda_graphs`` the graph's
    warm-up steps and its capture come first and the timed step is a replay. ``trainer`` itself,
    its networks, optimisers and generators are untouched, and so are the global random states.
    """
    with _scratch_step(trainer, images, batch_size) as (scratch, batch):
        for _ in range(1 if scratch.step_graph is None else WARMUP_STEPS + 1):
            scratch.train_step(batch)
        _wait_for(scratch.device)
        start = time.perf_counter()
        scratch.train_step(batch)
        _wait_for(scratch.device)
        return time.perf_counter() - start


def flops_per_step(trainer: EpochTrainer, images: torch.Tensor, batch_size: int) -> float:
    """Floating-point operations of one training step of ``trainer`` on ``batch_size`` of ``images``,
    counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products,
    forward and backward; element-wise work is not counted). Like :func:`seconds_per_step`, the step
    is a deep copy's, and the trainer and the global random states are left as they were."""
    from torch.utils.flop_counter import FlopCounterMode

    with _scratch_step(trainer, images, batch_size) as (scratch, batch), FlopCounterMode(display=False) as counter:
        scratch.train_step(batch)
    return float(counter.get_total_flops())


@dataclass(frozen=True)
class TimedStage:
    """One stage of a run to time: its trainer, its batch size and how many steps it will take."""

    trainer: EpochTrainer
    batch_size: int
    steps: int


@dataclass(frozen=True)
class TrainingEstimate:
    """The training time of a run: ``seconds`` over ``steps`` steps, timed on ``device``, or, where
    ``flops_per_second`` is set, counted (``flops`` in all) and divided by that assumed rate."""

    seconds: float
    steps: int
    device: str
    compiled: bool = False
    flops: float | None = None
    flops_per_second: float | None = None

    def line(self) -> str:
        """The one line printed before the run (see the module docstring)."""
        per_step = self.seconds / max(self.steps, 1)
        if self.flops_per_second is not None:
            basis = f"from counted FLOPs at an assumed {self.flops_per_second / 1e12:g} TFLOP/s"
        else:
            basis = f"from one timed step on {self.device}{', compiled' if self.compiled else ''}"
        return (f"estimated training time: {_about(self.seconds)} ({per_step:.3g} s per step x {self.steps} steps, "
                f"{basis})")


def estimate_training(stages: Sequence[TimedStage], images: torch.Tensor,
                      flops_per_second: float | None = None) -> TrainingEstimate:
    """Time one step of each stage that trains at all and add up seconds x steps; with
    ``flops_per_second``, count each step's FLOPs instead and divide their sum by that rate."""
    stages = [s for s in stages if s.steps > 0]
    steps = sum(s.steps for s in stages)
    device = str(stages[0].trainer.device) if stages else "cpu"
    if flops_per_second is not None:
        if not flops_per_second > 0:
            raise PDDLiteError(f"flops_per_second must be a positive rate such as 4e12, got {flops_per_second!r}")
        flops = sum(flops_per_step(s.trainer, images, s.batch_size) * s.steps for s in stages)
        return TrainingEstimate(flops / flops_per_second, steps, device, flops=flops,
                                flops_per_second=float(flops_per_second))
    seconds = sum(seconds_per_step(s.trainer, images, s.batch_size) * s.steps for s in stages)
    return TrainingEstimate(seconds, steps, device, any(s.trainer.compile for s in stages))


def announce(estimate: TrainingEstimate | None) -> None:
    """Print the estimate's line on stderr (where the progress bars are); nothing for ``None``."""
    if estimate is not None:
        print(estimate.line(), file=sys.stderr, flush=True)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimiser steps in one epoch: whole batches only (:func:`pddlite.data.batches` drops the rest)."""
    return n_images // max(min(batch_size, n_images), 1)


def _about(seconds: float) -> str:
    """``seconds`` rounded as a person reads a wait: "about 40 s", "about 4 min", "about 2.5 h"."""
    if seconds < 90:
        return f"about {max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"

"""The run-time options of a run, as one object: how it computes, never what it computes.

:class:`Runtime` bundles ``device``, ``seed``, ``progress``, ``precision``, ``deterministic``,
``compile`` and ``cuda_graphs``. The command line builds one and passes it whole to
:func:`pddlite.experiment.run_task` (``runtime=``) or to the grid (:func:`pddlite.grid.replicate`,
which gives each run its repetition's seed); ``run_task`` hands its :meth:`~Runtime.params` to a
detector (whose constructor takes them as explicit scikit-learn parameters), and the detector's
``fit`` resolves them into ``runtime_``: a :class:`Runtime` whose device is a :class:`torch.device`
and whose precision a :class:`~pddlite.device.Precision`, which it passes whole to its trainers
(:class:`pddlite.trainer.EpochTrainer`'s ``runtime``). A detector that cannot honour an
option (:attr:`pddlite.detector.Detector.unsupported_runtime`) refuses a value other than the
default in one line instead of ignoring it.

The seed changes the numbers (it is part of the task's identity in a result row); the others change
speed, memory or bit-level reproducibility only, which is why none of them enters
:func:`pddlite.experiment.settings_fingerprint`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .device import Precision, check_seed, choose_precision, resolve_device
from .errors import PDDLiteError
from .options import flag


@dataclass(frozen=True)
class Runtime:
    """The seven run-time options (defaults: CUDA when present, seed 0, progress bars, automatic
    precision, fastest cuDNN algorithms, nothing compiled, no CUDA graphs)."""

    device: str | torch.device = "auto"
    seed: int = 0
    progress: bool = True
    precision: str | Precision = "auto"
    deterministic: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    def resolved(self) -> "Runtime":
        """Every option checked, the device resolved and the precision chosen for it (one line
        naming the option on a bad value)."""
        device = resolve_device(self.device)
        return Runtime(device=device, seed=check_seed(self.seed), progress=flag("progress", self.progress),
                       precision=choose_precision(device, self.precision),
                       deterministic=flag("deterministic", self.deterministic),
                       compile=flag("compile", self.compile), cuda_graphs=flag("cuda_graphs", self.cuda_graphs))

    def params(self) -> dict[str, Any]:
        """The options as keyword arguments of a detector's constructor (precision by name)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["precision"] = getattr(self.precision, "name", self.precision)
        out["device"] = str(self.device)
        return out

    def with_seed(self, seed: int) -> "Runtime":
        """A copy with another seed: a trainer that must not share its random streams with another
        of the same run (PDD's tune-up, Deep SVDD's second stage) gets ``seed + offset``."""
        return dataclasses.replace(self, seed=seed)

    def without(self, names: tuple[str, ...]) -> "Runtime":
        """A copy with ``names`` back at their defaults: a grid of many methods applies an option to
        the methods that honour it (one method run alone refuses it: :meth:`refuse`)."""
        return dataclasses.replace(self, **{f.name: f.default for f in dataclasses.fields(self) if f.name in names})

    def refuse(self, detector: str, unsupported: tuple[str, ...], why: str) -> None:
        """One line for the first of ``unsupported`` set to other than its default: ``detector``
        cannot honour it (``why``), so it is refused rather than ignored."""
        for name in unsupported:
            default = next(f.default for f in dataclasses.fields(self) if f.name == name)
            given = getattr(self, name)
            if getattr(given, "name", given) != default:
                raise PDDLiteError(f"{detector} cannot honour {name}={given!r} ({why}); leave {name} at {default!r}")


#: the names of the run-time options, in the order of :class:`Runtime`'s fields
RUNTIME_OPTIONS = tuple(f.name for f in dataclasses.fields(Runtime))

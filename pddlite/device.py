"""Device choice, seeding and mixed precision, in one place.

Precision (``--precision``): ``auto`` trains in bfloat16 autocast on GPUs of compute capability
8.0 and above (A100, L4, H100: bfloat16 tensor cores, no loss scaling needed), in float16 autocast
with a :class:`torch.amp.GradScaler` below (a Colab T4 is 7.5 and has float16 tensor cores only;
bfloat16 there is emulated), and in float32 on the CPU. ``bf16``, ``fp16`` and ``fp32`` force one.
Scores are always computed in float32 from the networks' outputs.

Determinism (``--deterministic``): by default cuDNN picks the fastest convolution algorithms
(``cudnn.benchmark``), so two runs with the same seed on a GPU agree closely but not bit for bit.
``deterministic=True`` asks for deterministic algorithms: same seed, same GPU, same numbers, at
some cost in speed. On the CPU the same seed always gives the same numbers.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import PDDLiteError
from .options import choice


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a usable device.

    ``"auto"`` (and ``None``) picks CUDA when it is present, else the CPU.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise PDDLiteError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PDDLiteError(
            f"device {device!r} was asked for but CUDA is not available here; "
            "use --device cpu (or auto), or on Colab choose Runtime > Change runtime type > GPU"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise PDDLiteError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolved


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` moved to ``device``; on CUDA its 4-D weights stored channels-last (NHWC), the
    layout tensor cores read without transposing, so that convolutions run in it. Once CUDA graphs
    remove the launch overhead, the GPU's own work is what a paper-width step costs, and on an H200
    channels-last cut it by 16-42% (docs/performance.md, the GPU tables). On the CPU the layout stays NCHW, so CPU
    numbers do not move. Checkpoints hold values, not layouts: they load either way."""
    if torch.device(device).type == "cuda":
        return module.to(device=device, memory_format=torch.channels_last)
    return module.to(device)


#: seeds are offset by small constants for streams of their own, so they stay below 2**62
MAX_SEED = 2**62 - 1


def check_seed(seed: Any) -> int:
    """``seed`` as an int in 0..MAX_SEED, or one line saying what a seed must be."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise PDDLiteError(f"seed must be a whole number from 0 to 2**62 - 1, got {seed!r}")
    return int(seed)


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch, set cuDNN's speed / determinism trade-off (see the module
    docstring), and return a CPU generator for data sampling.

    Batches and noise are drawn from explicit generators so that the same seed on
    the same device gives the same numbers.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = bool(deterministic)
    return torch.Generator().manual_seed(seed)


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


@dataclass(frozen=True)
class Precision:
    """How one device trains: ``name`` (``"bf16"``, ``"fp16"`` or ``"fp32"``) on ``device_type``."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for plain float32."""
        return _DTYPES[self.name]

    @property
    def scales_loss(self) -> bool:
        """float16 needs loss scaling (its range is too small for small gradients); bfloat16 does not."""
        return self.name == "fp16"

    def autocast(self, cache: bool = True) -> contextlib.AbstractContextManager:
        """The autocast context of this precision (a no-op for float32); ``cache=False`` casts the
        weights anew at every use (what a CUDA graph capture needs)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=cache)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for float16 (disabled, it passes losses and steps through)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scales_loss)


def choose_precision(
    device: str | torch.device,
    requested: str | Precision = "auto",
    capability: tuple[int, int] | None = None,
) -> Precision:
    """The training precision for ``device`` (see the module docstring).

    ``capability`` is the GPU's compute capability; by default it is read from the device (give it
    to see what a T4, (7, 5), or an A100, (8, 0), would get without one).
    """
    if isinstance(requested, Precision):
        return requested
    name = str(requested).strip().lower()
    choice("precision", name, PRECISIONS)
    device = torch.device(device)
    if name == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            if capability is None:
                capability = torch.cuda.get_device_capability(device)
            name = "bf16" if tuple(capability) >= (8, 0) else "fp16"
    return Precision(name, device.type)


def autocast(device: torch.device, precision: str | Precision = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision for forward passes on ``device``: :func:`choose_precision`'s autocast."""
    return choose_precision(device, precision).autocast()

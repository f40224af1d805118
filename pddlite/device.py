"""Device choice, seeding and mixed precision, in one place."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .errors import PDDLiteError


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


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a CPU generator for data sampling.

    Batches and noise are drawn from explicit generators so that the same seed on
    the same device gives the same numbers.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bfloat16, so no loss scaling is needed); a no-op on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()

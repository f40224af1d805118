"""Train or eval mode for the length of a block, restored after: the one way pddlite switches it.

BatchNorm and dropout behave differently in the two modes, so every embedding, score and sample
is computed in eval mode, and the mode a caller had set is put back even when the block raises.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def network_mode(*modules: nn.Module, train: bool) -> Iterator[None]:
    """Inside the block, every module of ``modules`` is in train mode (``train=True``) or eval mode."""
    was = [m.training for m in modules]
    for m in modules:
        m.train(train)
    try:
        yield
    finally:
        for m, mode in zip(modules, was):
            m.train(mode)

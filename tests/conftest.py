"""Shared pytest setup for the pddlite tests.

The repository root is put on ``sys.path`` so that ``pytest`` works from a plain checkout
(``python -m pytest`` does this already). Fixtures shared by several modules live here;
everything else stays in the module that uses it.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def mnist5k_task():
    """The default offline task: mnist-5k, anomaly class 1, 20 shots, seed 0 (built once)."""
    from pddlite.data import make_task

    return make_task("mnist-5k", anomaly=1, shots=20, seed=0)


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's tiny tensor ops on one thread, then restore the thread count.

    On a small, shared CPU a second intra-op thread makes these small ops many times slower;
    these tests assert nothing that depends on it (training does: see the slow test in test_pdd.py).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def eager_compile(monkeypatch):
    """``torch.compile`` with the eager backend for this test, and the list of networks compiled.

    Dynamo still traces every compiled forward (so the plumbing is checked), but no code is
    generated: seconds, where a real inductor compile takes tens of seconds per network.
    """
    from torch import nn

    import pddlite.trainer

    monkeypatch.setattr(pddlite.trainer, "_COMPILE_OPTIONS", {"backend": "eager"})
    compiled: list[nn.Module] = []
    compile_in_place = nn.Module.compile

    def recorded(module, *args, **kwargs):
        compiled.append(module)
        return compile_in_place(module, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "compile", recorded)
    return compiled

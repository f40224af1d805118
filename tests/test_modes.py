"""network_mode: the one way pddlite switches train/eval mode, restored after the block."""

import pytest
from torch import nn

from pddlite.modes import network_mode


def test_each_module_gets_the_mode_and_its_own_back():
    a, b = nn.BatchNorm1d(2), nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    b.eval()
    with network_mode(a, b, train=False):
        assert not a.training and not b.training and not b[1].training
    assert a.training and not b.training
    with network_mode(a, b, train=True):
        assert a.training and b.training and b[1].training
    assert a.training and not b.training and not b[1].training


def test_the_mode_is_restored_when_the_block_raises():
    net = nn.BatchNorm1d(2)
    with pytest.raises(RuntimeError):
        with network_mode(net, train=False):
            raise RuntimeError("inside")
    assert net.training

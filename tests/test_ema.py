"""Tests of pddlite.ema.WeightAverage: the moving average by hand, the warm-up, buffers copied."""

import pytest
import torch
from torch import nn

from pddlite.ema import WeightAverage


def test_the_average_by_hand():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = WeightAverage(net, decay=0.5)
    expected = 0.0
    for n, w in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update()
        d = min(0.5, (1 + n) / (10 + n))  # warm-up: 0.1, 0.18, 0.25, ... then 0.5
        expected = d * expected + (1 - d) * w
        assert ema.average.weight.item() == pytest.approx(expected)
    assert int(ema.updates) == 10
    assert not ema.average.weight.requires_grad


def test_buffers_are_copied_and_the_source_is_not_a_submodule():
    net = nn.BatchNorm1d(2)
    ema = WeightAverage(net, decay=0.9)
    net.running_mean.fill_(3.0)
    ema.update()
    assert torch.equal(ema.average.running_mean, torch.full((2,), 3.0))
    assert set(dict(ema.named_modules())) == {"", "average"}
    with pytest.raises(ValueError):
        WeightAverage(net, decay=1.0)

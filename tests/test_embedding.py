"""Tests of pddlite.embedding: BatchNorm statistics recomputed from real images."""

import pytest
import torch
from torch import nn

from pddlite.embedding import recalibrate_batchnorm

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_recalibrated_statistics_are_those_of_the_images():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.LeakyReLU(0.01))
    net[1].running_mean.fill_(7.0)  # stale statistics, as after GAN training
    net[1].running_var.fill_(9.0)
    net.eval()
    images = torch.randn(400, 1, 8, 8)
    recalibrate_batchnorm(net, images, batch_size=100)
    with torch.no_grad():
        h = net[0](images)  # what BatchNorm sees
    torch.testing.assert_close(net[1].running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5, rtol=0)
    # the mean of four equal batches' unbiased variances, close to the overall variance
    torch.testing.assert_close(net[1].running_var, h.var(dim=(0, 2, 3)), atol=2e-2, rtol=2e-2)
    assert net[1].momentum == 0.1 and not net.training  # momentum and mode restored
    conv_before = net[0].weight.clone()
    recalibrate_batchnorm(net, images)
    assert torch.equal(net[0].weight, conv_before)  # weights untouched

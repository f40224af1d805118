"""Tests of pddlite.nets: every layer's output shape against the D_out columns of Tables 3 and 4.

Shapes are written (H, W, C) as in the tables and compared with PyTorch's (C, H, W).
"""

import pytest
import torch
from torch import nn

from pddlite.errors import PDDLiteError
from pddlite.nets import (
    Discriminator28, Discriminator64, Encoder, Generator28, Generator64, JointDiscriminator, make_gan,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def hwc(t):
    """(H, W, C) of an N x C x H x W activation."""
    return (t.shape[2], t.shape[3], t.shape[1])


def layer_outputs(modules, run):
    """Run ``run()`` and return the outputs of ``modules`` in order, caught with forward hooks."""
    out = []
    handles = [m.register_forward_hook(lambda _m, _i, o: out.append(o.detach())) for m in modules]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return out


def scaled(shapes, width):
    return [(h, w, max(1, int(round(c * width)))) for h, w, c in shapes]


# --------------------------------------------------------------------------- Table 3


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_generator28_paper_layout_matches_table3a(width):
    g = Generator28(width=width)
    z = torch.randn(2, 100)
    outs = layer_outputs([g.project, g.blocks[0], g.blocks[1], g.blocks[2], g.blocks[4]], lambda: g(z))
    assert outs[0].shape == (2, 7 * 7 * max(1, round(512 * width)))  # Lin + BN + ReLU: 7x7x512
    expected = scaled([(14, 14, 256), (14, 14, 128), (28, 28, 64)], width) + [(28, 28, 1)]
    assert [hwc(o) for o in outs[1:]] == expected
    x = g(z)
    assert x.shape == (2, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1  # tanh


def test_generator28_reference_layout_third_layer_is_14x14x64():
    g = Generator28(layout="reference")
    z = torch.randn(2, 100)
    outs = layer_outputs([g.blocks[0], g.blocks[1], g.blocks[2], g.blocks[4]], lambda: g(z))
    assert [hwc(o) for o in outs] == [(14, 14, 256), (14, 14, 128), (14, 14, 64), (28, 28, 1)]


def test_generator28_layer_types_follow_table3a():
    g = Generator28()
    assert [type(m) for m in g.project] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    for block in g.blocks[:3]:  # CnvTr + BN + LkReLU
        assert [type(m) for m in block] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert isinstance(g.blocks[3], nn.ConvTranspose2d) and isinstance(g.blocks[4], nn.Tanh)


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_discriminator28_matches_table3b(width):
    d = Discriminator28(width=width)
    x = torch.randn(2, 1, 28, 28)
    outs = layer_outputs(list(d.body), lambda: d(x))
    assert [hwc(o) for o in outs] == scaled([(28, 28, 8), (14, 14, 16), (7, 7, 32), (7, 7, 64)], width)
    for block in d.body:  # Cnv + BN + LkReLU
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert d(x).shape == (2,)  # Fltn + Lin (-> 1); the sigmoid lives in the loss
    assert d.embedding_dim == 7 * 7 * max(1, round(64 * width))


def test_discriminator28_embedding_is_the_flattened_7x7x64_map():
    d = Discriminator28().eval()
    x = torch.randn(3, 1, 28, 28)
    f = d.features(x)
    assert f.shape == (3, 3136) and d.embedding_dim == 3136
    torch.testing.assert_close(f, layer_outputs([d.body[3]], lambda: d(x))[0].flatten(1))


# --------------------------------------------------------------------------- Table 4


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_generator64_matches_table4a(width):
    g = Generator64(width=width)
    z = torch.randn(2, 100)
    outs = layer_outputs([g.blocks[i] for i in (0, 1, 2, 3, 5)], lambda: g(z))
    expected = scaled([(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64)], width) + [(64, 64, 3)]
    assert [hwc(o) for o in outs] == expected
    for block in g.blocks[:4]:  # ConvTr + BN + ReLU
        assert [type(m) for m in block] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU]
    x = g(z)
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_discriminator64_matches_table4b(width):
    d = Discriminator64(width=width)
    x = torch.randn(2, 3, 64, 64)
    outs = layer_outputs(list(d.body), lambda: d(x))
    assert [hwc(o) for o in outs] == scaled([(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)], width)
    # first layer Cnv + LkReLU without BN, the others Cnv + BN + LkReLU
    assert [type(m) for m in d.body[0]] == [nn.Conv2d, nn.LeakyReLU]
    for block in d.body[1:]:
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert d(x).shape == (2,)  # Conv -> 1 (+ sigmoid in the loss)
    assert d.features(x).shape == (2, d.embedding_dim)
    assert d.embedding_dim == 4 * 4 * max(1, round(512 * width))


def test_discriminator64_embedding_dim_is_8192():
    assert Discriminator64().embedding_dim == 8192


def test_leaky_relu_slope_is_pytorch_default():
    for net in (Generator28(width=0.1), Discriminator28(width=0.5), Discriminator64(width=0.1)):
        slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
        assert slopes == {0.01}


def test_width_multiplier_scales_parameter_count():
    # Channels scale with width, so conv weights scale roughly with width^2.
    full = sum(p.numel() for p in Discriminator64(width=1.0).parameters())
    half = sum(p.numel() for p in Discriminator64(width=0.5).parameters())
    assert 0.2 < half / full < 0.3


# --------------------------------------------------------------------------- BiGAN parts and make_gan


@pytest.mark.parametrize("shape,feat", [((1, 28, 28), 3136), ((3, 64, 64), 8192)])
def test_encoder_and_joint_discriminator_shapes(shape, feat):
    x = torch.randn(2, *shape)
    e = Encoder(shape)
    z = e(x)
    assert z.shape == (2, 100)
    assert e.to_z.in_features == feat
    jd = JointDiscriminator(shape, width=0.5)
    assert jd.features(x, z).shape == (2, 512)  # Linear(-> 1024 x width)
    assert jd(x, z).shape == (2,)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_make_gan_pairs_round_trip(shape):
    g, d = make_gan(shape, width=0.25)
    x = g(torch.randn(2, 100))
    assert x.shape == (2,) + shape
    assert d(x).shape == (2,)


@pytest.mark.parametrize("width", [0, -1, 9, float("nan"), "1"])
@pytest.mark.parametrize(
    "build",
    [
        Generator28, Discriminator28, Generator64, Discriminator64,
        lambda w: Encoder((1, 28, 28), width=w),
        lambda w: JointDiscriminator((3, 64, 64), width=w),
        lambda w: make_gan((1, 28, 28), width=w),
    ],
    ids=["G28", "D28", "G64", "D64", "Encoder", "JointD", "make_gan"],
)
def test_bad_width_is_refused(build, width):
    with pytest.raises(PDDLiteError, match="width"):
        build(width)


def test_bad_image_shape_and_layout_are_refused():
    with pytest.raises(PDDLiteError, match="shape"):
        make_gan((3, 32, 32))
    with pytest.raises(PDDLiteError, match="shape"):
        Encoder((1, 64, 64))
    with pytest.raises(PDDLiteError, match="shape"):
        JointDiscriminator((3, 28, 28))
    with pytest.raises(PDDLiteError, match="layout"):
        Generator28(layout="notebook")

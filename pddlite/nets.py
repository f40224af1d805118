"""The GAN architectures of Tables 3 and 4, layer for layer, and a BiGAN built from them (Sec. 3).

* Table 3 (MNIST, Fashion-MNIST, 28x28x1): :class:`Generator28`, :class:`Discriminator28`.
* Table 4 (CIFAR-10 resized to 64x64x3): :class:`Generator64`, :class:`Discriminator64`.
* The BiGAN of the motivating example and of EGBAD: :class:`Encoder` (x -> z) and
  :class:`JointDiscriminator` (on the pair (x, z)), for either image size.

The PDD embedding f(x) is the discriminator's flattened last feature map
(:meth:`Discriminator28.features`: 7x7x64 = 3,136 values at width 1).

``width`` multiplies every channel count (1.0 = the paper), so that CPU runs can shrink the
networks; spatial sizes never change. Discriminators return logits: the final sigmoid of the
tables is folded into the loss (``BCEWithLogits``), which is the same function computed stably.
LeakyReLU uses slope 0.01, PyTorch's default, as the authors' sample notebook does (the paper
does not state one).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import PDDLiteError

Z_DIM = 100  # Tables 3 and 4: the generator's input is a 100-d noise vector
LEAKY_SLOPE = 0.01


def channels(n: int, width: float) -> int:
    """Channel count ``n`` scaled by the width multiplier (at least 1)."""
    return max(1, int(round(n * width)))


def _check_width(width: float) -> float:
    if not (isinstance(width, (int, float)) and 0 < width <= 8):
        raise PDDLiteError(f"width must be a number in (0, 8], got {width!r}")
    return float(width)


# --------------------------------------------------------------------------- Table 3


class Generator28(nn.Module):
    """Table 3(a): 100 -> 7x7x512 -> 14x14x256 -> 14x14x128 -> 28x28x64 -> 28x28x1 (tanh).

    ``layout="paper"`` follows the table's D_out column. The sample notebook upsamples at the last
    layer instead (its third layer gives 14x14x64): ``layout="reference"``.
    """

    def __init__(self, width: float = 1.0, z_dim: int = Z_DIM, layout: str = "paper"):
        super().__init__()
        width = _check_width(width)
        if layout not in ("paper", "reference"):
            raise PDDLiteError(f"layout must be 'paper' or 'reference', got {layout!r}")
        c512, c256, c128, c64 = (channels(n, width) for n in (512, 256, 128, 64))
        self.z_dim, self.width, self.layout = z_dim, width, layout
        self.project = nn.Sequential(
            nn.Linear(z_dim, 7 * 7 * c512), nn.BatchNorm1d(7 * 7 * c512), nn.ReLU(True)
        )
        self.c512 = c512
        up3, up4 = (2, 1) if layout == "paper" else (1, 2)
        self.blocks = nn.Sequential(
            _up(c512, c256, stride=2),
            _up(c256, c128, stride=1),
            _up(c128, c64, stride=up3),
            nn.ConvTranspose2d(c64, 1, 3, stride=up4, padding=1, output_padding=up4 - 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.c512, 7, 7)
        return self.blocks(h)


def _up(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """ConvTranspose (k3) + BN + LeakyReLU; stride 2 doubles the side, stride 1 keeps it."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=stride, padding=1, output_padding=stride - 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
    )


def _down(c_in: int, c_out: int, stride: int, kernel: int = 3, batchnorm: bool = True) -> nn.Sequential:
    """Conv + (BN) + LeakyReLU; padding keeps the side at stride 1 and halves it at stride 2."""
    padding = 1
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
    return nn.Sequential(*layers)


def conv_stack28(width: float = 1.0, in_channels: int = 1) -> nn.Sequential:
    """Table 3(b) without its head: 28x28x1 -> 28x28x8 -> 14x14x16 -> 7x7x32 -> 7x7x64."""
    c8, c16, c32, c64 = (channels(n, width) for n in (8, 16, 32, 64))
    return nn.Sequential(
        _down(in_channels, c8, 1), _down(c8, c16, 2), _down(c16, c32, 2), _down(c32, c64, 1)
    )


class Discriminator28(nn.Module):
    """Table 3(b): the conv stack, then Flatten + Linear(3136 -> 1) (+ sigmoid, in the loss)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        width = _check_width(width)
        self.width = width
        self.body = conv_stack28(width)
        self.embedding_dim = 7 * 7 * channels(64, width)
        self.head = nn.Linear(self.embedding_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The PDD embedding f(x): the flattened 7x7x64 feature map (3,136 values at width 1)."""
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


# --------------------------------------------------------------------------- Table 4


class Generator64(nn.Module):
    """Table 4(a): 100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3 (tanh), DCGAN-style."""

    def __init__(self, width: float = 1.0, z_dim: int = Z_DIM):
        super().__init__()
        width = _check_width(width)
        c512, c256, c128, c64 = (channels(n, width) for n in (512, 256, 128, 64))
        self.z_dim, self.width = z_dim, width

        def up(c_in: int, c_out: int, stride: int, padding: int) -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(True),
            )

        self.blocks = nn.Sequential(
            up(z_dim, c512, 1, 0), up(c512, c256, 2, 1), up(c256, c128, 2, 1), up(c128, c64, 2, 1),
            nn.ConvTranspose2d(c64, 3, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(z.view(len(z), self.z_dim, 1, 1))


def conv_stack64(width: float = 1.0, in_channels: int = 3) -> nn.Sequential:
    """Table 4(b) without its head: 64x64x3 -> 32x32x64 (no BN) -> 16x16x128 -> 8x8x256 -> 4x4x512."""
    c64, c128, c256, c512 = (channels(n, width) for n in (64, 128, 256, 512))

    def down(c_in: int, c_out: int, batchnorm: bool) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        return nn.Sequential(*layers)

    return nn.Sequential(
        down(in_channels, c64, False), down(c64, c128, True), down(c128, c256, True), down(c256, c512, True)
    )


class Discriminator64(nn.Module):
    """Table 4(b): the conv stack, then Conv(4x4 -> 1) (+ sigmoid, in the loss)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        width = _check_width(width)
        self.width = width
        self.body = conv_stack64(width)
        c512 = channels(512, width)
        self.embedding_dim = 4 * 4 * c512
        self.head = nn.Conv2d(c512, 1, 4, 1, 0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The PDD embedding f(x): the flattened 4x4x512 feature map (8,192 values at width 1)."""
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten()


# --------------------------------------------------------------------------- BiGAN (Sec. 3, EGBAD)


class Encoder(nn.Module):
    """BiGAN encoder E: x -> z, the discriminator's conv stack followed by a linear map to 100-d."""

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, z_dim: int = Z_DIM):
        super().__init__()
        self.body, feat = conv_stack_for(image_shape, width)
        self.to_z = nn.Linear(feat, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_z(self.body(x).flatten(1))


class JointDiscriminator(nn.Module):
    """BiGAN discriminator on the pair (x, z) with a feature layer (EGBAD's f(x, z)).

    x goes through the image conv stack, z through Linear(100 -> 512) + LeakyReLU; the two are
    concatenated and mapped by Linear(-> 1024) + LeakyReLU to the feature layer, then to a logit.
    """

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0, z_dim: int = Z_DIM):
        super().__init__()
        self.x_path, feat = conv_stack_for(image_shape, width)
        cz, cj = channels(512, width), channels(1024, width)
        self.z_path = nn.Sequential(nn.Linear(z_dim, cz), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.joint = nn.Sequential(nn.Linear(feat + cz, cj), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.head = nn.Linear(cj, 1)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The joint feature layer f(x, z) used by EGBAD's feature-matching score."""
        return self.joint(torch.cat([self.x_path(x).flatten(1), self.z_path(z)], dim=1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x, z)).squeeze(1)


def unsupported_shape(shape: tuple[int, ...]) -> PDDLiteError:
    """The one error for an image shape that has no network (Tables 3-4 know two)."""
    return PDDLiteError(f"no network for images of shape {tuple(shape)}: use 1x28x28 (Table 3) or 3x64x64 (Table 4)")


def conv_trunk(image_shape: tuple[int, int, int], width: float) -> tuple[nn.Sequential, int, int]:
    """The image conv stack of Table 3(b) or 4(b) for ``image_shape``: (stack, output channels, output side)."""
    width = _check_width(width)
    shape = tuple(image_shape)
    if shape == (1, 28, 28):
        return conv_stack28(width), channels(64, width), 7
    if shape == (3, 64, 64):
        return conv_stack64(width), channels(512, width), 4
    raise unsupported_shape(shape)


def conv_stack_for(image_shape: tuple[int, int, int], width: float) -> tuple[nn.Sequential, int]:
    """The image conv stack of Table 3(b) or 4(b) for ``image_shape``, and its flattened size."""
    stack, c_last, side = conv_trunk(image_shape, width)
    return stack, c_last * side * side


def make_gan(
    image_shape: tuple[int, int, int], width: float = 1.0, layout: str = "paper"
) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of Table 3 or Table 4 for ``image_shape``."""
    shape = tuple(image_shape)
    if shape == (1, 28, 28):
        return Generator28(width, layout=layout), Discriminator28(width)
    if shape == (3, 64, 64):
        return Generator64(width), Discriminator64(width)
    raise unsupported_shape(shape)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02) and zero bias."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)

"""Tests of pddlite.augment: identity at zero, exact integer shifts, the fill value, crops and flips."""

import pytest
import torch

from pddlite.augment import random_affine, random_crop_flip

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_no_shift_no_rotation_is_the_identity():
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    out = random_affine(x, torch.Generator().manual_seed(0), max_shift=0.0, max_degrees=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_a_whole_pixel_shift_moves_the_image_and_fills_with_background(monkeypatch):
    x = torch.full((1, 1, 8, 8), -1.0)
    x[0, 0, 3, 3] = 1.0
    # force u = (angle 0, dx +1, dy 0): torch.rand returns 0.5, 1.0, 0.5 -> u = 0, 1, 0
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([[0.5, 1.0, 0.5]]))
    out = random_affine(x, torch.Generator(), max_shift=1.0, max_degrees=10.0)
    # sampling at x + 1: the bright pixel moves one column left, the new right column is background
    assert out[0, 0, 3, 2] == pytest.approx(1.0, abs=1e-5)
    assert out[0, 0, 3, 3] == pytest.approx(-1.0, abs=1e-5)
    assert torch.allclose(out[0, 0, :, -1], torch.full((8,), -1.0), atol=1e-5)


def test_views_differ_per_image_and_repeat_with_the_seed():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    a = random_affine(x, torch.Generator().manual_seed(1))
    b = random_affine(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, x) and a.min() >= -1.0 - 1e-5 and a.max() <= 1.0 + 1e-5


def test_crop_flip_without_padding_is_the_image_or_its_mirror():
    x = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    mirrored = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((mirrored | same).all()) and 0 < int(mirrored.sum()) < 16


def test_crop_is_an_exact_whole_pixel_shift_with_background_fill(monkeypatch):
    x = torch.full((1, 1, 6, 6), -1.0)
    x[0, 0, 2, 3] = 1.0
    # offsets (row 0, col 2) with pad 1: the crop starts one row above and one column right
    monkeypatch.setattr(torch, "randint", lambda *a, **k: torch.tensor([[0, 2]]))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([0.9]))  # no flip
    out = random_crop_flip(x, torch.Generator(), pad=1)
    assert out.shape == x.shape
    assert out[0, 0, 3, 2] == 1.0 and int((out == 1.0).sum()) == 1
    assert torch.equal(out[0, 0, 0], torch.full((6,), -1.0))  # the padded row above

"""The two margin-term strategies of the tune-up: the losses they compute and the optimiser each steps."""

import contextlib

import pytest
import torch
from torch import nn

from pddlite import PDDLiteError
from pddlite.embedding import normalize
from pddlite.losses import margin_loss, reference_inter_loss, reference_intra_loss
from pddlite.margins import Eq56Terms, NotebookTerms, margin_terms


class Features(nn.Module):
    """A stand-in discriminator: features() is a BatchNorm'd linear map, so train and eval mode differ."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.body[1].running_mean.fill_(0.5)

    def features(self, x):
        return self.body(x)


def no_autocast():
    return contextlib.nullcontext()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 4, generator=g), torch.arange(3).repeat_interleave(4)


def test_eq56_is_the_paper_loss_on_eval_mode_normalised_features(data):
    x, y = data
    net = Features()
    loss, name = Eq56Terms(beta=2.0, q_intra=0.4, q_inter=0.3, normalization="center-l2").loss(net, x, y, 0, no_autocast)
    net.eval()
    raw = net.features(x)
    want = margin_loss(normalize(raw, "center-l2", raw.mean(dim=0)), y, 2.0, 0.4, 0.3)
    assert name == "margin" and torch.allclose(loss, want)
    assert net.training is False  # the mode the caller had set is restored


def test_the_notebook_terms_alternate_by_epoch_in_train_mode(data):
    x, y = data
    net = Features()
    terms = NotebookTerms()
    even, name_even = terms.loss(net, x, y, 0, no_autocast)
    odd, name_odd = terms.loss(net, x, y, 1, no_autocast)
    z = net.features(x)  # train mode, as the notebook embeds its prototypes
    assert (name_even, name_odd) == ("intra", "inter")
    assert torch.allclose(even, reference_intra_loss(z, y)) and torch.allclose(odd, reference_inter_loss(z, y))
    assert (terms.generator_lr_factor, terms.fake_factor) == (2.0, 2)


def test_each_strategy_makes_the_optimisers_its_loss_names():
    params = [nn.Parameter(torch.zeros(2))]
    eq56 = Eq56Terms().optimizers(params, lr=2e-3, margin_lr=2e-4, betas=(0.5, 0.999))
    assert list(eq56) == ["margin"] and eq56["margin"].param_groups[0]["lr"] == 2e-4
    notebook = NotebookTerms().optimizers(params, lr=2e-4, margin_lr=1.0, betas=(0.5, 0.999))
    assert {k: o.param_groups[0]["lr"] for k, o in notebook.items()} == pytest.approx({"intra": 2e-6, "inter": 2e-7})


def test_names_choose_a_strategy_and_unknown_names_are_errors():
    assert isinstance(margin_terms("eq56", beta=1.0), Eq56Terms) and margin_terms("eq56", beta=1.0).beta == 1.0
    assert isinstance(margin_terms("reference"), NotebookTerms)
    with pytest.raises(PDDLiteError, match="unknown margin terms 'papr'"):
        margin_terms("papr")

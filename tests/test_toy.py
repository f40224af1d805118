"""pddlite.toy: the 2-D margin-loss toy descends the library's own losses, and measures Eq. 4 against Eq. 5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pddlite import PDDLiteError, toy
from pddlite.losses import diameter_loss, margin_loss
from pddlite.nets import Discriminator28, init_weights


@pytest.fixture
def points():
    return toy.make_toy_prototypes(n_classes=3, shots=5, seed=0)


def test_make_toy_prototypes_shapes_and_determinism():
    p, y = toy.make_toy_prototypes(n_classes=4, shots=3, seed=1)
    assert p.shape == (12, 2) and p.dtype == torch.float32
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    p2, _ = toy.make_toy_prototypes(n_classes=4, shots=3, seed=1)
    assert torch.equal(p, p2)
    with pytest.raises(PDDLiteError):
        toy.make_toy_prototypes(n_classes=1)


def test_loss_function_uses_the_library_losses(points):
    p, y = points
    assert torch.isclose(toy.loss_function("margin", beta=2.0)(p, y), margin_loss(p, y, beta=2.0))
    assert toy.loss_function("diameter")(p, y) == diameter_loss(p, y)
    assert set(toy.LOSSES) == {"margin", "intra", "inter", "diameter", "margin_eq4"}
    with pytest.raises(PDDLiteError):
        toy.loss_function("triplet")


def test_separation_on_a_known_configuration():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    s = toy.separation(z, y)
    assert s["diameter"] == pytest.approx(3.0)  # 1 + 2
    assert s["mean_intra"] == pytest.approx(1.5)
    inter = [10.0, np.hypot(10, 2), 9.0, np.hypot(9, 2)]
    assert s["mean_inter"] == pytest.approx(np.mean(inter), rel=1e-5)
    assert s["ratio"] == pytest.approx(1.5 / np.mean(inter), rel=1e-5)


def test_gradient_matches_one_descent_step(points):
    p, y = points
    g = toy.gradient(p, y, "intra")
    run = toy.descend(p, y, "intra", steps=1, lr=0.1)
    np.testing.assert_allclose(run.trajectory[1], (p - 0.1 * g).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run.initial_gradient, g.numpy())


def test_descend_records_every_step(points):
    p, y = points
    run = toy.descend(p, y, "margin", steps=7, lr=0.01)
    assert run.trajectory.shape == (8, len(p), 2)
    assert len(run.losses) == 8
    assert all(len(v) == 8 for v in run.metrics.values())
    assert np.allclose(run.trajectory[0], p.numpy())
    assert run.metrics["diameter"][0] == pytest.approx(float(diameter_loss(p, y)), rel=1e-6)
    # the input is not modified
    assert torch.equal(p, toy.make_toy_prototypes(n_classes=3, shots=5, seed=0)[0])


def test_descend_with_zero_steps_still_gives_the_gradient(points):
    p, y = points
    run = toy.descend(p, y, "inter", steps=0)
    assert run.trajectory.shape == (1, len(p), 2)
    assert run.initial_gradient is not None and run.initial_gradient.shape == (len(p), 2)


def test_intra_loss_shrinks_classes_and_inter_loss_spreads_them(points):
    p, y = points
    intra = toy.descend(p, y, "intra", steps=30, lr=0.02)
    assert intra.metrics["mean_intra"][-1] < intra.metrics["mean_intra"][0]
    inter = toy.descend(p, y, "inter", steps=30, lr=0.02)
    assert inter.metrics["mean_inter"][-1] > inter.metrics["mean_inter"][0]


def test_diameter_gradient_touches_one_pair_per_class(points):
    p, y = points
    g = toy.gradient(p, y, "diameter")
    moved = (g.abs().sum(dim=1) > 0).nonzero().flatten()
    assert len(moved) == 2 * 3  # the two ends of each class's longest pair
    g5 = toy.gradient(p, y, "intra")
    assert int((g5.abs().sum(dim=1) > 0).sum()) > len(moved)


def test_normalized_steps_have_fixed_length(points):
    p, y = points
    run = toy.descend(p, y, "intra", steps=3, lr=0.05, normalize_step=True)
    for a, b in zip(run.trajectory[:-1], run.trajectory[1:]):
        assert np.linalg.norm(b - a) == pytest.approx(0.05, rel=1e-5)


def test_compare_descent_and_table(points):
    p, y = points
    runs = toy.compare_descent(p, y, steps=60, lr=0.02)
    assert list(runs) == ["diameter", "intra"]
    rows = toy.descent_table(runs, "diameter", fractions=(0.9, 0.5))
    assert [r["loss"] for r in rows] == ["diameter", "intra"]
    assert set(rows[0]) == {"loss", "diameter at start", "diameter at end", "steps to 90%", "steps to 50%"}
    assert rows[0]["diameter at start"] == rows[1]["diameter at start"]
    # the paper's claim, on this toy with plain gradient descent: Eq. 5 gets there in fewer steps
    assert rows[1]["steps to 50%"] is not None
    assert rows[0]["steps to 50%"] is None or rows[1]["steps to 50%"] < rows[0]["steps to 50%"]


def test_steps_to_none_when_never_reached(points):
    p, y = points
    run = toy.descend(p, y, "inter", steps=3, lr=0.01)
    assert run.steps_to(0.01, "diameter") is None
    assert run.steps_to(1.0, "diameter") == 0


def test_descend_refuses_bad_arguments(points):
    p, y = points
    with pytest.raises(PDDLiteError):
        toy.descend(p, y, steps=-1)
    with pytest.raises(PDDLiteError):
        toy.descend(p, y, lr=0.0)


def test_compare_descent_network_leaves_the_network_alone(torch_single_thread):
    torch.manual_seed(0)
    net = Discriminator28(width=0.125)
    net.apply(init_weights)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = torch.rand(12, 1, 28, 28) * 2 - 1
    labels = torch.arange(3).repeat_interleave(4)
    runs = toy.compare_descent_network(net, images, labels, losses=("margin_eq4", "margin"), steps=3)
    assert list(runs) == ["margin_eq4", "margin"]
    for run in runs.values():
        assert len(run.losses) == 4 and len(run.metrics["ratio"]) == 4
        assert run.trajectory is None
        assert run.losses[0] > 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    # both runs start from the same embedding
    assert runs["margin"].metrics["ratio"][0] == pytest.approx(runs["margin_eq4"].metrics["ratio"][0])
    # the weights did move
    assert runs["margin"].metrics["ratio"][-1] != runs["margin"].metrics["ratio"][0]
    with pytest.raises(PDDLiteError):
        toy.compare_descent_network(net, images, labels, optimizer="rmsprop")


def test_unit_points_stay_on_the_unit_circle():
    p, y = toy.make_toy_prototypes(n_classes=3, shots=4, seed=0, unit=True)
    np.testing.assert_allclose(p.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    run = toy.descend(p, y, "margin", steps=5, lr=0.1, unit=True)
    np.testing.assert_allclose(np.linalg.norm(run.trajectory, axis=2), 1.0, rtol=1e-5)
    runs = toy.compare_descent(p, y, steps=3, lr=0.1, unit=True)
    for r in runs.values():
        np.testing.assert_allclose(np.linalg.norm(r.trajectory, axis=2), 1.0, rtol=1e-5)


def test_ib_terms_on_a_known_configuration():
    z = torch.tensor([[0.0, 0.0], [0.0, 2.0], [3.0, 0.0], [3.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    t = toy.ib_terms(z, y, sigma=1.0, sigma_hat=1.0)
    # every point is 1 from its own mean (0, 1) or (3, 1) and sqrt(10) from the other
    assert t["relevance"] == pytest.approx(float(torch.log_softmax(torch.tensor([-0.5, -5.0]), 0)[0]), rel=1e-5)
    squared = [4.0, 9.0, 13.0, 13.0, 9.0, 4.0]
    assert t["compression"] == pytest.approx(-np.mean(squared) / 2, rel=1e-5)
    # pulling each point towards its class mean raises the relevance and lowers the compression term's
    # distances, so I(X;Z) rises: the two terms disagree on same-class pairs
    line = torch.tensor([[0.0, 0.0], [2.0, 0.0], [3.0, 0.0], [5.0, 0.0]])
    means = torch.tensor([[1.0, 0.0], [4.0, 0.0]])[y]
    wide, tight = toy.ib_terms(line, y), toy.ib_terms(line + 0.5 * (means - line), y)
    assert tight["relevance"] > wide["relevance"] and tight["compression"] > wide["compression"]
    assert tight["compression_same"] > wide["compression_same"]
    for terms in (t, wide, tight):
        assert terms["compression_same"] + terms["compression_different"] == pytest.approx(terms["compression"])


def test_thresholds_are_pooled_over_classes():
    # class 0 is tight (pair distance 1), class 1 wide (pair distances 4, 4, 8)
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [20.0, 0.0], [24.0, 0.0], [28.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    t = toy.thresholds(z, y, q_intra=0.5, q_inter=0.25)
    assert t["intra_pairs"] == 4 and t["R_intra"] == pytest.approx(4.0)
    assert t["intra_above"] == 1 and t["above_per_class"] == {0: (0, 1), 1: (1, 3)}
    inter = np.array([20.0, 24.0, 28.0, 19.0, 23.0, 27.0])
    assert t["inter_pairs"] == 6 and t["R_inter"] == pytest.approx(np.quantile(inter, 0.25))
    assert t["inter_below"] == int((inter < np.quantile(inter, 0.25)).sum())
    # q_intra = 0: every same-class pair but the shortest is a term of Eq. 5
    assert toy.thresholds(z, y, q_intra=0.0)["intra_above"] == 3

"""pddlite.plots: every figure function returns a Figure, draws what it says, and refuses bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from pddlite import PDDLiteError, plots
from pddlite.toy import descend, make_toy_prototypes


def _render(fig: Figure) -> None:
    """Render to PNG: catches layout errors that only show when drawing."""
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _images(n: int, c: int = 1, side: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_tile_images_places_each_image_and_maps_to_unit_range():
    x = torch.full((3, 1, 4, 4), -1.0)
    x[1] = 1.0
    tiles = plots.tile_images(x, ncols=2, pad=1)
    assert tiles.shape == (2 * 5 + 1, 2 * 5 + 1)
    assert tiles[1:5, 1:5].max() == 0.0  # image 0: -1 -> 0 (black)
    assert tiles[1:5, 6:10].min() == 1.0  # image 1: +1 -> 1 (white)
    assert (tiles[6:10, 6:10] == 1.0).all()  # the empty fourth cell stays white


def test_tile_images_colour_is_channels_last():
    tiles = plots.tile_images(_images(4, c=3, side=8), ncols=4)
    assert tiles.ndim == 3 and tiles.shape[2] == 3
    assert 0.0 <= tiles.min() and tiles.max() <= 1.0


def test_tile_images_refuses_bad_shapes():
    with pytest.raises(PDDLiteError):
        plots.tile_images(np.zeros((2, 5, 8, 8)), ncols=2)
    with pytest.raises(PDDLiteError):
        plots.tile_images(np.zeros((2, 1, 8, 8)), ncols=0)


def test_image_grid_and_class_grid(mnist5k_task):
    fig = plots.image_grid(_images(12), ncols=5, title="t")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "t"
    _render(fig)
    t = mnist5k_task
    fig = plots.class_grid(t.test_images, t.test_labels, per_class=4, class_names=t.class_names,
                           anomaly_classes=t.anomaly_classes)
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert len(labels) == 10 and labels[1] == "1 (anomaly)"
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.image_grid(torch.empty(0, 1, 28, 28))


def test_class_grid_pads_short_classes():
    x, y = _images(3), torch.tensor([0, 0, 1])
    fig = plots.class_grid(x, y, per_class=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "1"]
    with pytest.raises(PDDLiteError):
        plots.class_grid(x, torch.tensor([0, 1]))


def test_prototype_grid_one_row_per_normal_class(mnist5k_task):
    fig = plots.prototype_grid(mnist5k_task, per_class=5)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows == [str(c) for c in mnist5k_task.normal_classes]
    assert "9-way 20-shot" in fig.axes[0].get_title()


def test_reconstruction_grid_two_rows_and_divider():
    a, b = _images(6), _images(6, seed=1)
    fig = plots.reconstruction_grid(a, b, split=3, group_titles=("normal: 0", "anomaly: 1"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["original", "reconstruction"]
    assert len(ax.lines) == 1  # the divider
    assert {t.get_text() for t in ax.texts} == {"normal: 0", "anomaly: 1"}
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.reconstruction_grid(a, b[:5])
    with pytest.raises(PDDLiteError):
        plots.reconstruction_grid(a, b, split=6)


def test_score_boxplot_per_class_and_two_groups():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    scores = rng.normal(size=100) + (labels == 2) * 3
    fig = plots.score_boxplot(scores, labels, anomaly_classes=[2])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    faces = [p.get_facecolor() for p in ax.patches]
    assert faces[2] != faces[0]  # the anomaly box is coloured differently
    fig = plots.score_boxplot(scores, labels, anomaly_classes=[2], per_class=False)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["normal", "anomaly"]
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.score_boxplot(scores, labels, per_class=False)  # no anomaly class given
    with pytest.raises(PDDLiteError):
        plots.score_boxplot(scores[:5], labels)


def test_score_histograms_one_panel_per_class():
    labels = np.repeat(np.arange(7), 10)
    scores = np.arange(70, dtype=float)
    fig = plots.score_histograms(scores, labels, anomaly_classes=[3], ncols=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 7
    assert visible[3].get_title() == "3 (anomaly)"
    assert [ax.get_ylabel() for ax in visible] == ["count", "", "", "", "count", "", ""]  # the first column
    _render(fig)
    # constant scores must not break the bins
    _render(plots.score_histograms(np.zeros(20), np.repeat([0, 1], 10)))


def test_roc_pr_curves_report_the_areas():
    y = np.array([0, 0, 0, 1, 1])
    fig = plots.roc_pr_curves(y, {"perfect": y.astype(float), "inverted": -y.astype(float)})
    roc_ax, pr_ax = fig.axes
    texts = [t.get_text() for t in roc_ax.get_legend().get_texts()]
    assert texts == ["perfect (AUROC 1.000)", "inverted (AUROC 0.000)"]
    assert "AUPRC 1.000" in pr_ax.get_legend().get_texts()[0].get_text()
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.roc_pr_curves(np.zeros(5), {"s": np.arange(5)})
    with pytest.raises(PDDLiteError):
        plots.roc_pr_curves(y, {"s": np.arange(4)})


def test_loss_curves_from_pdd_history_and_trainer_history():
    history = {
        "pretrain": [{"epoch": 1, "loss_d": 1.3, "loss_g": 0.7}, {"epoch": 2, "loss_d": 1.2, "loss_g": 0.8}],
        "tuneup": [{"epoch": 1, "loss_d": 1.1, "loss_g": 0.9, "loss_margin": 50.0}],
    }
    fig = plots.loss_curves(history)
    adversarial, margin = fig.axes
    d_lines = [line for line in adversarial.get_lines() if line.get_label() == "discriminator loss"]
    assert [list(line.get_xdata()) for line in d_lines] == [[1, 2], [3]]  # stages follow each other
    assert list(margin.get_lines()[0].get_xdata()) == [3]
    assert margin.get_xlim() == adversarial.get_xlim()  # one epoch axis for both panels
    _render(fig)
    fig = plots.loss_curves([{"epoch": 1, "loss_d": 1.0, "loss_ge": 2.0}])
    assert len(fig.axes) == 1
    with pytest.raises(PDDLiteError):
        plots.loss_curves({"pretrain": []})


def test_project_2d_pca_passthrough_and_errors():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 6))
    z[:, 0] *= 10  # the first principal direction
    low = plots.project_2d(z, method="pca")
    assert low.shape == (50, 2)
    assert np.var(low[:, 0]) > np.var(low[:, 1])
    two = rng.normal(size=(5, 2))
    np.testing.assert_array_equal(plots.project_2d(two), two)
    with pytest.raises(PDDLiteError):
        plots.project_2d(z, method="tsne")
    with pytest.raises(PDDLiteError):
        plots.project_2d(z[0])


def test_embedding_map_marks_prototypes_black_plus():
    rng = np.random.default_rng(0)
    z, labels = rng.normal(size=(40, 5)), np.repeat([0, 1, 2, 3], 10)
    protos = rng.normal(size=(6, 5))
    fig = plots.embedding_map(z, labels, protos, anomaly_classes=[1], method="pca",
                              class_names=[str(i) for i in range(4)])
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ["0", "1 (anomaly)", "2", "3", "prototypes"]
    proto_points = ax.collections[-1]
    assert proto_points.get_offsets().shape == (6, 2)
    assert tuple(proto_points.get_facecolor()[0][:3]) == (0.0, 0.0, 0.0)
    test_2d, proto_2d = fig.coords
    assert test_2d.shape == (40, 2) and proto_2d.shape == (6, 2)
    # reuse the coordinates: no projection at all
    again = plots.embedding_map(None, labels, coords=fig.coords)
    np.testing.assert_array_equal(again.axes[0].collections[0].get_offsets(), test_2d[labels == 0])
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.embedding_map(z, labels[:10], method="pca")


def test_embedding_map_umap_runs():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 0.1, size=(30, 8)), rng.normal(3, 0.1, size=(30, 8))])
    fig = plots.embedding_map(z, np.repeat([0, 1], 30), z[:4], method="umap")
    test_2d, proto_2d = fig.coords
    assert test_2d.shape == (60, 2) and proto_2d.shape == (4, 2)
    assert np.isfinite(test_2d).all()


def test_sweep_plot_draws_both_stages():
    rows = [{"param": "beta", "value": v, "auroc": 0.5 + v / 10, "auprc": 0.2, "pretrain_auroc": 0.5,
             "pretrain_auprc": 0.1} for v in (0, 1, 3)]
    fig = plots.sweep_plot(rows, "beta", default=3)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["AUROC after the tune-up", "AUROC after pre-training",
                                                     "AUPRC after the tune-up", "AUPRC after pre-training",
                                                     "default (3)"]
    np.testing.assert_allclose(lines[0].get_ydata(), [0.5, 0.6, 0.8])
    np.testing.assert_allclose(lines[-1].get_xdata(), [3, 3])  # the default's vertical line
    assert fig.axes[0].get_ylabel() == "AUROC / AUPRC"
    assert plots.sweep_plot(rows, "beta", default=10).axes[0].get_lines()[-1].get_xdata()[0] == 10  # off the grid
    named = [{"param": "v", "value": v, "auroc": 0.5} for v in "ab"]
    assert plots.sweep_plot(named, default="b").axes[0].get_lines()[-1].get_xdata()[0] == 1
    with pytest.raises(PDDLiteError, match="not one of the swept values"):
        plots.sweep_plot(named, default="c")
    _render(plots.sweep_plot([{"param": "v", "value": "a", "auroc": 0.5}, {"param": "v", "value": "b", "auroc": 0.6}]))
    with pytest.raises(PDDLiteError):
        plots.sweep_plot(rows, "q_intra")


def test_toy_figure_and_descent_curves():
    p, y = make_toy_prototypes(n_classes=3, shots=4)
    run = descend(p, y, "margin", steps=5)
    fig = plots.toy_figure(run)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(p)  # one path per point
    assert len(ax.collections) == 2 * 3 + 1  # start and end per class, and the arrows
    _render(fig)
    fig = plots.descent_curves({"a": run, "b": descend(p, y, "intra", steps=5)}, metric="ratio", log_y=True)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["a", "b"]
    with pytest.raises(PDDLiteError):
        plots.descent_curves({})


def test_toy_figure_arrows_on_the_unit_circle_end_on_it():
    # the arrows of a run on the unit circle end where the projected step puts each point: on the circle
    p, y = make_toy_prototypes(n_classes=3, shots=6, seed=0, unit=True)
    fig = plots.toy_figure(descend(p, y, "intra", steps=0, unit=True))
    arrows = fig.axes[0].collections[-1]
    tips = np.column_stack([arrows.X + arrows.U, arrows.Y + arrows.V])
    np.testing.assert_allclose(np.linalg.norm(tips, axis=1), 1.0, atol=1e-6)
    assert np.abs(arrows.U).max() > 0.05  # the arrows are drawn, not shrunk to nothing
    assert len(fig.axes[0].patches) == 1  # the circle itself
    _render(fig)


def test_descent_curves_draw_relative_change_on_an_axis_from_zero():
    class Run:
        def __init__(self, values):
            self.metrics = {"diameter": values}

    # a fall of 1%: drawn as 100 -> 99 on an axis from 0, not as a slope filling the panel
    fig = plots.descent_curves({"a": Run([14.99, 14.9, 14.84])})
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [100.0, 100 * 14.9 / 14.99, 100 * 14.84 / 14.99])
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] >= 100.0
    raw = plots.descent_curves({"a": Run([14.99, 14.9, 14.84])}, relative=False).axes[0]
    np.testing.assert_allclose(raw.get_lines()[0].get_ydata(), [14.99, 14.9, 14.84])
    with pytest.raises(PDDLiteError):
        plots.descent_curves({"a": Run([0.0, 1.0])})


def test_figures_do_not_touch_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.image_grid(_images(4))
    plots.score_boxplot(np.arange(10.0), np.repeat([0, 1], 5), anomaly_classes=[1])
    assert plt.get_fignums() == before


def test_draws_into_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.score_boxplot(np.arange(10.0), np.repeat([0, 1], 5), ax=ax)
    assert out is fig


def test_loss_curves_never_join_stages_and_label_each_loss_once():
    history = {"pretrain": [{"epoch": 1, "loss_d": 1.0, "loss_g": 0.5}],
               "tuneup": [{"epoch": 1, "loss_d": 0.9, "loss_g": 0.6, "loss_margin": 3.0},
                          {"epoch": 2, "loss_d": 0.8, "loss_g": 0.7, "loss_margin": 2.0}]}
    fig = plots.loss_curves(history)
    adversarial = fig.axes[0]
    d_lines = [line for line in adversarial.get_lines() if line.get_label() == "discriminator loss"]
    assert [list(line.get_xdata()) for line in d_lines] == [[1], [2, 3]]
    # legends and stages in words, not the history's keys
    assert [t.get_text() for t in adversarial.get_legend().get_texts()] == ["discriminator loss", "generator loss"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["margin loss (Eqs. 5-6)"]
    assert {t.get_text() for t in adversarial.texts} == {"pre-training", "tune-up"}


def test_metric_bars_one_group_per_row():
    rows = [{"label": "paper", "auroc": 0.9, "auprc": 0.5}, {"label": "a much longer name " * 5, "auroc": 0.8, "auprc": 0.4},
            {"label": "no metrics"}]
    fig = plots.metric_bars(rows)
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # two rows with both metrics; the third is skipped
    assert ax.get_yticklabels()[0].get_text() == "paper"
    assert "\n" in ax.get_yticklabels()[1].get_text()  # long names are wrapped
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["AUROC of a random score", "AUROC", "AUPRC"]
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [0.5]  # AUROC's chance line
    _render(fig)
    assert not plots.metric_bars(rows, metrics=("auprc",)).axes[0].get_lines()  # no AUROC, no AUROC chance line
    with pytest.raises(PDDLiteError):
        plots.metric_bars([{"label": "x"}])


def test_stage_histograms_one_panel_per_model_normal_and_anomaly_counted():
    y = np.array([0] * 8 + [1] * 2, dtype=bool)
    fig = plots.stage_histograms({"pre-trained": np.arange(10.0), "tuned": -np.arange(10.0)}, y)
    assert [ax.get_title() for ax in fig.axes] == ["pre-trained", "tuned"]
    assert fig.axes[0].get_ylabel() == "count"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["normal (8)", "anomaly (2)"]
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == 10  # every image counted once
    _render(fig)
    _render(plots.stage_histograms({"constant": np.zeros(10)}, y))
    with pytest.raises(PDDLiteError):
        plots.stage_histograms({"s": np.arange(9.0)}, y)
    with pytest.raises(PDDLiteError):
        plots.stage_histograms({"s": np.arange(10.0)}, np.zeros(10))


def test_metric_curves_one_line_per_run_per_metric():
    rows = [{"epoch": 0, "auroc": 0.6, "auprc": 0.2}, {"epoch": 1, "auroc": 0.7, "auprc": 0.3}]
    fig = plots.metric_curves({"tune-up": rows, "adversarial steps only": rows[:1]})
    auroc_ax, auprc_ax = fig.axes
    assert auroc_ax.get_ylabel() == "AUROC" and auprc_ax.get_ylabel() == "AUPRC"
    assert list(auroc_ax.get_lines()[0].get_ydata()) == [0.6, 0.7]
    assert [t.get_text() for t in auprc_ax.get_legend().get_texts()] == ["tune-up", "adversarial steps only"]
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.metric_curves({})


def test_pair_distance_histograms_mark_the_quantiles_of_eqs_5_6():
    z = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    fig = plots.pair_distance_histograms({"before": (z, y), "after": (z * 2, y)}, q_intra=0.5, q_inter=0.25)
    before = fig.axes[0]
    # within-class distances 1 and 2 (median 1.5); between-class sqrt(9), sqrt(10), sqrt(9+4)... lowest quartile
    between = np.sort([3.0, np.hypot(3, 1), np.hypot(3, 2), np.hypot(3, 1)])
    texts = [t.get_text() for t in before.get_legend().get_texts()]
    assert texts[2] == "R_intra = 1.50" and texts[3] == f"R_inter = {np.quantile(between, 0.25):.2f}"
    assert fig.axes[1].get_legend().get_texts()[2].get_text() == "R_intra = 3.00"
    assert before.get_ylabel().startswith("count")
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.pair_distance_histograms({"one class": (z, torch.zeros(4, dtype=torch.long))})


def test_error_grid_puts_each_image_beside_its_neighbours():
    fig = plots.error_grid(_images(3), torch.stack([_images(2, seed=s) for s in range(3)]),
                           row_labels=["a", "b", "c"], neighbour_labels=[["1", "2"]] * 3, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_images()[0].get_array().shape[1] == 3 * 30 + 2  # image + 2 neighbours per row
    assert [t.get_text() for t in ax.get_xticklabels()] == ["image", "nearest prototypes"]
    _render(fig)
    with pytest.raises(PDDLiteError):
        plots.error_grid(_images(3), _images(2))


def test_sphere_vs_classes_draws_two_maps_with_the_anomalies():
    from pddlite.intro import between_classes_toy

    fig = plots.sphere_vs_classes(between_classes_toy(per_class=10), steps=21)
    left, right = fig.axes[:2]
    assert "sphere" in left.get_title() and "Eq. 7" in right.get_title()
    assert "anomaly" in [t.get_text() for t in fig.legends[0].get_texts()]
    _render(fig)


def test_mistakes_grid_labels_each_image_and_its_nearest_prototypes(mnist5k_task):
    t = mnist5k_task
    scores = np.zeros(len(t.test_images))
    scores[[5, 9]] = [2.0, 1.0]
    fig = plots.mistakes_grid(t, scores, [5, 9], t.test_images, t.prototype_images, k=2, class_word="digit")
    ax = fig.axes[0]
    rows = [tick.get_text() for tick in ax.get_yticklabels()]
    assert rows == [f"digit {int(t.test_labels[5])}, score 2.00", f"digit {int(t.test_labels[9])}, score 1.00"]
    from pddlite.error_analysis import nearest_prototypes

    near, _ = nearest_prototypes(t.test_images[[5]], t.prototype_images, 2)
    want = [str(int(t.prototype_labels[j])) for j in near[0]]
    assert [x.get_text() for x in ax.texts][:2] == want
    _render(fig)


def test_rank_scale_spreads_scores_that_crowd_at_one_end():
    # 99 scores within 1e-2 of each other and one far outlier, as Eq. 7's scores with a narrow kernel:
    # on the value axis the 99 share one bin; on the rank axis they spread over the bins.
    scores = np.concatenate([[-8.0], 0.88 - 1e-4 * np.arange(99)])
    y = np.zeros(100, dtype=bool)
    y[:10] = True
    value = plots.stage_histograms({"m": scores}, y, bins=20)
    rank = plots.stage_histograms({"m": scores}, y, bins=20, scale="rank")
    assert max(p.get_height() for p in value.axes[0].patches) >= 90
    assert max(p.get_height() for p in rank.axes[0].patches) <= 10
    lo, hi = rank.axes[0].patches[0].get_x(), rank.axes[0].patches[-1].get_x() + rank.axes[0].patches[-1].get_width()
    assert (lo, hi) == pytest.approx((0.0, 1.0))  # ranks as fractions: 0 most normal, 1 most anomalous
    fig = plots.score_histograms(scores, np.repeat(np.arange(5), 20), scale="rank")
    assert sum(p.get_height() for ax in fig.axes for p in ax.patches) == 100
    with pytest.raises(PDDLiteError, match="'value' or 'rank'"):
        plots.score_histograms(scores, np.repeat(np.arange(5), 20), scale="log")


def test_rank_fraction_orders_as_the_scores_and_shares_ties():
    assert plots._rank_fraction(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert plots._rank_fraction(np.array([1.0, 1.0, 5.0])).tolist() == [0.25, 0.25, 1.0]

"""Figures for the notebooks: image grids, score distributions, loss curves, embedding maps.

Every function returns a :class:`matplotlib.figure.Figure` (matplotlib only, no seaborn). Figures
are built with :class:`~matplotlib.figure.Figure` rather than ``pyplot``, so a notebook shows each
exactly once (as the value of its cell) and nothing accumulates in pyplot's registry. Pass
``ax=`` where offered to draw into an axes of your own instead; the axes' figure is returned.

What draws what in the paper:

* :func:`reconstruction_grid`: originals over reconstructions (Fig. 1).
* :func:`score_boxplot`: anomaly-score distributions, normal against anomalous or per class (Fig. 2).
* :func:`class_grid`, :func:`prototype_grid`: the K-shot prototypes of a task (Sec. 4, 5.1).
* :func:`loss_curves`: the training losses of pre-training and tune-up (Table 2 schedules).
* :func:`embedding_map`: 2-D UMAP maps of test embeddings, classes by colour ('x'), prototypes as
  black '+' (Figs. 12-15).
* :func:`score_histograms`: the Eq. 7 score of every test class, anomalies in red.
* :func:`roc_pr_curves`: what AUROC and AUPRC are the areas under.
* :func:`sweep_plot` and :func:`metric_bars` for the ablations. Figs. 3-11 themselves, from result
  rows, are :mod:`pddlite.report`'s.
* :func:`toy_figure`, :func:`descent_curves`: the 2-D margin-loss toy of :mod:`pddlite.toy`.
* :func:`stage_histograms`, :func:`metric_curves`: one model after pre-training, after the
  adversarial steps alone and after the tune-up (Figs. 9-11's comparison, with its control), and
  AUROC / AUPRC after every tune-up epoch (:func:`pddlite.ablation.tuneup_curve`).
* :func:`pair_distance_histograms`: the prototypes' pair distances with R_intra and R_inter of
  Eqs. 5-6 marked.
* :func:`error_grid`, :func:`mistakes_grid`: false alarms and missed anomalies beside their
  nearest prototypes (:mod:`pddlite.error_analysis`).
* :func:`sphere_vs_classes`: Sec. 1's argument, one sphere against per-class densities
  (:mod:`pddlite.intro`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator
from scipy.stats import rankdata

from .errors import PDDLiteError
from .scoring import quiet_umap

ANOMALY_COLOR = "tab:red"
NORMAL_COLOR = "tab:blue"


# --------------------------------------------------------------------------- helpers


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _class_name(c: int, class_names: Sequence[str] | None) -> str:
    if class_names and 0 <= int(c) < len(class_names) and str(class_names[int(c)]) != str(c):
        return f"{int(c)}: {class_names[int(c)]}"
    return str(int(c))


def class_colors(classes: Iterable[int]) -> dict[int, Any]:
    """A fixed colour per class index (matplotlib's ``tab10``, then ``tab20`` beyond ten)."""
    import matplotlib

    classes = sorted({int(c) for c in classes})
    cmap = matplotlib.colormaps["tab10" if (max(classes, default=0) < 10) else "tab20"]
    return {c: cmap(c % cmap.N) for c in classes}


def tile_images(images: Any, ncols: int, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile N x C x H x W images in [-1, 1] into one H' x W' (x 3) array in [0, 1], row by row.

    Empty cells at the end of the last row are left at ``pad_value`` (white).
    """
    x = _numpy(images).astype(np.float32)
    if x.ndim == 3:  # N x H x W
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise PDDLiteError(f"images must be N x C x H x W with C in (1, 3), got shape {x.shape}")
    if ncols < 1:
        raise PDDLiteError(f"ncols must be at least 1, got {ncols}")
    n, c, h, w = x.shape
    x = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    nrows = max(1, -(-n // ncols))
    canvas = np.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, top:top + h, left:left + w] = x[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def _show_tiles(ax: Axes, tiles: np.ndarray) -> None:
    if tiles.ndim == 2:
        ax.imshow(tiles, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(tiles, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


# --------------------------------------------------------------------------- image grids


def image_grid(
    images: Any,
    ncols: int = 10,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    scale: float = 0.6,
    ax: Axes | None = None,
) -> Figure:
    """Images (N x C x H x W in [-1, 1], as in a :class:`~pddlite.data.Task`) as one tiled grid.

    ``row_labels`` names the rows on the left; ``scale`` is inches per image.
    """
    x = _numpy(images)
    if len(x) == 0:
        raise PDDLiteError("no images to show")
    ncols = max(1, min(int(ncols), len(x)))
    nrows = -(-len(x) // ncols)
    tiles = tile_images(x, ncols)
    fig, ax = _new_axes(ax, (max(2.0, ncols * scale + (1.2 if row_labels else 0.0)), max(1.0, nrows * scale + 0.4)))
    _show_tiles(ax, tiles)
    if row_labels:
        h = x.shape[-2] + 2
        ax.set_yticks([2 + r * h + (h - 2) / 2 for r in range(len(row_labels))])
        ax.set_yticklabels(list(row_labels))
        ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title)
    return fig


def class_grid(
    images: Any,
    labels: Any,
    per_class: int = 10,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    anomaly_classes: Sequence[int] = (),
    title: str | None = None,
    scale: float = 0.6,
) -> Figure:
    """One row per class with its first ``per_class`` images; anomaly classes say so in their label."""
    x, y = _numpy(images), _numpy(labels).astype(np.int64)
    if len(x) != len(y):
        raise PDDLiteError(f"{len(x)} images but {len(y)} labels")
    classes = sorted(int(c) for c in (np.unique(y) if classes is None else classes))
    rows, names = [], []
    blank = np.full((1,) + x.shape[1:], 1.0, dtype=np.float32)  # white in [-1, 1]
    for c in classes:
        members = x[y == c][:per_class]
        if len(members) < per_class:
            members = np.concatenate([members] + [blank] * (per_class - len(members)))
        rows.append(members)
        names.append(_class_name(c, class_names) + (" (anomaly)" if c in set(anomaly_classes) else ""))
    if not rows:
        raise PDDLiteError("no classes to show")
    return image_grid(np.concatenate(rows), ncols=per_class, row_labels=names, title=title, scale=scale)


def prototype_grid(task: Any, per_class: int | None = None, title: str | None = None, scale: float = 0.6) -> Figure:
    """The labeled prototypes P of a task: one row per normal class (Sec. 4, "N-way K-shot")."""
    k = task.shots if per_class is None else min(int(per_class), task.shots)
    default = f"{len(task.normal_classes)}-way {task.shots}-shot prototypes (anomaly class held out: " \
              f"{', '.join(_class_name(c, task.class_names) for c in task.anomaly_classes)})"
    return class_grid(task.prototype_images, task.prototype_labels, per_class=k, classes=task.normal_classes,
                      class_names=task.class_names, title=title or default, scale=scale)


def reconstruction_grid(
    originals: Any,
    reconstructions: Any,
    split: int | None = None,
    group_titles: Sequence[str] | None = None,
    row_labels: Sequence[str] = ("original", "reconstruction"),
    title: str | None = None,
    scale: float = 0.7,
) -> Figure:
    """Fig. 1: originals in the top row, their reconstructions G(E(x)) below.

    ``split`` (an index into the images) draws a divider and lets ``group_titles`` name the two
    halves, e.g. ``("normal: 0", "anomaly: 1")``.
    """
    a, b = _numpy(originals), _numpy(reconstructions)
    if a.shape != b.shape:
        raise PDDLiteError(f"originals {a.shape} and reconstructions {b.shape} must have the same shape")
    n = len(a)
    fig = image_grid(np.concatenate([a, b]), ncols=n, row_labels=list(row_labels), title=title, scale=scale)
    ax = fig.axes[0]
    w = a.shape[-1] + 2
    if split is not None:
        if not 0 < split < n:
            raise PDDLiteError(f"split must lie strictly between 0 and {n}, got {split}")
        ax.axvline(1 + split * w, color=ANOMALY_COLOR, linewidth=2)
    if group_titles:
        edges = [0, split if split is not None else n, n]
        for i, text in enumerate(group_titles[:2]):
            centre = (edges[i] + edges[i + 1]) / 2 * w
            ax.text(centre, -3, text, ha="center", va="bottom", fontsize=10)
    return fig


# --------------------------------------------------------------------------- scores


def score_boxplot(
    scores: Any,
    labels: Any,
    anomaly_classes: Sequence[int] = (),
    class_names: Sequence[str] | None = None,
    per_class: bool = True,
    ylabel: str = "anomaly score",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Box plots of scores (Fig. 2): per test class, or ``per_class=False`` normal against anomalous.

    Anomalous boxes are red. ``labels`` are the test classes.
    """
    s, y = _numpy(scores).astype(np.float64).ravel(), _numpy(labels).astype(np.int64).ravel()
    if len(s) != len(y):
        raise PDDLiteError(f"{len(s)} scores but {len(y)} labels")
    anomalous = np.isin(y, list(anomaly_classes))
    if per_class:
        classes = sorted(np.unique(y).tolist())
        groups = [s[y == c] for c in classes]
        names = [_class_name(c, class_names) for c in classes]
        colors = [ANOMALY_COLOR if c in set(anomaly_classes) else NORMAL_COLOR for c in classes]
    else:
        if not anomalous.any() or anomalous.all():
            raise PDDLiteError("per_class=False needs both normal and anomalous scores: pass anomaly_classes")
        groups, names, colors = [s[~anomalous], s[anomalous]], ["normal", "anomaly"], [NORMAL_COLOR, ANOMALY_COLOR]
    fig, ax = _new_axes(ax, (max(3.0, 0.55 * len(groups) + 1.5), 3.2))
    box = ax.boxplot(groups, patch_artist=True, showfliers=True, widths=0.6,
                     flierprops={"markersize": 2, "alpha": 0.4})
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=45 if per_class and class_names and len(class_names[0]) > 2 else 0,
                       ha="right" if per_class and class_names and len(class_names[0]) > 2 else "center")
    for patch, color in zip(box["boxes"], colors):
        patch.set_facecolor(color)
        patch.set_alpha(0.5)
    ax.set_ylabel(ylabel)
    if per_class:
        ax.set_xlabel("test class (red: anomaly)")
    if title:
        ax.set_title(title)
    return fig


def _rank_fraction(s: np.ndarray) -> np.ndarray:
    """Each score's rank among ``s`` as a fraction: 0 the most normal, 1 the most anomalous (ties
    share their average rank). AUROC is the chance that an anomaly outranks a normal image, so on
    this axis the histograms show what AUROC reads, however unevenly the raw scores are spread."""
    if len(s) < 2:
        return np.full(len(s), 0.5)
    return (rankdata(s, method="average") - 1.0) / (len(s) - 1.0)


def _score_axis(s: np.ndarray, scale: str) -> np.ndarray:
    if scale == "value":
        return s
    if scale == "rank":
        return _rank_fraction(s)
    raise PDDLiteError(f"scale must be 'value' or 'rank', not {scale!r}")


def score_histograms(
    scores: Any,
    labels: Any,
    anomaly_classes: Sequence[int] = (),
    class_names: Sequence[str] | None = None,
    bins: int = 30,
    ncols: int = 5,
    xlabel: str = "anomaly score",
    title: str | None = None,
    scale: str = "value",
) -> Figure:
    """One histogram per test class on a shared x axis, anomaly classes in red.

    ``scale="rank"`` draws each score's rank among all the test scores (0 most normal, 1 most
    anomalous) instead of its value: the view for scores whose values crowd at one end, as Eq. 7's
    do with a narrow kernel.
    """
    s, y = _numpy(scores).astype(np.float64).ravel(), _numpy(labels).astype(np.int64).ravel()
    if len(s) != len(y):
        raise PDDLiteError(f"{len(s)} scores but {len(y)} labels")
    s = _score_axis(s, scale)
    classes = sorted(np.unique(y).tolist())
    ncols = max(1, min(ncols, len(classes)))
    nrows = -(-len(classes) // ncols)
    fig = Figure(figsize=(2.3 * ncols, 1.7 * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    lo, hi = (float(s.min()), float(s.max())) if len(s) else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for ax, c in zip(axes, classes):
        anomalous = c in set(anomaly_classes)
        ax.hist(s[y == c], bins=edges, color=ANOMALY_COLOR if anomalous else NORMAL_COLOR, alpha=0.8)
        ax.set_title(_class_name(c, class_names) + (" (anomaly)" if anomalous else ""), fontsize=9,
                     color=ANOMALY_COLOR if anomalous else "black")
        ax.tick_params(labelsize=7)
    for ax in axes[len(classes):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[::ncols]:
        ax.set_ylabel("count", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def roc_pr_curves(is_anomaly: Any, scores: Mapping[str, Any], title: str | None = None) -> Figure:
    """ROC (left) and precision-recall (right) curves of one or more scores, anomaly = positive.

    The legend gives each score's AUROC and AUPRC (average precision, as :mod:`pddlite.metrics`).
    The dotted lines are chance: the diagonal for ROC, the anomaly rate for precision.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = _numpy(is_anomaly).astype(bool).ravel()
    if y.all() or not y.any():
        raise PDDLiteError("ROC and PR curves need both normal and anomalous test images")
    if not scores:
        raise PDDLiteError("give at least one score: {name: scores}")
    fig = Figure(figsize=(8.4, 3.4), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    for name, s in scores.items():
        s = _numpy(s).astype(np.float64).ravel()
        if len(s) != len(y):
            raise PDDLiteError(f"{name}: {len(s)} scores for {len(y)} labels")
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, s):.3f})")
        pr_ax.step(recall, precision, where="post", label=f"{name} (AUPRC {average_precision_score(y, s):.3f})")
    roc_ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    pr_ax.axhline(y.mean(), color="gray", linestyle=":", linewidth=1)
    roc_ax.set_xlabel("false positive rate (normal flagged)")
    roc_ax.set_ylabel("true positive rate (anomalies caught)")
    pr_ax.set_xlabel("recall (anomalies caught)")
    pr_ax.set_ylabel("precision (flagged that are anomalies)")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "upper right")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- training


def _history_segments(history: Any) -> list[tuple[str, list[Mapping[str, float]]]]:
    if isinstance(history, Mapping):
        return [(str(k), list(v)) for k, v in history.items() if v]
    return [("", list(history))]


#: Plain-language names of the losses that trainers record (``history`` keys), for legends.
LOSS_NAMES = {
    "loss_d": "discriminator loss",
    "loss_g": "generator loss",
    "loss_ge": "generator + encoder loss",
    "loss_margin": "margin loss (Eqs. 5-6)",
    "loss_ae": "autoencoder loss",
    "loss_svdd": "distance to the centre (Deep SVDD)",
    "adv": "adversarial loss",
    "con": "reconstruction loss",
    "enc": "latent-code loss",
}

#: How metrics are named in legends and axis labels.
METRIC_NAMES = {"auroc": "AUROC", "auprc": "AUPRC"}

#: Plain-language names of training stages (``history_`` keys of a PDD).
STAGE_NAMES = {"pretrain": "pre-training", "tuneup": "tune-up"}


def loss_curves(history: Any, title: str | None = None) -> Figure:
    """Per-epoch losses: a trainer's ``history`` (list of dicts) or a PDD's ``history_`` (stage -> list).

    Adversarial losses (``loss_d``, ``loss_g``, ``loss_ge``) share the left panel; the margin loss of
    the tune-up (``loss_margin``, Eqs. 5-6), on another scale, gets a panel of its own. Stages run
    one after the other on a shared epoch axis, divided by a dashed line; a line never joins two
    stages. Legends and stage names are in words (:data:`LOSS_NAMES`, :data:`STAGE_NAMES`).
    """
    segments = [(stage, rows) for stage, rows in _history_segments(history) if rows]
    if not segments:
        raise PDDLiteError("the history is empty: train first")
    keys: list[str] = []
    for _, rows in segments:
        for row in rows:
            keys += [k for k in row if k != "epoch" and k not in keys]
    adversarial = [k for k in keys if k != "loss_margin"]
    margin = [k for k in keys if k == "loss_margin"]
    panels = [p for p in (adversarial, margin) if p]
    fig = Figure(figsize=(4.2 * len(panels), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False, sharex=True)).ravel()
    colors = {k: f"C{i}" for i, k in enumerate(keys)}
    offset = 0
    for stage, rows in segments:
        for ax, panel in zip(axes, panels):
            for k in panel:
                pts = [(offset + i + 1, float(row[k])) for i, row in enumerate(rows) if k in row]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, marker="o", markersize=3, color=colors[k], label=LOSS_NAMES.get(k, k))
            if offset > 0:
                ax.axvline(offset + 0.5, color="gray", linestyle="--", linewidth=1)
            if stage and len(segments) > 1:
                ax.text(offset + (len(rows) + 1) / 2, 0.98, STAGE_NAMES.get(stage, stage), transform=ax.get_xaxis_transform(),
                        ha="center", va="top", fontsize=8, color="gray", clip_on=True)
        offset += len(rows)
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))  # one legend entry per loss, however many stages
        ax.legend(unique.values(), unique.keys(), fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_xlim(0.5, offset + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- embedding maps


def project_2d(
    embeddings: Any,
    method: str = "umap",
    random_state: int = 0,
    n_neighbors: int = 15,
) -> np.ndarray:
    """Map N x d embeddings to N x 2: ``"umap"`` (the paper's Figs. 12-15) or ``"pca"``.

    Two-dimensional input is returned as it is. UMAP's ``random_state`` makes the map repeatable
    (and single-threaded).
    """
    z = _numpy(embeddings)
    if z.ndim != 2:
        raise PDDLiteError(f"embeddings must be an N x d matrix, got shape {z.shape}")
    if z.shape[1] == 2:
        return z.astype(np.float64)
    z = z.astype(np.float32)
    if method == "pca":
        centred = z - z.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        return centred @ vt[:2].T
    if method == "umap":
        try:
            import umap
        except ImportError as err:  # pragma: no cover - umap-learn is a dependency
            raise PDDLiteError("UMAP maps need umap-learn: pip install umap-learn (or use method='pca')") from err
        with quiet_umap():
            reducer = umap.UMAP(n_components=2, random_state=random_state,
                                n_neighbors=min(n_neighbors, len(z) - 1))
            return reducer.fit_transform(z).astype(np.float64)
    raise PDDLiteError(f"unknown projection {method!r}: use 'umap' or 'pca'")


def embedding_map(
    embeddings: Any,
    labels: Any,
    prototypes: Any = None,
    anomaly_classes: Sequence[int] = (),
    class_names: Sequence[str] | None = None,
    method: str = "umap",
    random_state: int = 0,
    coords: tuple[np.ndarray, np.ndarray | None] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Figs. 12-15: test embeddings mapped to 2-D, one colour per class ('x'), prototypes as black '+'.

    The map is fitted on the test embeddings and the prototypes together, so both lie in one
    picture. Pass precomputed ``coords=(test_2d, prototype_2d)`` to skip the projection (the
    figure's ``coords`` attribute holds the ones it drew, for reuse).
    """
    y = _numpy(labels).astype(np.int64).ravel()
    if coords is None:
        z = _numpy(embeddings)
        p = None if prototypes is None else _numpy(prototypes)
        if len(z) != len(y):
            raise PDDLiteError(f"{len(z)} embeddings but {len(y)} labels")
        both = z if p is None else np.concatenate([z, p])
        low = project_2d(both, method=method, random_state=random_state)
        coords = (low[: len(z)], None if p is None else low[len(z):])
    test_2d, proto_2d = coords
    if len(test_2d) != len(y):
        raise PDDLiteError(f"{len(test_2d)} points but {len(y)} labels")
    fig, ax = _new_axes(ax, (5.6, 4.6))
    colors = class_colors(y)
    anomalies = set(int(c) for c in anomaly_classes)
    for c in sorted(colors):
        pts = test_2d[y == c]
        name = _class_name(c, class_names) + (" (anomaly)" if c in anomalies else "")
        ax.scatter(pts[:, 0], pts[:, 1], marker="x", s=9 if c not in anomalies else 14, linewidths=0.7,
                   color=colors[c], alpha=0.75, label=name)
    if proto_2d is not None:
        ax.scatter(proto_2d[:, 0], proto_2d[:, 1], marker="+", s=45, linewidths=1.0, color="black",
                   label="prototypes")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    fig.coords = coords  # type: ignore[attr-defined]
    return fig


# --------------------------------------------------------------------------- results


def sweep_plot(rows: Sequence[Mapping[str, Any]], param: str | None = None,
               metrics: Sequence[str] = ("auroc", "auprc"), title: str | None = None,
               log_x: bool = False, default: Any = None) -> Figure:
    """A metric against the swept value, for the rows of :func:`pddlite.ablation.sweep`.

    Each metric is one line; a ``pretrain_`` version of a metric, when present, is drawn dashed
    (the same prototypes scored with the embedding before the tune-up). ``default`` is marked with
    a dotted vertical line: the setting every other figure uses (for values that are not numbers,
    it must be one of them).
    """
    rows = [r for r in rows if param is None or r.get("param") == param]
    if not rows:
        raise PDDLiteError(f"no rows for parameter {param!r}")
    param = param or str(rows[0].get("param", "value"))
    values = [r["value"] for r in rows]
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
    if default is not None and not numeric and default not in values:
        raise PDDLiteError(f"default {default!r} is not one of the swept values {values}")
    pos = values if numeric else list(range(len(values)))
    fig, ax = _new_axes(None, (4.4, 3.0))
    drawn = []
    for k, m in enumerate(metrics):
        color, name = f"C{k}", METRIC_NAMES.get(m, m)
        if all(m in r for r in rows):
            ax.plot(pos, [r[m] for r in rows], marker="o", color=color, label=f"{name} after the tune-up")
            drawn.append(name)
        if all(f"pretrain_{m}" in r for r in rows):
            ax.plot(pos, [r[f"pretrain_{m}"] for r in rows], marker=".", linestyle="--", color=color,
                    alpha=0.7, label=f"{name} after pre-training")
    if default is not None:
        ax.axvline(default if numeric else values.index(default), color="0.5", linestyle=":", linewidth=1,
                   label=f"default ({default})")
    if not numeric:
        ax.set_xticks(pos)
        ax.set_xticklabels([str(v) for v in values])
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(" / ".join(drawn))
    ax.legend(fontsize=7)
    ax.set_title(title or f"sensitivity to {param}")
    return fig


def metric_bars(rows: Sequence[Mapping[str, Any]], label: str = "label",
                metrics: Sequence[str] = ("auroc", "auprc"), title: str | None = None, wrap: int = 48) -> Figure:
    """Horizontal bars, one group per row (top to bottom in the given order), one bar per metric.

    For configurations with long names, such as the steps of :func:`pddlite.ablation.variant_steps`;
    each bar is annotated with its value.
    """
    import textwrap

    rows = [r for r in rows if all(m in r for m in metrics)]
    if not rows:
        raise PDDLiteError(f"no rows carry all of {list(metrics)}")
    names = [textwrap.fill(str(r.get(label, i)), wrap) for i, r in enumerate(rows)]
    height = 0.8 / len(metrics)
    lines = sum(n.count("\n") + 1 for n in names)
    fig, ax = _new_axes(None, (7.5, 0.6 + 0.28 * lines + 0.25 * len(rows) * len(metrics)))
    for k, m in enumerate(metrics):
        pos = np.arange(len(rows)) + (k - (len(metrics) - 1) / 2) * height
        values = [float(r[m]) for r in rows]
        bars = ax.barh(pos, values, height=height * 0.9, color=f"C{k}", label=METRIC_NAMES.get(m, m))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    if "auroc" in metrics:  # a random score's AUROC; AUPRC's chance is the anomaly rate, not known here
        ax.axvline(0.5, color="C0", linestyle="--", linewidth=0.8, label="AUROC of a random score")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- the 2-D toy


def toy_figure(run: Any, show_gradient: bool = True, title: str | None = None, ax: Axes | None = None) -> Figure:
    """A :class:`pddlite.toy.DescentRun` on 2-D points: paths (thin), start (o), end (x), class colours.

    With ``show_gradient`` the arrows at the start are minus the gradient of the loss: where one
    descent step moves each point, scaled so that the longest arrow is a fixed share of the
    picture. When every point lies on the unit circle (a run with ``unit=True``) the circle is
    drawn and each arrow ends where the step, scaled back to length 1, puts the point: on the
    circle, as the projected descent moves it, never off it.
    """
    traj = _numpy(run.trajectory)
    if traj.ndim != 3 or traj.shape[2] != 2:
        raise PDDLiteError("toy_figure draws runs on free 2-D points (trajectory steps x P x 2)")
    y = _numpy(run.labels).astype(np.int64)
    colors = class_colors(y)
    fig, ax = _new_axes(ax, (4.6, 4.2))
    on_circle = bool(np.allclose(np.linalg.norm(traj, axis=2), 1.0, atol=1e-4))
    if on_circle:
        ax.add_patch(Circle((0.0, 0.0), 1.0, fill=False, color="0.8", linewidth=0.8, zorder=0))
    for p in range(traj.shape[1]):
        ax.plot(traj[:, p, 0], traj[:, p, 1], color=colors[int(y[p])], linewidth=0.7, alpha=0.6)
    for c in sorted(colors):
        m = y == c
        ax.scatter(traj[0, m, 0], traj[0, m, 1], marker="o", s=22, facecolors="none", edgecolors=colors[c])
        ax.scatter(traj[-1, m, 0], traj[-1, m, 1], marker="x", s=28, color=colors[c], label=f"class {c}")
    if show_gradient and getattr(run, "initial_gradient", None) is not None:
        start = traj[0]
        step = -_numpy(run.initial_gradient)
        span = float(np.ptp(start, axis=0).max()) or 1.0
        longest = float(np.linalg.norm(step, axis=1).max()) or 1.0
        step = step * (0.15 * span / longest)  # the longest arrow: a seventh of the picture
        if on_circle:  # where the projected step lands: back on the circle
            moved = start + step
            step = moved / np.linalg.norm(moved, axis=1, keepdims=True).clip(1e-12) - start
        ax.quiver(start[:, 0], start[:, 1], step[:, 0], step[:, 1], angles="xy", scale_units="xy", scale=1.0,
                  color="black", width=0.004, alpha=0.8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or f"{run.loss}: {len(traj) - 1} steps (o start, x end, arrows: -gradient)", fontsize=9)
    return fig


def descent_curves(runs: Mapping[str, Any], metric: str = "diameter", title: str | None = None,
                   log_y: bool = False, relative: bool = True, ax: Axes | None = None) -> Figure:
    """One line per run: a tracked quantity (``run.metrics[metric]``) against the step number.

    With ``relative`` (the default) each line is drawn as a percentage of its own start on an axis
    from 0, so a change of 1% looks like 1% and not like a trend filling the panel; ``relative=False``
    draws the values themselves, on an axis fitted to them.
    """
    if not runs:
        raise PDDLiteError("no runs to draw")
    fig, ax = _new_axes(ax, (4.6, 3.0))
    highest = 0.0
    for name, run in runs.items():
        values = np.asarray(run.metrics[metric], dtype=float)
        if relative:
            if not values[0]:
                raise PDDLiteError(f"{name}: {metric} starts at 0, so it has no relative change to draw")
            values = 100.0 * values / values[0]
        highest = max(highest, float(np.nanmax(values)))
        ax.plot(range(len(values)), values, label=name)
    ax.set_xlabel("gradient step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric}, % of its start" if relative else metric)
    if log_y:
        ax.set_yscale("log")
    elif relative:
        ax.set_ylim(0, max(110.0, 1.05 * highest))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- before / after the tune-up


def stage_histograms(scores: Mapping[str, Any], is_anomaly: Any, bins: int = 30, xlabel: str = "anomaly score",
                     title: str | None = None, scale: str = "value") -> Figure:
    """One panel per model (e.g. pre-trained, adversarial steps only, tuned: Figs. 9-11's three
    stages), each with the scores of normal test images (blue) and anomalies (red) as counts.

    Each panel has its own x axis: scores of different models are on different scales, and what
    matters is how far the red lies to the right of the blue. ``scale="rank"`` draws each score's
    rank within its own model (see :func:`score_histograms`), which puts the panels on one axis.
    """
    y = _numpy(is_anomaly).astype(bool).ravel()
    if not scores:
        raise PDDLiteError("give at least one score: {name: scores}")
    if y.all() or not y.any():
        raise PDDLiteError("the histograms need both normal and anomalous test images")
    fig = Figure(figsize=(3.0 * len(scores), 2.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(scores), squeeze=False)).ravel()
    for ax, (name, s) in zip(axes, scores.items()):
        s = _numpy(s).astype(np.float64).ravel()
        if len(s) != len(y):
            raise PDDLiteError(f"{name}: {len(s)} scores for {len(y)} labels")
        s = _score_axis(s, scale)
        lo, hi = float(s.min()), float(s.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        ax.hist(s[~y], bins=edges, color=NORMAL_COLOR, alpha=0.6, label=f"normal ({int((~y).sum())})")
        ax.hist(s[y], bins=edges, color=ANOMALY_COLOR, alpha=0.7, label=f"anomaly ({int(y.sum())})")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("count")
    if title:
        fig.suptitle(title)
    return fig


def metric_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str] = ("auroc", "auprc"),
                  xlabel: str = "tune-up epoch (0 = after pre-training)", title: str | None = None) -> Figure:
    """AUROC and AUPRC after every epoch, one panel per metric and one line per named run (the rows
    of :func:`pddlite.ablation.tuneup_curve`: ``epoch``, ``auroc``, ``auprc``)."""
    if not curves or not any(curves.values()):
        raise PDDLiteError("no curves to draw")
    names = METRIC_NAMES
    fig = Figure(figsize=(4.0 * len(metrics), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)).ravel()
    for ax, m in zip(axes, metrics):
        for k, (label, rows) in enumerate(curves.items()):
            pts = [(int(r["epoch"]), float(r[m])) for r in rows if m in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", markersize=4, color=f"C{k}", label=label)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(names.get(m, m))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def pair_distance_histograms(embeddings: Mapping[str, tuple[Any, Any]], q_intra: float = 0.5, q_inter: float = 0.25,
                             bins: int = 40, title: str | None = None) -> Figure:
    """The prototypes' pair distances, within a class (blue) and between classes (orange), one panel
    per named embedding ``{name: (z, labels)}``, with the thresholds of Eqs. 5-6 as vertical lines:
    R_intra, the ``q_intra``-quantile of the within-class distances, and R_inter, the
    ``q_inter``-quantile of the between-class distances (:mod:`pddlite.losses`). The margin loss
    pushes within-class pairs below R_intra and between-class pairs above R_inter.
    """
    from .losses import pair_masks, pairwise_distances

    if not embeddings:
        raise PDDLiteError("give at least one embedding: {name: (z, labels)}")
    fig = Figure(figsize=(4.0 * len(embeddings), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(embeddings), squeeze=False)).ravel()
    for ax, (name, (z, labels)) in zip(axes, embeddings.items()):
        z = torch.as_tensor(_numpy(z), dtype=torch.float64)
        y = torch.as_tensor(_numpy(labels).astype(np.int64))
        if z.ndim != 2 or len(z) != len(y):
            raise PDDLiteError(f"{name}: embeddings must be P x d with one label each")
        d = pairwise_distances(z)
        same, diff = pair_masks(y)
        within, between = d[same].numpy(), d[diff].numpy()
        if len(within) == 0 or len(between) == 0:
            raise PDDLiteError(f"{name}: needs two or more prototypes in two or more classes")
        r_intra, r_inter = np.quantile(within, q_intra), np.quantile(between, q_inter)
        edges = np.linspace(0.0, float(d.max()) * 1.02 or 1.0, bins + 1)
        ax.hist(within, bins=edges, color="tab:blue", alpha=0.6, density=False, label="same class")
        ax.hist(between, bins=edges, color="tab:orange", alpha=0.5, density=False, label="different classes")
        ax.axvline(r_intra, color="tab:blue", linestyle="--", linewidth=1.5, label=f"R_intra = {r_intra:.2f}")
        ax.axvline(r_inter, color="tab:orange", linestyle="--", linewidth=1.5, label=f"R_inter = {r_inter:.2f}")
        ax.set_yscale("log")
        ax.set_xlabel("distance between two prototypes")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("count of pairs (log scale)")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- error analysis


def error_grid(images: Any, neighbours: Any, row_labels: Sequence[str] | None = None,
               neighbour_labels: Sequence[Sequence[str]] | None = None, title: str | None = None,
               scale: float = 0.75) -> Figure:
    """Each image of ``images`` (Q) in the first column, its nearest prototypes (``neighbours``:
    Q x k images) to its right, behind a red divider: what each mistake was taken for
    (:mod:`pddlite.error_analysis`). ``neighbour_labels`` (Q lists of k) are written under them.
    """
    q, nb = _numpy(images), _numpy(neighbours)
    if nb.ndim == 4:  # Q x C x H x W with one neighbour each
        nb = nb[:, None]
    if len(q) == 0 or len(nb) != len(q):
        raise PDDLiteError(f"{len(q)} images but {len(nb)} rows of neighbours")
    k = nb.shape[1]
    rows = np.concatenate([q[:, None], nb], axis=1).reshape((-1,) + q.shape[1:])
    # margins set by hand: the row labels are long, and an equal-aspect image under a layout engine
    # can leave them outside the figure
    label_room = 0.06 * max((len(str(r)) for r in row_labels), default=0) + 0.2 if row_labels else 0.1
    width = label_room + max((k + 1) * scale, 0.075 * len(title or "")) + 0.2
    height = len(q) * scale + 0.8
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=label_room / width, right=1 - 0.2 / width, top=1 - 0.45 / height, bottom=0.3 / height)
    image_grid(rows, ncols=k + 1, row_labels=row_labels, scale=scale, ax=fig.add_subplot())
    ax = fig.axes[0]
    ax.set_anchor("W")  # the images next to their labels
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    w, h = q.shape[-1] + 2, q.shape[-2] + 2
    ax.axvline(1 + w, color=ANOMALY_COLOR, linewidth=2)
    ax.set_xticks([1 + w / 2, 1 + w + k * w / 2])
    ax.set_xticklabels(["image", "nearest prototypes"], fontsize=8)
    ax.tick_params(axis="x", length=0)
    if neighbour_labels is not None:
        for r, names in enumerate(neighbour_labels):
            for j, name in enumerate(list(names)[:k]):
                ax.text(2 + (j + 1) * w + 1, 2 + r * h + 1, str(name), ha="left", va="top", fontsize=7,
                        color="yellow", fontweight="bold")
    if row_labels:
        ax.tick_params(axis="y", labelsize=8)
    return fig


# --------------------------------------------------------------------------- the introduction's toy


def sphere_vs_classes(toy: Any, bandwidth: float = 0.5, steps: int = 121, title: str | None = None) -> Figure:
    """Sec. 1's argument drawn (:mod:`pddlite.intro`): the anomaly score of one sphere around all
    normal data (left) and of Eq. 7 with one density per class (right) as heat maps over the plane,
    the normal points in their class colours and the anomalies as red stars. The colour of a place
    is the share of normal points that score lower there (:func:`pddlite.intro.normal_rank`): black,
    more normal than every normal point; white, more anomalous than all of them. So the two maps
    share one scale, where a threshold would cut.
    """
    from .intro import class_density_score, normal_rank, score_grid, sphere_score

    xs, ys, sphere, dens = score_grid(toy, bandwidth=bandwidth, steps=steps)
    fig = Figure(figsize=(9.6, 5.0), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    colors = class_colors(toy.labels)
    on_normal = (sphere_score(toy.normal, toy.normal),
                 class_density_score(toy.normal, toy.labels, toy.normal, bandwidth))
    panels = [(sphere, on_normal[0], "one sphere: distance to the centre of all normal data"),
              (dens, on_normal[1], f"one density per class (Eq. 7, w = {bandwidth:g})")]
    for ax, (grid, normal_scores, name) in zip(axes, panels):
        ranks = normal_rank(normal_scores, grid.ravel()).reshape(grid.shape)
        mesh = ax.pcolormesh(xs, ys, ranks, cmap="magma", shading="auto", vmin=0, vmax=1)
        for c in sorted(colors):
            m = toy.labels == c
            ax.scatter(toy.normal[m, 0], toy.normal[m, 1], s=12, color=colors[c], edgecolors="white",
                       linewidths=0.4, label=f"normal class {c}")
        ax.scatter(toy.anomalies[:, 0], toy.anomalies[:, 1], marker="*", s=140, color=ANOMALY_COLOR,
                   edgecolors="white", linewidths=0.8, label="anomaly")
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
    axes[0].set_ylabel("x2")
    handles, names = axes[1].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="outside lower center", ncol=len(names), markerscale=1.3,
               frameon=False)  # below the maps: a legend inside would hide points
    bar = fig.colorbar(mesh, ax=list(axes), shrink=0.8)
    bar.set_label("share of normal points scoring lower")
    if title:
        fig.suptitle(title)
    return fig


def mistakes_grid(task: Any, scores: Any, indices: Any, z_test: Any, z_prototypes: Any, k: int = 3,
                  class_word: str = "class", title: str | None = None) -> Figure:
    """:func:`error_grid` for test images ``indices`` of ``task`` (e.g. from
    :func:`pddlite.error_analysis.top_false_alarms`): each beside its ``k`` nearest prototypes in
    the space of ``z_test`` / ``z_prototypes`` (PDD's embedding f(x), or the images themselves for
    the pixel baselines), labelled with its class and score, each prototype with its class."""
    from .error_analysis import nearest_prototypes

    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise PDDLiteError("no images to show")
    zt = _numpy(z_test)
    near, _ = nearest_prototypes(zt[idx], _numpy(z_prototypes), k)
    s = _numpy(scores).astype(np.float64).ravel()
    labels, proto_labels = _numpy(task.test_labels).astype(np.int64), _numpy(task.prototype_labels).astype(np.int64)
    proto_images = _numpy(task.prototype_images)
    rows = [f"{class_word} {labels[i]}, score {s[i]:.2f}".replace("score -0.00", "score 0.00") for i in idx]
    return error_grid(_numpy(task.test_images)[idx], proto_images[near], row_labels=rows,
                      neighbour_labels=[[str(proto_labels[j]) for j in r] for r in near], title=title)

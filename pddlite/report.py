"""The paper's figures and a table of means, drawn from whatever result rows a folder holds.

``pddlite report results/`` (or :func:`make_report`) reads every JSON row under the folder
(:func:`pddlite.grid.load_results`) and writes, per dataset:

* ``auroc_vs_unsupervised_<dataset>.png``: AUROC per anomaly class, PDD (each variant present)
  against the unsupervised baselines EGBAD and GANomaly (and Deep SVDD and the pixel-space sanity
  baselines when present) - Figs. 3-5;
* ``auroc_vs_mcdd_<dataset>.png``: AUROC per anomaly class, PDD against MCDD - Figs. 6-8;
* ``auprc_ablation_<dataset>.png``: AUPRC per anomaly class of PDD after pre-training alone, after
  the tune-up's adversarial steps alone, and after the whole tune-up - Figs. 9-11, isolated;

(a dataset name that pddlite does not know is made safe first, :func:`file_part`: nothing is
written outside the folder) and ``summary.md``: a headline table (mean and standard deviation over every class and seed per
method and variant), then per dataset a table of means and standard deviations per class.
PDD rows become one series per variant (``pdd-pddlite``, ``pdd-paper``, ``pdd-reference``) and,
from the same rows, ``...-pretrain`` and ``...-adversarial`` series. Rows of the test split and of
validation tasks are never mixed: a report shows one split (default: test) and says which.
Markers are means over repetitions, error bars the sample standard deviation (ddof = 1; 0 when a
cell has one repetition), as in the paper's figures. A figure is drawn when at least one of its
methods has rows; a partly finished grid gives partial figures.

The figure functions take result rows and return :class:`matplotlib.figure.Figure` objects built
without pyplot: they need no display, render through Agg when saved, and show inline in Jupyter.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from .data import DATASETS
from .errors import PDDLiteError
from .experiment import STAGE_FIELDS, row_problem
from .files import check_output_folder, write_atomically, write_text_atomically
from .stats import mean_std

#: How the baselines are named in figures and tables, in their display order (PDD's series come first).
METHOD_LABELS = {
    "egbad": "EGBAD", "ganomaly": "GANomaly", "mcdd": "MCDD", "deepsvdd": "Deep SVDD",
    "pixel-knn": "pixel kNN", "pixel-centroid": "pixel centroid",
    "pixel-knn-unlabeled": "pixel kNN, unlabeled too",
}
UNSUPERVISED = ("egbad", "ganomaly", "deepsvdd", "pixel-knn", "pixel-centroid", "pixel-knn-unlabeled")
VARIANT_ORDER = ("pddlite", "paper", "reference")
_STAGES = {"": "", "-pretrain": ", pre-training only", "-adversarial": ", adversarial steps only",
           "-inductive": ", inductive UMAP", "-prototypes": ", Eq. 7 on the prototypes only"}
#: row field prefix of each derived PDD series (the tuned model's own metric has none)
DATASET_LABELS = {"mnist": "MNIST", "mnist-5k": "MNIST-5k", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
PROFILE_PREFERENCE = ("paper", "quick", "smoke")
_MARKERS = {"egbad": "v", "ganomaly": "^", "mcdd": "D", "deepsvdd": "P", "pixel-knn": "x", "pixel-centroid": "+",
            "pixel-knn-unlabeled": "*"}
_STAGE_MARKERS = {"": "o", "-pretrain": "s", "-adversarial": "d", "-inductive": "h", "-prototypes": "p"}


def series_label(series: str) -> str:
    """``pdd-paper-pretrain`` -> ``PDD (paper), pre-training only``; baselines by :data:`METHOD_LABELS`."""
    if series.startswith("pdd-"):
        rest = series[4:]
        for stage in STAGE_FIELDS:
            if rest.endswith(stage):
                return f"PDD ({rest[: -len(stage)]}){_STAGES[stage]}"
        return f"PDD ({rest})"
    return METHOD_LABELS.get(series, series)


def _marker(series: str) -> str:
    for stage in STAGE_FIELDS:
        if series.startswith("pdd-") and series.endswith(stage):
            return _STAGE_MARKERS[stage]
    return _STAGE_MARKERS[""] if series.startswith("pdd-") else _MARKERS.get(series, "o")


def pdd_variants(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The PDD variants that have rows, in display order."""
    found = {_variant(r) for r in rows if r.get("method") == "pdd"}
    return sorted(found, key=lambda v: (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v))


def _variant(row: dict[str, Any]) -> str:
    return str(row.get("variant") or "paper")  # rows written before variants existed were the paper's


# --------------------------------------------------------------------------- aggregation


def _anomaly_key(anomaly: Any) -> tuple[int, str]:
    if isinstance(anomaly, (list, tuple)):
        return (1, "+".join(str(a) for a in anomaly))
    return (0, f"{int(anomaly):04d}")


def _anomaly_label(anomaly: Any) -> str:
    return "+".join(str(a) for a in anomaly) if isinstance(anomaly, (list, tuple)) else str(anomaly)


def _method_order(methods: Iterable[str]) -> list[str]:
    order = list(METHOD_LABELS)

    def key(m: str) -> tuple:
        if m.startswith("pdd-"):
            base = m[4:].split("-")[0]
            stage = next((i for i, st in enumerate(STAGE_FIELDS) if m.endswith(st)), -1)
            return (0, stage, VARIANT_ORDER.index(base) if base in VARIANT_ORDER else 9, m)
        return (1, order.index(m) if m in order else len(order), 0, m)

    return sorted(set(methods), key=key)


def _repetitions(n: int) -> str:
    return f"{n} repetition" + ("" if n == 1 else "s")


def collect(rows: Iterable[dict[str, Any]], dataset: str, metric: str) -> dict[str, dict[str, list[float]]]:
    """``{series: {anomaly label: [values over repetitions]}}`` for one dataset and metric.

    ``metric`` is ``"auroc"`` or ``"auprc"``. A PDD row of variant v gives the series ``pdd-v``,
    and ``pdd-v-pretrain`` and ``pdd-v-adversarial`` from its ``pretrain_<metric>`` and
    ``adversarial_only_<metric>`` values (the isolated ablation of Figs. 9-11), and, for the
    transductive sample-notebook scoring, ``pdd-v-inductive`` from ``inductive_<metric>``, and with
    ``scoring="kde-pseudo"``, ``pdd-v-prototypes`` from ``prototypes_only_<metric>``.
    """
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("dataset") != dataset:
            continue
        label = _anomaly_label(row["anomaly"])
        if row.get("method") != "pdd":
            if row.get(metric) is not None:
                out[row["method"]][label].append(float(row[metric]))
            continue
        name = f"pdd-{_variant(row)}"
        for suffix, prefix in (("", ""), *STAGE_FIELDS.items()):
            if row.get(prefix + metric) is not None:
                out[name + suffix][label].append(float(row[prefix + metric]))
    return out


def _classes(rows: Iterable[dict[str, Any]], dataset: str) -> list[str]:
    anomalies = {}
    for row in rows:
        if row.get("dataset") == dataset:
            anomalies[_anomaly_label(row["anomaly"])] = _anomaly_key(row["anomaly"])
    return sorted(anomalies, key=lambda a: anomalies[a])


def consistent_rows(found: Sequence[tuple[Path, dict[str, Any]]], shots: int | None = None
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows one report may average, and one line for each row left out, saying why.

    * malformed rows (a metric that is not a number in [0, 1], a non-integer seed or class);
    * rows of another shots count than ``shots`` (default: 20 where present, else the most common);
    * of one series (profile, split, dataset, method, variant), the rows made with other settings
      or in another precision than its most recently finished row
      (:func:`pddlite.experiment.settings_fingerprint`; an older pddlite, a changed default, bf16
      against fp32): repetitions of different settings or precisions are not repetitions;
    * of one run (series, anomaly class, seed), every row but the most recently finished one: a
      copy in a backup folder is a duplicate, not another repetition.
    """
    skipped: list[str] = []
    good: list[tuple[Path, dict[str, Any]]] = []
    for path, row in found:
        problem = row_problem(row)
        if problem:
            skipped.append(f"{path}: {problem}")
        else:
            good.append((path, row))
    counts = Counter(row.get("shots", 20) for _, row in good)
    if shots is None and counts:
        shots = 20 if 20 in counts else counts.most_common(1)[0][0]
    same_shots = []
    for path, row in good:
        if row.get("shots", 20) != shots:
            skipped.append(f"{path}: shots {row.get('shots')} (this report: {shots}; pass --shots to see them)")
        else:
            same_shots.append((path, row))

    def series(row: dict[str, Any]) -> tuple:
        return (str(row.get("profile")), str(row.get("split", "test")), row["dataset"], row["method"], row.get("variant"))

    def finished(item: tuple[Path, dict[str, Any]]) -> str:
        return str(item[1].get("finished_at", ""))

    latest_settings, latest_precision = {}, {}
    for item in sorted(same_shots, key=finished):
        latest_settings[series(item[1])] = item[1].get("settings")
        latest_precision[series(item[1])] = item[1].get("precision")
    by_run: dict[tuple, tuple[Path, dict[str, Any]]] = {}
    for item in sorted(same_shots, key=finished, reverse=True):
        path, row = item
        name = f"{row['method']}{'-' + row['variant'] if row.get('variant') else ''}"
        if row.get("settings") != latest_settings[series(row)]:
            skipped.append(f"{path}: made with other settings ({row.get('settings') or 'unrecorded'}) than the "
                           f"newest rows of {name} ({latest_settings[series(row)] or 'unrecorded'})")
            continue
        if row.get("precision") != latest_precision[series(row)]:
            skipped.append(f"{path}: trained in {row.get('precision') or 'an unrecorded precision'}, the newest rows "
                           f"of {name} in {latest_precision[series(row)] or 'an unrecorded precision'} (precisions "
                           "are never averaged)")
            continue
        run = series(row) + (_anomaly_key(row["anomaly"]), row.get("seed", row.get("rep", 0)))
        if run in by_run:
            skipped.append(f"{path}: another row of the run in {by_run[run][0]} (the newer one is used)")
            continue
        by_run[run] = item
    chosen = {id(row) for _, row in by_run.values()}
    kept = [row for _, row in found if id(row) in chosen]
    return kept, skipped


def choose_split(rows: Sequence[dict[str, Any]], split: str = "test") -> list[dict[str, Any]]:
    """The rows scored on ``split`` (``"test"`` or ``"validation"``; rows without one are test rows)."""
    chosen = [r for r in rows if str(r.get("split", "test")) == split]
    if rows and not chosen:
        present = sorted({str(r.get("split", "test")) for r in rows})
        raise PDDLiteError(f"no results on the {split} split; the folder has: {', '.join(present)} (use --split)")
    return chosen


def choose_profile(rows: Sequence[dict[str, Any]], profile: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of ``profile``; by default of the most thorough profile present (paper > quick > smoke)."""
    present = sorted({str(r.get("profile")) for r in rows})
    if profile is None:
        if len(present) <= 1:
            return list(rows), (present[0] if present else None)
        profile = next((p for p in PROFILE_PREFERENCE if p in present), present[0])
    chosen = [r for r in rows if str(r.get("profile")) == profile]
    if not chosen:
        raise PDDLiteError(f"no results of profile {profile!r}; the folder has: {', '.join(present) or 'none'}")
    return chosen, profile


# --------------------------------------------------------------------------- figures


def _new_figure(n_classes: int):
    from matplotlib.figure import Figure

    return Figure(figsize=(max(6.0, 0.65 * n_classes + 2.5), 3.8), layout="constrained")


def metric_figure(
    rows: Sequence[dict[str, Any]],
    dataset: str,
    methods: Sequence[str],
    metric: str = "auroc",
    title: str | None = None,
):
    """Mean +- std of ``metric`` per anomaly class for ``methods`` on ``dataset``, as a Figure.

    Methods without rows are left out; a PDDLiteError is raised when none of them has rows.
    """
    data = collect(rows, dataset, metric)
    wanted = list(methods)
    methods = [m for m in wanted if data.get(m)]
    if not methods:
        raise PDDLiteError(f"no {metric.upper()} results for {', '.join(wanted)} on {dataset}")
    classes = _classes(rows, dataset)
    names = DATASETS.get(dataset, ())
    fig = _new_figure(len(classes))
    ax = fig.add_subplot()
    width = 0.6 / max(len(methods), 1)
    low = 1.0
    for j, method in enumerate(methods):
        xs, means, stds = [], [], []
        for i, c in enumerate(classes):
            values = data[method].get(c)
            if values:
                m, s = mean_std(values)
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                means.append(m)
                stds.append(s)
                low = min(low, m - s)
        ax.errorbar(xs, means, yerr=stds, fmt=_marker(method), capsize=3, markersize=5,
                    label=series_label(method), linestyle="none")
    ax.set_xticks(range(len(classes)))
    # one unit per class whatever their number: with a single class matplotlib would otherwise
    # zoom in on the method offsets and push the markers to the plot's edges
    ax.set_xlim(-0.5, len(classes) - 0.5)
    ticks = []
    for c in classes:
        if c.isdigit() and names and int(c) < len(names) and names[int(c)] != c:
            ticks.append(f"{c}\n{names[int(c)]}")
        else:
            ticks.append(c)
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_xlabel("anomaly class")
    ax.set_ylabel(metric.upper())
    ax.set_ylim(max(0.0, math.floor(low * 10) / 10 - 0.02), 1.01)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    n_reps = sorted({len(v) for m in methods for v in data[m].values()})
    reps = f"{n_reps[0]}" if len(n_reps) == 1 else f"{n_reps[0]}-{n_reps[-1]}"
    spread = "one repetition, no spread" if reps == "1" else f"mean \u00b1 sample std over {reps} repetitions"
    ax.set_title((title or f"{metric.upper()}: {DATASET_LABELS.get(dataset, dataset)}") + f"  ({spread})", fontsize=10)
    return fig


def _pdd_series(rows: Sequence[dict[str, Any]], dataset: str, stages: Sequence[str] = ("",)) -> tuple[str, ...]:
    variants = pdd_variants(r for r in rows if r.get("dataset") == dataset)
    return tuple(f"pdd-{v}{stage}" for v in variants for stage in stages)


def figure_vs_unsupervised(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 3-5: AUROC of PDD against EGBAD and GANomaly (and Deep SVDD, pixel baselines) per class."""
    return metric_figure(rows, dataset, _pdd_series(rows, dataset) + UNSUPERVISED, "auroc",
                         f"vs unsupervised DAD ({DATASET_LABELS.get(dataset, dataset)})")


def figure_vs_mcdd(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 6-8: AUROC of PDD against the fully labeled MCDD per anomaly class."""
    return metric_figure(rows, dataset, _pdd_series(rows, dataset) + ("mcdd",), "auroc",
                         f"vs OOD ({DATASET_LABELS.get(dataset, dataset)})")


def figure_ablation(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 9-11, isolated: AUPRC of PDD after pre-training, after the adversarial steps alone, and tuned."""
    return metric_figure(rows, dataset, _pdd_series(rows, dataset, ("-pretrain", "-adversarial", "")), "auprc",
                         f"ablation study ({DATASET_LABELS.get(dataset, dataset)})")


# --------------------------------------------------------------------------- table


def mean_and_std_cell(values: Sequence[float]) -> str:
    """``"mean \u00b1 sample std"`` to three decimals, or the value alone when there is one: a
    standard deviation of one run is not zero, it is unknown."""
    mean, std = mean_std(values)
    return f"{mean:.3f}" if len(values) < 2 else f"{mean:.3f} \u00b1 {std:.3f}"


def headline_table(rows: Sequence[dict[str, Any]], dataset: str) -> list[str]:
    """Markdown lines: per series, AUROC and AUPRC mean +- std over every (class, seed) run, and n."""
    auroc, auprc = collect(rows, dataset, "auroc"), collect(rows, dataset, "auprc")
    lines = ["| method | AUROC | AUPRC | runs |", "|---|---|---|---|"]
    for m in _method_order(m for m in auroc if auroc[m]):
        a = [v for vs in auroc[m].values() for v in vs]
        b = [v for vs in auprc.get(m, {}).values() for v in vs]
        lines.append(f"| {series_label(m)} | {mean_and_std_cell(a)} | {mean_and_std_cell(b) if b else ''} | {len(a)} |")
    return lines


def summary_table(rows: Sequence[dict[str, Any]], profile: str | None = None, split: str = "test") -> str:
    """Markdown: per dataset, a headline table, then mean +- std of AUROC and AUPRC per class and series."""
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: (list(DATASET_LABELS).index(d) if d in DATASET_LABELS else 99, d))
    lines = ["# Results", ""]
    n = len(rows)
    where = "the official test split" if split == "test" else "validation tasks built from training data"
    lines.append(f"{n} runs{f' (profile {profile})' if profile else ''}, scored on {where}. Cells: mean \u00b1 "
                 "sample standard deviation over repetitions (the value alone where there is one), with the number of repetitions in brackets when it is "
                 "not the same everywhere. The last line of each table averages the class means.")
    for dataset in datasets:
        lines += ["", f"## {DATASET_LABELS.get(dataset, dataset)}: every class and seed", "",
                  "Mean \u00b1 standard deviation over all runs (classes x seeds).", ""]
        lines += headline_table(rows, dataset)
    for dataset in datasets:
        classes = _classes(rows, dataset)
        for metric in ("auroc", "auprc"):
            data = collect(rows, dataset, metric)
            methods = _method_order(m for m in data if data[m])
            if not methods:
                continue
            counts = {len(v) for m in methods for v in data[m].values()}
            show_n = len(counts) > 1
            lines += ["", f"## {DATASET_LABELS.get(dataset, dataset)}: {metric.upper()}"
                      + (f" ({_repetitions(counts.pop())})" if not show_n and counts else ""), ""]
            lines.append("| anomaly | " + " | ".join(series_label(m) for m in methods) + " |")
            lines.append("|---|" + "---|" * len(methods))
            class_means: dict[str, list[float]] = defaultdict(list)
            names = DATASETS.get(dataset, ())
            for c in classes:
                cells = []
                for m in methods:
                    values = data[m].get(c)
                    if not values:
                        cells.append("")
                        continue
                    class_means[m].append(mean_std(values)[0])
                    cells.append(mean_and_std_cell(values) + (f" ({len(values)})" if show_n else ""))
                label = f"{c} ({names[int(c)]})" if c.isdigit() and names and int(c) < len(names) and names[int(c)] != c else c
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            avg = [f"**{sum(v) / len(v):.3f}**" if (v := class_means.get(m)) else "" for m in methods]
            lines.append("| mean | " + " | ".join(avg) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report


def make_report(results_dir: str | Path, out_dir: str | Path | None = None, profile: str | None = None,
                split: str = "test", shots: int | None = None) -> dict[str, Path]:
    """Draw every figure the rows allow and the summary table; return ``{name: path}`` of the files written.

    ``out_dir`` defaults to ``results_dir``; ``profile`` picks which profile's rows to use when the
    folder holds several (default: paper, else quick, else smoke); ``split`` which split's rows;
    ``shots`` which shots count's (default: 20 where present). Rows that one report must not
    average are left out, one line each on stderr (:func:`consistent_rows`).
    """
    from .grid import load_result_files

    found = load_result_files(results_dir)
    if not found:
        raise PDDLiteError(f"no result rows under {results_dir}: run `pddlite replicate --out {results_dir}` first")
    if shots is not None and not any(row.get("shots", 20) == shots for _, row in found):
        present = sorted({str(row.get("shots", 20)) for _, row in found})
        raise PDDLiteError(f"no result rows of shots {shots} under {results_dir}; its rows have shots "
                           f"{', '.join(present)} (pass one of those to --shots)")
    kept, skipped = consistent_rows(found, shots)
    if not kept:  # every row was left out: say why, not that there are none
        raise PDDLiteError(f"none of the {len(found)} result rows under {results_dir} can be reported: {skipped[0]}"
                           + (f" (and {len(skipped) - 1} more left out)" if len(skipped) > 1 else ""))
    rows, chosen = choose_profile(choose_split(kept, split), profile)
    if not rows:
        raise PDDLiteError(f"no result rows under {results_dir}: run `pddlite replicate --out {results_dir}` first")
    for line in skipped:
        print(f"report: skipped {line}", file=sys.stderr)
    out = check_output_folder(out_dir if out_dir is not None else results_dir)
    written: dict[str, Path] = {}
    datasets = sorted({r["dataset"] for r in rows})
    figures = (("auroc_vs_unsupervised", figure_vs_unsupervised, ("pdd",) + UNSUPERVISED),
               ("auroc_vs_mcdd", figure_vs_mcdd, ("pdd", "mcdd")),
               ("auprc_ablation", figure_ablation, ("pdd",)))
    for dataset in datasets:
        present = {r["method"] for r in rows if r["dataset"] == dataset}
        for name, draw, needs in figures:
            if name == "auprc_ablation":
                if not any(r["dataset"] == dataset and r["method"] == "pdd" and r.get("pretrain_auprc") is not None for r in rows):
                    continue
            elif not present & set(needs):
                continue
            fig = draw(rows, dataset)
            path = out / f"{name}_{file_part(dataset)}.png"
            write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=150))
            written[f"{name}_{dataset}"] = path
    written["summary"] = write_text_atomically(out / "summary.md", summary_table(rows, chosen, split))
    return written


def file_part(name: str) -> str:
    """``name`` (a dataset, from a row) as a part of a file name inside the report's folder: a known
    dataset as it is, anything else reduced to letters, digits, ``.``, ``_`` and ``-`` and followed
    by a digest of the whole name, so that no row's text can name a path outside the folder."""
    if name in DATASETS:
        return name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "dataset"
    return f"{safe}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"

"""The paper's figures and a table of means, drawn from whatever result rows a folder holds.

``pddlite report results/`` (or :func:`make_report`) reads every JSON row under the folder
(:func:`pddlite.grid.load_results`) and writes, per dataset:

* ``auroc_vs_unsupervised_<dataset>.png``: AUROC per anomaly class, PDD against the unsupervised
  baselines EGBAD and GANomaly (and Deep SVDD when present) - Figs. 3-5;
* ``auroc_vs_mcdd_<dataset>.png``: AUROC per anomaly class, PDD against MCDD - Figs. 6-8;
* ``auprc_ablation_<dataset>.png``: AUPRC per anomaly class of PDD after pre-training alone and
  after the tune-up - Figs. 9-11;

and ``summary.md``, a Markdown table of means and standard deviations per class and method.
Markers are means over repetitions, error bars the sample standard deviation (ddof = 1; 0 when a
cell has one repetition), as in the paper's figures. A figure is drawn when at least one of its
methods has rows; a partly finished grid gives partial figures.

The figure functions take result rows and return :class:`matplotlib.figure.Figure` objects built
without pyplot: they need no display, render through Agg when saved, and show inline in Jupyter.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from .data import DATASETS
from .errors import PDDLiteError

#: How methods are named in figures and tables, in their display order.
METHOD_LABELS = {
    "pdd": "PDD", "pdd-pretrain": "PDD (pre-training)", "egbad": "EGBAD", "ganomaly": "GANomaly",
    "mcdd": "MCDD", "deepsvdd": "Deep SVDD",
}
UNSUPERVISED = ("egbad", "ganomaly", "deepsvdd")
DATASET_LABELS = {"mnist": "MNIST", "mnist-5k": "MNIST-5k", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
PROFILE_PREFERENCE = ("paper", "quick", "smoke")
_MARKERS = {"pdd": "o", "pdd-pretrain": "s", "egbad": "v", "ganomaly": "^", "mcdd": "D", "deepsvdd": "P"}


# --------------------------------------------------------------------------- aggregation


def _anomaly_key(anomaly: Any) -> tuple[int, str]:
    if isinstance(anomaly, (list, tuple)):
        return (1, "+".join(str(a) for a in anomaly))
    return (0, f"{int(anomaly):04d}")


def _anomaly_label(anomaly: Any) -> str:
    return "+".join(str(a) for a in anomaly) if isinstance(anomaly, (list, tuple)) else str(anomaly)


def _method_order(methods: Iterable[str]) -> list[str]:
    order = list(METHOD_LABELS)
    return sorted(set(methods), key=lambda m: (order.index(m) if m in order else len(order), m))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def collect(rows: Iterable[dict[str, Any]], dataset: str, metric: str) -> dict[str, dict[str, list[float]]]:
    """``{method: {anomaly label: [values over repetitions]}}`` for one dataset and metric.

    ``metric`` is ``"auroc"`` or ``"auprc"``; PDD rows also give ``"pdd-pretrain"`` from their
    ``pretrain_<metric>`` values (the ablation of Figs. 9-11).
    """
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("dataset") != dataset:
            continue
        label = _anomaly_label(row["anomaly"])
        if row.get(metric) is not None:
            out[row["method"]][label].append(float(row[metric]))
        if row.get("method") == "pdd" and row.get(f"pretrain_{metric}") is not None:
            out["pdd-pretrain"][label].append(float(row[f"pretrain_{metric}"]))
    return out


def _classes(rows: Iterable[dict[str, Any]], dataset: str) -> list[str]:
    anomalies = {}
    for row in rows:
        if row.get("dataset") == dataset:
            anomalies[_anomaly_label(row["anomaly"])] = _anomaly_key(row["anomaly"])
    return sorted(anomalies, key=lambda a: anomalies[a])


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
        ax.errorbar(xs, means, yerr=stds, fmt=_MARKERS.get(method, "o"), capsize=3, markersize=5,
                    label=METHOD_LABELS.get(method, method), linestyle="none")
    ax.set_xticks(range(len(classes)))
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
    ax.set_title((title or f"{metric.upper()}: {DATASET_LABELS.get(dataset, dataset)}")
                 + f"  (mean \u00b1 std over {reps} repetitions)", fontsize=10)
    return fig


def figure_vs_unsupervised(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 3-5: AUROC of PDD against EGBAD and GANomaly (and Deep SVDD) per anomaly class."""
    return metric_figure(rows, dataset, ("pdd",) + UNSUPERVISED, "auroc",
                         f"vs unsupervised DAD ({DATASET_LABELS.get(dataset, dataset)})")


def figure_vs_mcdd(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 6-8: AUROC of PDD against the fully labeled MCDD per anomaly class."""
    return metric_figure(rows, dataset, ("pdd", "mcdd"), "auroc", f"vs OOD ({DATASET_LABELS.get(dataset, dataset)})")


def figure_ablation(rows: Sequence[dict[str, Any]], dataset: str):
    """Figs. 9-11: AUPRC of PDD after pre-training alone and after the tune-up per anomaly class."""
    return metric_figure(rows, dataset, ("pdd-pretrain", "pdd"), "auprc",
                         f"ablation study ({DATASET_LABELS.get(dataset, dataset)})")


# --------------------------------------------------------------------------- table


def summary_table(rows: Sequence[dict[str, Any]], profile: str | None = None) -> str:
    """Markdown: per dataset, mean +- std of AUROC and AUPRC per anomaly class and method."""
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: (list(DATASET_LABELS).index(d) if d in DATASET_LABELS else 99, d))
    lines = ["# Results", ""]
    n = len(rows)
    lines.append(f"{n} runs{f' (profile {profile})' if profile else ''}. Cells: mean \u00b1 sample standard deviation "
                 "over repetitions, with the number of repetitions in brackets when it is not the same everywhere. "
                 "The last line of each table averages the class means.")
    for dataset in datasets:
        classes = _classes(rows, dataset)
        for metric in ("auroc", "auprc"):
            data = collect(rows, dataset, metric)
            methods = _method_order(m for m in data if data[m])
            if metric == "auroc":
                methods = [m for m in methods if m != "pdd-pretrain"] + (["pdd-pretrain"] if "pdd-pretrain" in methods else [])
            if not methods:
                continue
            counts = {len(v) for m in methods for v in data[m].values()}
            show_n = len(counts) > 1
            lines += ["", f"## {DATASET_LABELS.get(dataset, dataset)}: {metric.upper()}"
                      + (f" ({counts.pop()} repetitions)" if not show_n and counts else ""), ""]
            lines.append("| anomaly | " + " | ".join(METHOD_LABELS.get(m, m) for m in methods) + " |")
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
                    mean, std = mean_std(values)
                    class_means[m].append(mean)
                    cells.append(f"{mean:.3f} \u00b1 {std:.3f}" + (f" ({len(values)})" if show_n else ""))
                label = f"{c} ({names[int(c)]})" if c.isdigit() and names and int(c) < len(names) and names[int(c)] != c else c
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            avg = [f"**{sum(v) / len(v):.3f}**" if (v := class_means.get(m)) else "" for m in methods]
            lines.append("| mean | " + " | ".join(avg) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report


def make_report(results_dir: str | Path, out_dir: str | Path | None = None, profile: str | None = None) -> dict[str, Path]:
    """Draw every figure the rows allow and the summary table; return ``{name: path}`` of the files written.

    ``out_dir`` defaults to ``results_dir``; ``profile`` picks which profile's rows to use when the
    folder holds several (default: paper, else quick, else smoke).
    """
    from .grid import load_results

    rows, chosen = choose_profile(load_results(results_dir), profile)
    if not rows:
        raise PDDLiteError(f"no result rows under {results_dir}: run `pddlite replicate --out {results_dir}` first")
    out = Path(out_dir) if out_dir is not None else Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
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
            path = out / f"{name}_{dataset}.png"
            fig.savefig(path, dpi=150)
            written[f"{name}_{dataset}"] = path
    summary = out / "summary.md"
    summary.write_text(summary_table(rows, chosen))
    written["summary"] = summary
    return written


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="?", default="results", help="folder of result files (default: results)")
    p.add_argument("--out", default=None, help="where to write the figures and summary.md (default: the results folder)")
    p.add_argument("--profile", default=None, help="which profile's results to use when there are several")


def cmd_report(args: argparse.Namespace) -> int:
    written = make_report(args.results, args.out, args.profile)
    for path in written.values():
        print(path)
    return 0


cmd_report.add_arguments = _add_arguments  # type: ignore[attr-defined]


def _register() -> None:
    from .cli import command

    command("report", "draw the paper's figures (Figs. 3-11) and a table of means from a results folder")(cmd_report)


_register()

"""The report: figures and table drawn from a small results folder, whatever it holds."""

from __future__ import annotations

import math
import statistics

import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from pddlite import PDDLiteError
from pddlite.cli import main
from pddlite.grid import RunSpec, load_result_files, load_results, write_row
from pddlite.report import (
    row_problem, choose_split, collect, mean_and_std_cell, figure_ablation, figure_vs_mcdd, figure_vs_unsupervised, make_report,
    series_label, summary_table,
)

METHODS = ("pdd", "egbad", "ganomaly", "mcdd", "deepsvdd")


def value(dataset: str, method: str, anomaly: int, rep: int, metric: str) -> float:
    """A made-up but distinct result for every cell."""
    base = {"pdd": 0.9, "egbad": 0.5, "ganomaly": 0.6, "mcdd": 0.85, "deepsvdd": 0.55}[method]
    shift = 0.05 if metric == "auprc" else 0.0
    return round(base - shift - 0.01 * anomaly + 0.003 * rep * (1 + (dataset == "cifar10")), 6)


def write_results(folder, datasets=("mnist", "cifar10"), methods=METHODS, anomalies=(0, 1, 2), reps=3,
                  profile="paper", variant="pddlite", split="test", shift=0.0):
    for dataset in datasets:
        for method in methods:
            for anomaly in anomalies:
                for rep in range(reps):
                    row = {"dataset": dataset, "anomaly": anomaly, "method": method, "rep": rep, "seed": rep,
                           "profile": profile, "shots": 20, "device": "cuda", "seconds": 1.0, "split": split,
                           "auroc": value(dataset, method, anomaly, rep, "auroc") + shift,
                           "auprc": value(dataset, method, anomaly, rep, "auprc") + shift}
                    if method == "pdd":
                        row["variant"] = variant
                        row["pretrain_auroc"] = row["auroc"] - 0.1
                        row["pretrain_auprc"] = row["auprc"] - 0.2
                        row["adversarial_only_auroc"] = row["auroc"] - 0.05
                        row["adversarial_only_auprc"] = row["auprc"] - 0.15
                    spec = RunSpec(dataset, anomaly, method, rep, variant if method == "pdd" else None)
                    write_row(row, spec.path(folder, profile, split=split))


def errorbars(fig: Figure) -> dict[str, ErrorbarContainer]:
    ax = fig.axes[0]
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def test_report_writes_every_figure_and_the_table(tmp_path):
    write_results(tmp_path / "results")
    written = make_report(tmp_path / "results")
    expected = {f"{kind}_{d}" for kind in ("auroc_vs_unsupervised", "auroc_vs_mcdd", "auprc_ablation")
                for d in ("mnist", "cifar10")} | {"summary"}
    assert set(written) == expected
    for name, path in written.items():
        assert path.parent == tmp_path / "results" and path.stat().st_size > 0
        if name != "summary":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = written["summary"].read_text()
    # one known cell: MNIST, GANomaly, anomaly 2, AUROC over reps 0..2
    values = [value("mnist", "ganomaly", 2, r, "auroc") for r in range(3)]
    assert f"{statistics.mean(values):.3f} \u00b1 {statistics.stdev(values):.3f}" in text
    assert "## MNIST: AUROC (3 repetitions)" in text and "## CIFAR-10: AUPRC (3 repetitions)" in text
    header = next(line for line in text.splitlines() if line.startswith("| anomaly | PDD"))
    assert header == ("| anomaly | PDD (pddlite) | PDD (pddlite), pre-training only | "
                      "PDD (pddlite), adversarial steps only | EGBAD | GANomaly | MCDD | Deep SVDD |")
    assert "scored on the official test split" in text
    assert "| 2 (bird) |" in text  # CIFAR-10 classes are named


def test_figures_plot_means_and_standard_deviations(tmp_path):
    write_results(tmp_path)
    rows = load_results(tmp_path)
    fig = figure_vs_unsupervised(rows, "mnist")
    bars = errorbars(fig)
    assert set(bars) == {"PDD (pddlite)", "EGBAD", "GANomaly", "Deep SVDD"}  # MCDD has its own figure
    _, y = bars["EGBAD"].lines[0].get_data()
    expected = [statistics.mean(value("mnist", "egbad", a, r, "auroc") for r in range(3)) for a in (0, 1, 2)]
    assert list(y) == pytest.approx(expected)
    segments = bars["EGBAD"].lines[2][0].get_segments()
    half_heights = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    sd = statistics.stdev(value("mnist", "egbad", 0, r, "auroc") for r in range(3))
    assert half_heights[0] == pytest.approx(sd)
    assert set(errorbars(figure_vs_mcdd(rows, "mnist"))) == {"PDD (pddlite)", "MCDD"}
    ablation = errorbars(figure_ablation(rows, "cifar10"))
    assert set(ablation) == {"PDD (pddlite)", "PDD (pddlite), pre-training only",
                             "PDD (pddlite), adversarial steps only"}
    _, y_pre = ablation["PDD (pddlite), pre-training only"].lines[0].get_data()
    _, y_adv = ablation["PDD (pddlite), adversarial steps only"].lines[0].get_data()
    _, y_post = ablation["PDD (pddlite)"].lines[0].get_data()
    assert list(y_post - y_pre) == pytest.approx([0.2, 0.2, 0.2])
    assert list(y_post - y_adv) == pytest.approx([0.15, 0.15, 0.15])
    assert fig.axes[0].get_ylabel() == "AUROC" and "MNIST" in fig.axes[0].get_title()
    assert "sample std over 3 repetitions" in fig.axes[0].get_title()


def test_a_figure_of_single_runs_says_it_has_no_spread(tmp_path):
    write_results(tmp_path, reps=1)
    title = figure_vs_unsupervised(load_results(tmp_path), "mnist").axes[0].get_title()
    assert "one repetition, no spread" in title and "std" not in title


def test_each_anomaly_class_gets_one_unit_of_the_x_axis_with_its_methods_inside(tmp_path):
    for anomalies in ((1,), (0, 1, 2)):
        folder = tmp_path / str(len(anomalies))
        write_results(folder, datasets=("mnist",), anomalies=anomalies, reps=1)
        ax = figure_ablation(load_results(folder), "mnist").axes[0]
        assert ax.get_xlim() == pytest.approx((-0.5, len(anomalies) - 0.5))
        xs = [x for c in errorbars(ax.figure).values() for x in c.lines[0].get_data()[0]]
        assert all(abs(x - round(x)) < 0.5 for x in xs)


def test_a_partial_folder_gives_partial_figures(tmp_path):
    write_results(tmp_path, datasets=("fashion-mnist",), methods=("mcdd",), anomalies=(6,), reps=1)
    written = make_report(tmp_path, out_dir=tmp_path / "figures")
    assert set(written) == {"auroc_vs_mcdd_fashion-mnist", "summary"}
    assert written["summary"].parent == tmp_path / "figures"
    assert "| 6 (Shirt) |" in written["summary"].read_text()
    with pytest.raises(PDDLiteError, match="no AUROC results for egbad, ganomaly"):
        figure_vs_unsupervised(load_results(tmp_path), "fashion-mnist")


def test_the_most_thorough_profile_is_chosen_unless_asked(tmp_path):
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(1,), reps=2, profile="smoke")
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(1,), reps=1, profile="paper")
    assert "(profile paper)" in make_report(tmp_path)["summary"].read_text()
    text = make_report(tmp_path, profile="smoke")["summary"].read_text()
    assert "(profile smoke)" in text and "(2 repetitions)" in text
    with pytest.raises(PDDLiteError, match="no results of profile 'quick'"):
        make_report(tmp_path, profile="quick")


def test_summary_marks_uneven_repetitions(tmp_path):
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(0,), reps=2)
    write_results(tmp_path, datasets=("mnist",), methods=("mcdd",), anomalies=(0,), reps=1)
    text = summary_table(load_results(tmp_path))
    assert "(2)" in text and f"| {value('mnist', 'mcdd', 0, 0, 'auroc'):.3f} (1) |" in text
    assert not math.isnan(float(text.split("**")[1]))


def test_report_command(tmp_path, capsys):
    write_results(tmp_path, datasets=("mnist",), methods=("pdd", "egbad"), anomalies=(0, 1), reps=2)
    assert main(["report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "summary.md") in printed and str(tmp_path / "auroc_vs_unsupervised_mnist.png") in printed
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no result rows" in capsys.readouterr().err


def test_variants_are_series_side_by_side_and_splits_never_mix(tmp_path):
    write_results(tmp_path, datasets=("mnist",), methods=("pdd", "egbad"), anomalies=(0, 1), reps=2)
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(0, 1), reps=2, variant="paper",
                  shift=-0.2)
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(0, 1), reps=2, split="validation",
                  shift=-0.4)
    rows = load_results(tmp_path)
    assert set(errorbars(figure_vs_unsupervised(choose_split(rows), "mnist"))) == {
        "PDD (pddlite)", "PDD (paper)", "EGBAD"}
    text = make_report(tmp_path)["summary"].read_text()
    # the headline: PDD (paper) over 2 classes x 2 seeds, from the test rows only
    paper = [value("mnist", "pdd", a, r, "auroc") - 0.2 for a in (0, 1) for r in range(2)]
    assert f"| PDD (paper) | {statistics.mean(paper):.3f} \u00b1 {statistics.stdev(paper):.3f} |" in text
    headline = text.split("## MNIST: every class and seed")[1].split("## ")[0]
    assert all(line.endswith("| 4 |") for line in headline.splitlines() if line.startswith("| PDD"))
    validation = make_report(tmp_path, out_dir=tmp_path / "val", split="validation")["summary"].read_text()
    assert "validation tasks built from training data" in validation and "PDD (paper)" not in validation
    with pytest.raises(PDDLiteError, match="no results on the validation split"):
        choose_split([r for r in rows if r.get("split") == "test"], "validation")


def test_the_report_never_averages_copies_other_shots_other_settings_or_malformed_rows(tmp_path, capsys):
    import json
    import shutil

    from pddlite.report import consistent_rows

    write_results(tmp_path, datasets=("mnist",), methods=("pdd", "mcdd"), anomalies=(0, 1), reps=2)
    files = sorted(tmp_path.rglob("*.json"))
    for f in files:  # the rows of one grid run carry their settings and when they finished
        row = json.loads(f.read_text())
        row.update(settings="new", finished_at="2026-12-01T10:00:00+00:00")
        f.write_text(json.dumps(row))
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "paper", backup / "paper")  # a backup copy is not a third repetition
    extra = tmp_path / "paper" / "mnist" / "mcdd"
    row = json.loads(files[-1].read_text())
    (extra / "old.json").write_text(json.dumps({**row, "rep": 5, "seed": 5, "settings": "old",
                                                "finished_at": "2026-11-01T10:00:00+00:00"}))
    (extra / "ten.json").write_text(json.dumps({**row, "rep": 6, "seed": 6, "shots": 10}))
    (extra / "bad.json").write_text(json.dumps({**row, "rep": 7, "seed": 7, "auroc": "0.9"}))
    found = load_result_files(tmp_path)
    kept, skipped = consistent_rows(found)
    assert len(kept) == 8  # 2 methods x 2 classes x 2 seeds, once each
    assert len({(r["method"], r["anomaly"], r["seed"]) for r in kept}) == 8
    reasons = "\n".join(skipped)
    assert reasons.count("another row of the run") == 8
    assert "old.json: made with other settings (old)" in reasons
    assert "ten.json: shots 10 (this report: 20" in reasons
    assert "bad.json: auroc is '0.9', not a number in [0, 1]" in reasons
    assert len(skipped) == 11
    kept10, _ = consistent_rows(found, shots=10)
    assert [r["seed"] for r in kept10] == [6]
    # the command prints one line per skipped row and reports the rest
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "figures")]) == 0
    err = capsys.readouterr().err
    assert err.count("report: skipped ") == 11
    assert "8 runs" in (tmp_path / "figures" / "summary.md").read_text()


def test_report_out_a_file_and_folders_whose_rows_cannot_be_reported_are_named(tmp_path, capsys):
    import json

    write_results(tmp_path / "res", datasets=("mnist",), methods=("mcdd",), anomalies=(0,), reps=2)
    (tmp_path / "plain").write_text("x")
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err.strip()
    assert "plain is a file, not a folder" in err and "\n" not in err
    # rows are there, of another shots count: say which, not "run replicate first"
    with pytest.raises(PDDLiteError, match=r"no result rows of shots 10 .*have shots 20 \(pass one of those"):
        make_report(tmp_path / "res", shots=10)
    for f in (tmp_path / "res").rglob("*.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "auroc": "0.9"}))
    with pytest.raises(PDDLiteError, match=r"none of the 2 result rows .*auroc is '0.9', not a number in \[0, 1\] "
                                           r"\(and 1 more left out\)"):
        make_report(tmp_path / "res")


def test_rows_with_a_list_or_a_mapping_for_a_name_are_left_out_not_a_traceback(tmp_path):
    from pathlib import Path

    from pddlite.report import consistent_rows

    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(0,), reps=1)
    found = load_result_files(tmp_path)
    row = found[0][1]
    odd = (("variant", [1]), ("shots", [20]), ("shots", "20"), ("profile", {"name": "paper"}), ("split", ["test"]))
    found += [(Path(f"odd{i}.json"), {**row, "seed": 5 + i, key: value}) for i, (key, value) in enumerate(odd)]
    kept, skipped = consistent_rows(found)
    assert kept == [row]
    reasons = "\n".join(skipped)
    for text in ("variant is [1], not a name", "shots is [20], not a whole number", "shots is '20', not a whole",
                 "profile is {'name': 'paper'}, not a name", "split is ['test'], not a name"):
        assert text in reasons


def test_a_pseudo_labeled_row_also_gives_eq7_on_the_prototypes_alone():
    row = {"dataset": "mnist", "method": "pdd", "variant": "pddlite", "anomaly": 3, "seed": 0,
           "auroc": 0.9, "auprc": 0.5, "prototypes_only_auroc": 0.8, "prototypes_only_auprc": 0.3}
    series = collect([row], "mnist", "auprc")
    assert dict(series["pdd-pddlite"]) == {"3": [0.5]} and dict(series["pdd-pddlite-prototypes"]) == {"3": [0.3]}
    assert series_label("pdd-pddlite-prototypes") == "PDD (pddlite), Eq. 7 on the prototypes only"
    assert "prototypes_only_auroc is 1.5" in row_problem({**row, "prototypes_only_auroc": 1.5})


def test_one_run_shows_its_value_alone_not_a_zero_standard_deviation(tmp_path):
    assert mean_and_std_cell([0.5]) == "0.500"
    assert mean_and_std_cell([0.4, 0.6]) == f"0.500 \u00b1 {statistics.stdev([0.4, 0.6]):.3f}"
    write_results(tmp_path, datasets=("mnist",), methods=("pdd",), anomalies=(0, 1), reps=1)
    text = make_report(tmp_path)["summary"].read_text()
    assert "\u00b1 0.000" not in text
    first_class = [line for line in text.splitlines() if line.startswith("| 0 |")]
    assert any(f"| {value('mnist', 'pdd', 0, 0, 'auroc'):.3f} |" in line for line in first_class)


def _mcdd_rows(folder, dataset="mnist", reps=(0, 1), **change):
    for rep in reps:
        row = {"dataset": dataset, "anomaly": 1, "method": "mcdd", "rep": rep, "seed": rep, "profile": "smoke",
               "shots": 20, "split": "test", "settings": "s1", "precision": "fp32",
               "finished_at": f"2026-01-0{rep + 1}T00:00:00+00:00", "auroc": 0.8 + 0.01 * rep, "auprc": 0.3, **change}
        write_row(row, RunSpec("mnist", 1, "mcdd", rep).path(folder, "smoke").with_name(f"row{rep}.json"))


@pytest.mark.parametrize("dataset", ["/../../outside/escaped", "team/mnist", "..", "a\\b:c*?.png"])
def test_names_from_rows_never_become_paths_outside_the_report_folder(tmp_path, dataset):
    _mcdd_rows(tmp_path / "res" / "in", dataset=dataset)
    written = make_report(tmp_path / "res" / "in", tmp_path / "res" / "fig")
    figures = sorted((tmp_path / "res" / "fig").iterdir())
    assert {p.name for p in figures} == {"summary.md", written[f"auroc_vs_mcdd_{dataset}"].name}
    assert all(p.parent == tmp_path / "res" / "fig" for p in written.values())
    assert not list(tmp_path.glob("outside")) and not (tmp_path / "res" / "outside").exists()


def test_the_report_never_averages_across_precisions(tmp_path, capsys):
    _mcdd_rows(tmp_path / "res", reps=(0,), precision="fp32")
    _mcdd_rows(tmp_path / "res", reps=(1, 2), precision="bf16")
    make_report(tmp_path / "res", tmp_path / "fig")
    summary = (tmp_path / "fig" / "summary.md").read_text()
    assert summary.startswith("# Results\n\n2 runs") and "0.815" in summary  # the two bf16 rows alone
    assert "trained in fp32, the newest rows of mcdd in bf16" in capsys.readouterr().err


def test_shipped_rows_without_precision_or_data_still_make_a_report(tmp_path):
    _mcdd_rows(tmp_path / "res", precision=None)
    for path in (tmp_path / "res").rglob("*.json"):  # as older pddlite wrote them: neither field
        path.write_text(path.read_text().replace('"precision": null,', ""))
    make_report(tmp_path / "res", tmp_path / "fig")
    assert (tmp_path / "fig" / "summary.md").read_text().startswith("# Results\n\n2 runs")


def test_a_full_disk_while_drawing_is_one_line_and_leaves_no_empty_figure(tmp_path, monkeypatch):
    import errno

    import pddlite.files

    _mcdd_rows(tmp_path / "res")
    (tmp_path / "fig").mkdir()
    real_open = open

    class FullDisk:
        def __init__(self, path, mode="r"):
            self.fh = real_open(path, mode)

        def write(self, data):
            if len(data) and "pddlite-write-test" not in self.fh.name:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(pddlite.files, "open", FullDisk, raising=False)
    with pytest.raises(PDDLiteError, match=r"cannot write .*auroc_vs_mcdd_mnist.png \(No space left on device\)"):
        make_report(tmp_path / "res", tmp_path / "fig")
    assert list((tmp_path / "fig").iterdir()) == []

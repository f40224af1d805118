"""pddlite.measured: the shipped rows equal experiments/results, load as DataFrames and ship in the wheel."""

import importlib.util
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from pddlite.errors import PDDLiteError
from pddlite.measured import COLLECTIONS, rows, summary

ROOT = Path(__file__).resolve().parents[1]


def _ship_rows():
    spec = importlib.util.spec_from_file_location("ship_rows", ROOT / "experiments" / "ship_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_equal_what_experiments_results_build():
    ship = _ship_rows()
    built = ship.collections()
    assert set(built) == set(COLLECTIONS)
    for name, found in built.items():
        shipped = resources.files("pddlite.measured").joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
        assert shipped == ship.render(found), f"{name}.jsonl is stale: run python experiments/ship_rows.py"


def test_each_collection_reads_one_split_and_has_its_rows():
    test = rows("test")
    assert set(test["split"]) == {"test"}
    assert {"pdd-pddlite", "pdd-paper", "pdd-reference", "pixel-knn", "pixel-centroid"} <= set(test["series"])
    assert len(test[test["series"] == "pdd-pddlite"]) == 30  # ten anomaly classes x three seeds
    assert set(rows("validation")["split"]) == {"validation"}
    baselines = rows("baselines")
    assert set(baselines["split"]) == {"test"} and set(baselines["code"]) == {"before", "after"}
    assert set(baselines["series"]) == {"egbad", "ganomaly", "mcdd", "deepsvdd"}
    everything = rows()
    assert list(everything["collection"].unique()) == list(COLLECTIONS)


def test_summary_is_mean_sample_std_and_count():
    frame = pd.DataFrame({"series": ["a", "a", "b"], "auroc": [0.6, 0.8, 0.5], "auprc": [0.1, 0.3, 0.2]})
    table = summary(frame, "series")
    assert table.loc["a", ("auroc", "mean")] == pytest.approx(0.7)
    assert table.loc["a", ("auroc", "std")] == pytest.approx(0.1414213562, rel=1e-8)  # ddof = 1
    assert table.loc["b", ("auprc", "std")] == 0.0 and table.loc["b", ("auprc", "count")] == 1


def test_bad_names_say_what_to_choose():
    with pytest.raises(PDDLiteError, match="choose one of test, validation"):
        rows("grid")
    with pytest.raises(PDDLiteError, match="no column nope"):
        summary(rows("test"), "nope")


def test_the_wheel_carries_the_rows():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["pddlite.measured"]
    shipped = sorted(p.name for p in (ROOT / "pddlite" / "measured").glob("*.jsonl"))
    assert shipped == sorted(f"{name}.jsonl" for name in COLLECTIONS)
    assert all(any(Path(name).match(pattern) for pattern in patterns) for name in shipped)


def test_headline_lines_are_the_means_of_their_rows():
    import json

    from pddlite.measured import headline, records

    table = headline()
    shipped = [json.loads(line) for line in
               resources.files("pddlite.measured").joinpath("test.jsonl").read_text().splitlines()]
    pddlite = [r for r in shipped if r["method"] == "pdd" and r["variant"] == "pddlite"]
    by_hand = sum(r["prototypes_only_auroc"] for r in pddlite) / len(pddlite)
    assert table.loc["  the same tuned networks, Eq. 7 on the 180 prototypes alone", "AUROC"] == round(by_hand, 3)
    pixel = [r["auprc"] for r in shipped if r["method"] == "pixel-centroid"]
    assert table.loc["pixel centroid of the prototypes (no training)", "AUPRC"] == round(sum(pixel) / len(pixel), 3)
    assert table["runs"].max() == 30
    assert "variant" not in records(rows("baselines"))[0]  # missing fields are absent, as in result files

"""The grid throughput benchmark runs on the CPU (``--smoke``): real replicate workers, so it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_grid_throughput_smoke_measures_one_and_two_workers(tmp_path):
    out = tmp_path / "grid.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_throughput.py"), "--device", "cpu",
                           "--smoke", "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] and report["profile"] == "smoke" and report["workers"] == [1, 2]
    # K workers shared one folder and trained K runs between them, each written once
    measured = {r["workers"]: r for r in report["measured"]}
    assert {k: r["runs"] for k, r in measured.items()} == {1: 1, 2: 2}
    assert all(r["device"] == "cpu" and r["mean_run_seconds"] > 0 for r in measured.values())
    for k, r in measured.items():
        assert r["runs_per_hour"] == pytest.approx(k * 3600 / r["mean_run_seconds"])
    # every grid dataset at every K; MNIST measured, the other two scaled from it by the timed-step ratio
    estimates = report["estimates"]
    assert {(e["dataset"], e["workers"]) for e in estimates} == {
        (d, k) for d in ("mnist", "fashion-mnist", "cifar10") for k in (1, 2)}
    how = {e["dataset"]: e["how"] for e in estimates if e["workers"] == 1}
    assert how["mnist"] == "measured" and all("timed-step" in how[d] for d in ("fashion-mnist", "cifar10"))
    for k in (1, 2):
        mine = [e for e in estimates if e["workers"] == k]
        assert all(e["grid_seconds"] == pytest.approx(100 * 3600 / e["runs_per_hour"]) for e in mine)
        grid = report["grid"][str(k)]
        assert grid["seconds"] == pytest.approx(sum(e["grid_seconds"] for e in mine))
        assert sum(grid["share"].values()) == pytest.approx(1.0)
        mnist = next(e for e in mine if e["dataset"] == "mnist")
        assert mnist["runs_per_hour"] == pytest.approx(measured[k]["runs_per_hour"])
    assert "the whole grid" in done.stdout and "runs/h" in done.stdout

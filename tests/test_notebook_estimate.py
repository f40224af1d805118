"""The notebooks' estimated training time on a GPU not at hand: counted FLOPs per unit, summed per notebook."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebook_estimate", ROOT / "benchmarks" / "notebook_estimate.py")
notebook_estimate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebook_estimate)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_every_notebook_is_listed_and_its_estimate_is_its_units_over_the_rate():
    on_disk = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(notebook_estimate.NOTEBOOK_TRAININGS) == on_disk
    units = {unit: 1e12 * (i + 1) for i, unit in enumerate(
        {u for trainings in notebook_estimate.NOTEBOOK_TRAININGS.values() for u in trainings})}
    out = notebook_estimate.notebook_estimates(units, flops_per_second=2e12)
    notebook_4 = units["pdd-pretrain"] + units["pdd-tuneup"]
    assert out["04"] == {"tflop": notebook_4 / 1e12, "seconds": notebook_4 / 2e12}
    assert out["00"]["seconds"] == out["08"]["seconds"] == 0.0


def test_the_smoke_count_runs_and_writes_every_notebook(tmp_path):
    out = tmp_path / "estimate.json"
    assert notebook_estimate.main(["--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    units = report["units_tflop"]
    assert set(units) == {u for t in notebook_estimate.NOTEBOOK_TRAININGS.values() for u in t}
    assert all(v > 0 for v in units.values())
    # the tune-up and the pre-training were separated from one run and its control
    assert report["notebooks"]["04"]["tflop"] == pytest.approx(units["pdd-pretrain"] + units["pdd-tuneup"])
    assert report["notebooks"]["05"]["seconds"] > report["notebooks"]["04"]["seconds"] > 0

"""The prepared GPU check runs on the CPU (``--smoke``): the script cannot rot before a GPU is lent."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_item_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] and report["device"] == "cpu" and report["auto_precision"] == "fp32"
    items = report["items"]
    errors = {name: item["error"] for name, item in items.items() if "error" in item}
    assert not errors, errors
    # both image sizes in float32 and in float16 with loss scaling, then a real task
    for name in ("steps 28x28 fp32", "steps 28x28 fp16", "steps 64x64 fp32", "steps 64x64 fp16"):
        assert items[name]["pretrain_images_per_s"] > 0 and items[name]["tuneup_images_per_s"] > 0
    # and both steps through the library's compile=True path (the eager backend on a CPU)
    for name in ("steps 28x28 fp32 compiled", "steps 64x64 fp32 compiled"):
        assert items[name]["pretrain_images_per_s"] > 0 and items[name]["tuneup_images_per_s"] > 0
    assert items["paper MNIST task (estimate)"]["seconds"] > 0
    # the CUDA-graph items run their bookkeeping through the stand-in capture on a CPU
    for name in ("steps 28x28 fp32 cuda-graphs", "steps 64x64 fp32 cuda-graphs"):
        graph = items[name]["tuneup_graph"]
        assert graph["captures"] >= 1 and graph["replays"] >= 1 and graph["failure"] is None
    assert items["graphs agree 28x28 fp32"]["graphs vs eager"]["relative_weight_difference"] == 0.0
    assert items["paper MNIST task (measured) cuda-graphs"]["tuneup_graph"]["replays"] >= 1
    task = items["real task mnist-5k"]
    assert task["precision"] == "fp32" and 0.0 <= task["auroc"] <= 1.0 and 0.0 <= task["auprc"] <= 1.0
    assert task["estimated_training_seconds"] > 0

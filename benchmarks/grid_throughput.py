"""Runs per hour of the paper's grid on one device shared by K ``pddlite replicate`` workers, and the
hours the whole grid (3 datasets x 10 anomaly classes x 10 repetitions x 5 methods) would take.

    python benchmarks/grid_throughput.py --workers 1 2 4 8 --json grid_throughput.json   # paper profile
    python benchmarks/grid_throughput.py --device cpu --smoke                            # the test suite runs it

What is measured. For each method and each K, K ``pddlite replicate`` processes are started with
one command line and one results folder (the way several workers share a GPU: they split the runs
through the grid's claim files) on MNIST-shaped data: synthetic idx files in torchvision's MNIST
format (random pixels, ten balanced classes; a training step's cost does not depend on the
pixels), 60,000 training and 10,000 test images at ``paper`` as in MNIST, fewer with ``--smoke``
(``--train-images`` below a task's full count scales each run up by the ratio of unlabeled
training images, an upper bound since reading and scoring scale too; the output says so).
Each worker gets ``--runs-per-worker`` runs (real leave-one-class-out tasks: data reading,
training, scoring, and PDD's adversarial-only control, each row written as the grid writes it).

* **runs/h** = K x 3600 / (mean wall seconds of a run, as its row records it): the rate while all K
  workers run, which is what a worker that goes through hundreds of grid runs sees. Each
  measurement's line also gives the rate over the whole batch, process start-up (importing torch,
  opening the device) and the tail where fewer than K workers are left included.
* **speed-up** = runs/h at K over runs/h at K = 1, measured in the same invocation.
* **grid hours** = 100 runs (10 classes x 10 repetitions) of each method and dataset at its
  runs/h, summed: one device, K workers, one method at a time sharing it (the grid mixes methods;
  the estimate assumes a mix shares the device as each method shares it with itself).

Datasets that are not measured (``--measure``; default MNIST only) are scaled from MNIST's
measured runs, per method: by the ratio of their training time to MNIST's as
:meth:`training_estimate` of each detector times it in this process (one timed training step of
each stage at that dataset's shape, Table 2 batch size and network, the fastest of
``--step-timings``, x the steps its Table 2 epochs take over its number of unlabeled training
images). CIFAR-10 is 64x64x3 through Table 4's
networks, Fashion-MNIST has its own Table 2 epochs and batch sizes. The scaling applies the
training-time ratio to the whole run (reading data and scoring included) and assumes K workers
share the device in the same proportion at both shapes; ``--measure mnist fashion-mnist``
measures Fashion-MNIST directly (CIFAR-10's torchvision files carry checksums and cannot be
synthesised, so CIFAR-10 is always scaled). The output says which datasets were measured and
which scaled.

Absolute seconds drift on a shared machine; the figures hold for the device that ran the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pddlite.data import make_task_from_arrays  # noqa: E402
from pddlite.device import resolve_device  # noqa: E402
from pddlite.grid import load_results  # noqa: E402
from pddlite.methods import METHODS  # noqa: E402
from pddlite.profiles import get_profile  # noqa: E402
from tests.test_data import write_idx_images, write_idx_labels  # noqa: E402

#: the paper's grid (Sec. 5): five trained methods, three datasets, ten anomaly classes, ten repetitions
GRID_METHODS = ("pdd", "egbad", "ganomaly", "mcdd", "deepsvdd")
GRID_DATASETS = ("mnist", "fashion-mnist", "cifar10")
CLASSES, REPS, SHOTS = 10, 10, 20
#: each dataset's official (training, test) images and image shape (CIFAR-10 is resized to 64x64)
SIZES = {"mnist": (60_000, 10_000), "fashion-mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
SHAPES = {"mnist": (28, 28), "fashion-mnist": (28, 28), "cifar10": (32, 32, 3)}
#: the torchvision folder each MNIST-format dataset is read from
TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def write_synthetic_mnist(root: Path, datasets, n_train: int, n_test: int, seed: int = 0) -> None:
    """MNIST-shaped idx files (random pixels, ten balanced classes) in torchvision's layout under ``root``."""
    rng = np.random.default_rng(seed)
    for dataset in datasets:
        raw = root / TORCHVISION_FOLDER[dataset] / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            write_idx_images(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def batch_runs(k: int, runs_per_worker: int) -> tuple[list[int], int]:
    """(anomaly classes, repetitions) of a grid of ``k x runs_per_worker`` runs of one method (at
    least that many where k exceeds the ten classes), so that every worker is busy to the end."""
    classes = min(k, CLASSES)
    return list(range(classes)), math.ceil(k * runs_per_worker / classes)


def measure(method: str, dataset: str, k: int, args: argparse.Namespace, data_dir: Path, out: Path) -> dict:
    """Start ``k`` replicate workers on one folder; their rows' wall seconds and the batch's wall time."""
    anomalies, reps = batch_runs(k, args.runs_per_worker)
    command = [sys.executable, "-m", "pddlite", "replicate", "--datasets", dataset, "--methods", method,
               "--reps", str(reps), "--anomalies", *map(str, anomalies), "--profile", args.profile,
               "--device", args.device, "--precision", args.precision, "--data-dir", str(data_dir),
               "--out", str(out), "--no-progress"] + (["--cuda-graphs"] if args.cuda_graphs and method == "pdd" else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start = time.perf_counter()
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(k)]
    logs = [w.communicate()[0] for w in workers]
    batch_seconds = time.perf_counter() - start
    failed = [(w.returncode, log) for w, log in zip(workers, logs) if w.returncode != 0]
    if failed:
        raise SystemExit(f"a worker failed (exit {failed[0][0]}) on {method} {dataset} K={k}:\n{failed[0][1][-3000:]}")
    rows = load_results(out)  # the rows the workers wrote, read as `pddlite report` reads them
    if len(rows) != len(anomalies) * reps:
        raise SystemExit(f"{method} {dataset} K={k}: {len(rows)} rows for {len(anomalies) * reps} runs")
    mean_run = sum(r["wall_seconds"] for r in rows) / len(rows)
    return {"method": method, "dataset": dataset, "workers": k, "runs": len(rows), "mean_run_seconds": mean_run,
            "runs_per_hour": k * 3600 / mean_run, "batch_seconds": batch_seconds,
            "batch_runs_per_hour": len(rows) * 3600 / batch_seconds, "device": rows[0]["device"],
            "precision": rows[0]["precision"]}


def unlabeled_images(dataset: str, profile) -> int:
    """A task's unlabeled training images at full size: nine classes less the prototypes, capped by the profile."""
    n = SIZES[dataset][0] * (CLASSES - 1) // CLASSES - (CLASSES - 1) * SHOTS
    return min(n, profile.max_train_images) if profile.max_train_images else n


def probe_task(dataset: str, probe: int, device: torch.device):
    """A task of random images of ``dataset``'s shape, named ``dataset`` (so its Table 2 row and Deep
    SVDD's schedule apply), with about ``probe`` unlabeled training images."""
    rng = np.random.default_rng(0)
    n = probe * CLASSES // (CLASSES - 1) + (CLASSES - 1) * SHOTS + 2 * CLASSES
    images = rng.integers(0, 256, (n, *SHAPES[dataset]), dtype=np.uint8)
    if images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)  # N x 3 x 32 x 32, resized to 64x64 as CIFAR-10 is
    task = make_task_from_arrays(images, np.arange(n) % CLASSES, anomaly=0, shots=SHOTS, seed=0,
                                 test_fraction=CLASSES / n, device=device)
    return dataclasses.replace(task, dataset=dataset)


def scale_factors(method: str, args: argparse.Namespace, profile) -> dict[str, float]:
    """Each grid dataset's training time per run over MNIST's, for ``method`` (MNIST: 1).

    Training seconds per unlabeled image come from :meth:`training_estimate` (one timed step of each
    stage; PDD with its adversarial-only control) on a task of each dataset's shape with the same
    number of images, the fastest of ``args.step_timings`` after one uncounted round (taken in turn
    across the datasets, so that a change of load on the machine touches all of them), x each
    dataset's unlabeled images."""
    probe = min(2_000, unlabeled_images("mnist", profile))
    device = resolve_device(args.device)
    tasks = {d: probe_task(d, probe, device) for d in GRID_DATASETS}
    model = METHODS[method](profile=args.profile, device=args.device, progress=False, precision=args.precision)
    options = {"ablation": True} if method == "pdd" else {}
    per_image = {d: math.inf for d in GRID_DATASETS}
    for round_ in range(args.step_timings + 1):  # round 0 is not counted: the process's first steps are slower
        for d, task in tasks.items():
            seconds = model.training_estimate(task, **options).seconds
            if round_:
                per_image[d] = min(per_image[d], seconds / len(task.train_images))
    return {d: per_image[d] * unlabeled_images(d, profile) / (per_image["mnist"] * unlabeled_images("mnist", profile))
            for d in GRID_DATASETS}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None, help="paper (default), or smoke with --smoke")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--cuda-graphs", action="store_true", help="PDD runs with --cuda-graphs")
    p.add_argument("--methods", nargs="+", default=None, choices=GRID_METHODS,
                   help="default: the grid's five (--smoke: ganomaly)")
    p.add_argument("--workers", nargs="+", type=int, default=None, help="K values (default 1 2 4 8; --smoke: 1 2)")
    p.add_argument("--runs-per-worker", type=int, default=None, help="runs each worker trains (default 2; --smoke: 1)")
    p.add_argument("--measure", nargs="+", default=["mnist"], choices=tuple(TORCHVISION_FOLDER),
                   help="datasets measured with workers (the others are scaled from MNIST); default mnist")
    p.add_argument("--train-images", type=int, default=None,
                   help="synthetic training images (default: MNIST's 60,000; --smoke: 800)")
    p.add_argument("--test-images", type=int, default=None, help="synthetic test images (default 10,000; --smoke: 100)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each worker (CPU runs; --smoke: 1)")
    p.add_argument("--step-timings", type=int, default=None,
                   help="timed steps per stage for the scaling to other datasets; the fastest counts (default 3; --smoke: 1)")
    p.add_argument("--smoke", action="store_true", help="a CPU-sized check of the script: smoke profile, tiny data")
    p.add_argument("--json", default=None, help="also write the measurements to this file")
    args = p.parse_args(argv)
    smoke = args.smoke
    defaults = {  # (the paper's, --smoke's): K workers on a few CPU cores get one thread each
        "profile": ("paper", "smoke"), "methods": (list(GRID_METHODS), ["ganomaly"]), "workers": ([1, 2, 4, 8], [1, 2]),
        "runs_per_worker": (2, 1), "train_images": (SIZES["mnist"][0], 800), "test_images": (SIZES["mnist"][1], 100),
        "threads": (None, 1), "step_timings": (3, 1)}
    for name, (paper, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if smoke else paper)
    if min(args.workers) < 1 or args.runs_per_worker < 1 or args.step_timings < 1:
        p.error("--workers, --runs-per-worker and --step-timings must be at least 1")
    if 1 not in args.workers:
        args.workers = [1, *args.workers]  # the speed-ups are over one worker
    args.workers = sorted(set(args.workers))
    profile = get_profile(args.profile)
    device = resolve_device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    print(f"device: {card}; torch {torch.__version__}; profile {profile.name}; K = {args.workers}; "
          f"{args.runs_per_worker} run(s) per worker; MNIST-shaped synthetic data, {args.train_images:,} training "
          f"and {args.test_images:,} test images; measured: {', '.join(args.measure)}", flush=True)
    measured_images = min(args.train_images * (CLASSES - 1) // CLASSES - (CLASSES - 1) * SHOTS,
                          profile.max_train_images or math.inf)
    full = measured_images >= unlabeled_images("mnist", profile)
    size_factor = 1.0 if full else unlabeled_images("mnist", profile) / measured_images
    if not full:
        print(f"note: {args.train_images:,} training images is fewer than a {profile.name} MNIST task trains on; "
              f"each measured run is scaled by x{size_factor:.2f}, the ratio of unlabeled training images (an "
              "upper bound: data reading and scoring are scaled too)")

    measured = []
    with tempfile.TemporaryDirectory(prefix="grid-throughput-") as tmp:
        data_dir = Path(tmp) / "data"
        write_synthetic_mnist(data_dir, args.measure, args.train_images, args.test_images)
        for method in args.methods:
            for dataset in args.measure:
                for k in args.workers:
                    row = measure(method, dataset, k, args, data_dir, Path(tmp) / f"out-{method}-{dataset}-{k}")
                    measured.append(row)
                    print(f"  {method:<9}{dataset:<14}K={k:<3}{row['runs']:>3} runs, {row['mean_run_seconds']:8.1f} s "
                          f"per run, {row['runs_per_hour']:8.1f} runs/h ({row['batch_runs_per_hour']:.1f} over the "
                          f"batch of {row['batch_seconds']:.0f} s)", flush=True)

    estimates = []
    for method in args.methods:
        factors = scale_factors(method, args, profile)
        for k in args.workers:
            base = next(r for r in measured if r["method"] == method and r["dataset"] == "mnist" and r["workers"] == k)
            one = next(r for r in measured if r["method"] == method and r["dataset"] == "mnist" and r["workers"] == 1)
            for dataset in GRID_DATASETS:
                direct = next((r for r in measured if r["method"] == method and r["dataset"] == dataset
                               and r["workers"] == k), None)
                if direct is not None:
                    per_run = direct["mean_run_seconds"] * size_factor
                    how = "measured" if full else f"measured, x{size_factor:.2f} for the training images"
                else:
                    per_run = base["mean_run_seconds"] * size_factor * factors[dataset]
                    how = f"MNIST measured x{factors[dataset] * size_factor:.2f} (timed-step training ratio)"
                rate = k * 3600 / per_run
                estimates.append({"method": method, "dataset": dataset, "workers": k, "runs_per_hour": rate,
                                  "speedup_over_one_worker": base["runs_per_hour"] / one["runs_per_hour"],
                                  "grid_runs": CLASSES * REPS, "grid_seconds": CLASSES * REPS * 3600 / rate,
                                  "how": how})

    print(f"\n{'method':<10}{'K':>3}{'MNIST runs/h':>14}{'speed-up':>10}" +
          "".join(f"{d + ' grid':>20}" for d in GRID_DATASETS))
    for method in args.methods:
        for k in args.workers:
            mine = {e["dataset"]: e for e in estimates if e["method"] == method and e["workers"] == k}
            print(f"{method:<10}{k:>3}{mine['mnist']['runs_per_hour']:>14.1f}"
                  f"{mine['mnist']['speedup_over_one_worker']:>9.2f}x" +
                  "".join(f"{hours(mine[d]['grid_seconds']):>20}" for d in GRID_DATASETS))
    print(f"\nthe whole grid ({len(GRID_DATASETS)} datasets x {CLASSES} classes x {REPS} repetitions x "
          f"{len(args.methods)} method(s) = {len(GRID_DATASETS) * CLASSES * REPS * len(args.methods)} runs) "
          "on this one device:")
    grid = {}
    for k in args.workers:
        mine = [e for e in estimates if e["workers"] == k]
        total = sum(e["grid_seconds"] for e in mine)
        share = {d: sum(e["grid_seconds"] for e in mine if e["dataset"] == d) / total for d in GRID_DATASETS}
        grid[k] = {"seconds": total, "share": share}
        print(f"  K={k:<3}{hours(total):>10}   (" +
              ", ".join(f"{d} {100 * share[d]:.0f}%" for d in GRID_DATASETS) + ")")
    print("how each dataset's runs were obtained:")
    for e in estimates:
        if e["workers"] == 1:
            print(f"  {e['method']} {e['dataset']}: {e['how']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": card, "torch": torch.__version__, "profile": profile.name, "smoke": smoke,
            "workers": args.workers, "runs_per_worker": args.runs_per_worker, "train_images": args.train_images,
            "test_images": args.test_images, "measured_datasets": args.measure, "measured": measured,
            "estimates": estimates, "grid": {str(k): v for k, v in grid.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

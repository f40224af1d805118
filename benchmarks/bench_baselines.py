"""Training throughput of PDD and the baselines at paper settings, and the wall time of the full grid.

    python benchmarks/bench_baselines.py                      # every method, the three datasets
    python benchmarks/bench_baselines.py --device cpu --steps 3 --datasets mnist

For every method and dataset this builds the networks exactly as the estimator does (the
profile's width, Table 2's batch size, or Deep SVDD's own schedule), times ``--steps`` training
batches of each training stage side by side in one process (after ``--warmup`` batches), and
extrapolates (each stage is timed ``--repeats`` times; the fastest timing counts, the one least
disturbed by whatever else runs on the machine):

* images/s and seconds per epoch of each stage, on the dataset's number of unlabeled training
  images (the official training split less one class and the 9 x 20 prototypes);
* one run = the sum over stages of epochs x seconds per epoch (scoring the 10,000 test images is
  a single forward pass and is left out);
* ratios to PDD, per epoch (PDD's epoch = its run time over its pre-training + tune-up epochs, the
  way the paper reports "PDD: 1.0, EGBAD: 0.56, GANomaly: 0.84, MCDD: 1.4") and per run;
* the full grid: every run x 10 anomaly classes x ``--reps`` repetitions, on this machine.

Batches are random images of the dataset's shape: step time does not depend on the pixels.
The numbers hold for the machine and device that ran the script, nothing else.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pddlite.baselines import DeepSVDD, EGBAD, GANomaly, MCDD  # noqa: E402
from pddlite.baselines.deepsvdd import AutoencoderTrainer, SVDDTrainer  # noqa: E402
from pddlite.baselines.mcdd import MCDDTrainer, resolve_recipe  # noqa: E402
from pddlite.device import resolve_device, seed_everything  # noqa: E402
from pddlite.gan import GANTrainer  # noqa: E402
from pddlite.nets import init_weights, make_gan  # noqa: E402
from pddlite.pdd import PDD  # noqa: E402
from pddlite.profiles import get_profile  # noqa: E402
from pddlite.runtime import Runtime  # noqa: E402
from pddlite.tuneup import TuneUpTrainer  # noqa: E402

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 64, 64), "mnist-5k": (1, 28, 28)}
TRAIN_SIZE = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "mnist-5k": 4_000}
SHOTS, NORMAL_CLASSES = 20, 9
METHODS = ("pdd", "egbad", "ganomaly", "mcdd", "deepsvdd")


def unlabeled_images(dataset: str) -> int:
    """Unlabeled training images of one task: nine of ten classes, less the prototypes."""
    return TRAIN_SIZE[dataset] * NORMAL_CLASSES // 10 - NORMAL_CLASSES * SHOTS


def stages(method: str, dataset: str, profile, device: torch.device, n_images: int) -> list[dict]:
    """The training stages of one run: name, trainer, batch size and epochs, built as the estimators do."""
    shape = SHAPES[dataset]
    seed_everything(0)
    if method == "pdd":
        model = PDD(profile=profile, device=str(device), progress=False)
        model._start_fit()  # the resolved settings (config_) that fit would use
        sched = model.schedule(dataset)
        g, d = make_gan(shape, model.config_.width)
        g.apply(init_weights)
        d.apply(init_weights)
        g, d = g.to(device), d.to(device)
        protos = torch.rand(NORMAL_CLASSES * SHOTS, *shape, device=device) * 2 - 1
        labels = torch.arange(NORMAL_CLASSES, device=device).repeat_interleave(SHOTS)
        return [
            {"stage": "pre-training", "trainer": GANTrainer(g, d, runtime=Runtime(device=device)),
             "batch": sched["pretrain_batch_size"], "epochs": sched["pretrain_epochs"]},
            {"stage": "tune-up", "trainer": TuneUpTrainer(g, d, protos, labels, runtime=Runtime(device=device)),
             "batch": sched["tune_batch_size"], "epochs": sched["tune_epochs"]},
        ]
    if method in ("egbad", "ganomaly"):
        model = {"egbad": EGBAD, "ganomaly": GANomaly}[method](profile=profile, device=str(device), progress=False)
        model._start_fit()  # the resolved width and device, as fit has them
        model._build(shape, 0)
        sched = model.schedule(dataset, n_images)
        return [{"stage": "training", "trainer": model.trainer_, "batch": sched["batch_size"], "epochs": sched["epochs"]}]
    if method == "mcdd":
        model = MCDD(profile=profile, device=str(device), progress=False)
        model._start_fit()  # the resolved width and device, as fit has them
        model._build(shape, NORMAL_CLASSES)
        sched = model.schedule(dataset, n_images)
        labels = torch.randint(0, NORMAL_CLASSES, (n_images,), device=device)
        trainer = MCDDTrainer(model.net_, labels, recipe=resolve_recipe(model.recipe, shape), lr=model.lr,
                              reg_lambda=model.reg_lambda, epochs=sched["epochs"],
                              runtime=Runtime(device=device))
        return [{"stage": "training", "trainer": trainer, "batch": sched["batch_size"], "epochs": sched["epochs"]}]
    if method == "deepsvdd":
        model = DeepSVDD(profile=profile, device=str(device), progress=False)
        model._start_fit()  # the resolved width and device, as fit has them
        model._build(shape, 0)
        sched = model.schedule(dataset, n_images)
        center = torch.full((model.encoder_.rep_dim,), 0.1, device=device)
        return [
            {"stage": "autoencoder", "batch": sched["batch_size"], "epochs": sched["ae_epochs"],
             "trainer": AutoencoderTrainer(model.encoder_, model.decoder_, weight_decay=sched["ae_weight_decay"],
                                           runtime=Runtime(device=device))},
            {"stage": "one-class", "batch": sched["batch_size"], "epochs": sched["epochs"],
             "trainer": SVDDTrainer(model.encoder_, center, runtime=Runtime(device=device))},
        ]
    raise ValueError(method)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stage(stage: dict, images: torch.Tensor, steps: int, warmup: int, repeats: int, device: torch.device) -> float:
    """Seconds per training image of one stage: the fastest of ``repeats`` timings of ``steps``
    batches, after ``warmup`` batches (the minimum is the timing least disturbed by other load)."""
    trainer, batch = stage["trainer"], stage["batch"]
    for m in trainer.modules.values():
        m.train()
    if warmup:
        trainer.train_epoch(images[: warmup * batch], batch)
    best = float("inf")
    for _ in range(max(repeats, 1)):
        sync(device)
        start = time.perf_counter()
        trainer.train_epoch(images[: steps * batch], batch)  # exactly `steps` batches (drop_last)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best / (steps * batch)


def fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist", "cifar10"])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--profile", default="paper", help="network width and schedule (default: paper)")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20, help="timed batches per training stage")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    p.add_argument("--repeats", type=int, default=3, help="timings per stage; the fastest counts")
    p.add_argument("--reps", type=int, default=10, help="repetitions in the grid estimate")
    p.add_argument("--classes", type=int, default=10, help="anomaly classes per dataset in the grid estimate")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the measurements to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    profile = get_profile(args.profile)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; profile {profile.name} (width {profile.width}); "
          f"fastest of {args.repeats} timings of {args.steps} batches per stage, after {args.warmup} untimed")

    results = []
    cache: dict[tuple, float] = {}
    for dataset in args.datasets:
        n = unlabeled_images(dataset)
        for method in args.methods:
            run_stages = stages(method, dataset, profile, device, max(n, (args.steps + args.warmup) * 400))
            need = max(s["batch"] for s in run_stages) * max(args.steps, args.warmup)
            images = torch.rand(need, *SHAPES[dataset], device=device) * 2 - 1
            run_seconds, epochs = 0.0, 0
            detail = []
            for s in run_stages:
                key = (method, s["stage"], SHAPES[dataset], s["batch"])
                if key not in cache:  # Fashion-MNIST reuses MNIST's measurement when the batch is the same
                    cache[key] = time_stage(s, images, args.steps, args.warmup, args.repeats, device)
                per_image = cache[key]
                epoch_s = per_image * (n - n % s["batch"])
                run_seconds += epoch_s * s["epochs"]
                epochs += s["epochs"]
                detail.append({"stage": s["stage"], "batch": s["batch"], "epochs": s["epochs"],
                               "images_per_s": 1.0 / per_image, "seconds_per_epoch": epoch_s})
            results.append({"dataset": dataset, "method": method, "train_images": n, "stages": detail,
                            "epochs": epochs, "run_seconds": run_seconds, "seconds_per_epoch": run_seconds / max(epochs, 1)})
            del run_stages, images
            if device.type == "cuda":
                torch.cuda.empty_cache()

    header = f"{'dataset':<14}{'method':<10}{'stage':<14}{'batch':>6}{'epochs':>7}{'img/s':>10}{'s/epoch':>10}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        for s in r["stages"]:
            print(f"{r['dataset']:<14}{r['method']:<10}{s['stage']:<14}{s['batch']:>6}{s['epochs']:>7}"
                  f"{s['images_per_s']:>10.0f}{s['seconds_per_epoch']:>10.1f}")

    print(f"\n{'dataset':<14}{'method':<10}{'one run':>10}{'per epoch':>11}{'epoch/PDD':>11}{'run/PDD':>9}"
          f"{'grid share':>12}")
    total = 0.0
    per_dataset: dict[str, float] = {}
    for r in results:
        grid = r["run_seconds"] * args.classes * args.reps
        r["grid_seconds"] = grid
        total += grid
        per_dataset[r["dataset"]] = per_dataset.get(r["dataset"], 0.0) + grid
    for r in results:
        pdd = next((q for q in results if q["dataset"] == r["dataset"] and q["method"] == "pdd"), None)
        e_ratio = f"{r['seconds_per_epoch'] / pdd['seconds_per_epoch']:.2f}" if pdd else "-"
        r_ratio = f"{r['run_seconds'] / pdd['run_seconds']:.2f}" if pdd else "-"
        print(f"{r['dataset']:<14}{r['method']:<10}{fmt_time(r['run_seconds']):>10}{r['seconds_per_epoch']:>10.1f}s"
              f"{e_ratio:>11}{r_ratio:>9}{100 * r['grid_seconds'] / total:>11.1f}%")
    print(f"\nfull grid: {len(args.datasets)} datasets x {args.classes} anomaly classes x {len(args.methods)} methods x "
          f"{args.reps} repetitions = {len(results) * args.classes * args.reps} runs")
    for d, s in per_dataset.items():
        print(f"  {d:<14}{fmt_time(s):>10}")
    print(f"  {'total':<14}{fmt_time(total):>10}  (training only, one device, runs one after another; "
          f"split it with --shard k/n)")
    print("paper (Sec. 5.2, per epoch relative to PDD): EGBAD 0.56, GANomaly 0.84, MCDD 1.4")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "profile": profile.name, "steps": args.steps,
                                               "results": results, "grid_seconds": total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

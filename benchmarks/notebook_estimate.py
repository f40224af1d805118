"""The training time of each notebook in a profile on a GPU that is not at hand, from counted FLOPs.

    python benchmarks/notebook_estimate.py                        # colab, MNIST, an assumed 4 TFLOP/s (a T4)
    python benchmarks/notebook_estimate.py --tflops 8 --out estimate.json
    python benchmarks/notebook_estimate.py --smoke                # seconds, for the tests

No Colab T4 has run the series. Until one does, the notebooks' headers quote this script. For
every training a notebook runs, alone, from a bare machine (no checkpoint of an earlier notebook)
on MNIST with anomaly 1 and seed 0 (:data:`NOTEBOOK_TRAININGS`), it builds the detector as the
notebook does, counts one optimiser step of each of its training stages with
:mod:`torch.utils.flop_counter` (convolutions and matrix products, forward and backward) and
multiplies by the steps the profile gives it (:meth:`PDD.training_estimate
<pddlite.pdd.PDD.training_estimate>` with ``flops_per_second``). A notebook's estimate is its
FLOPs over the assumed rate.

The rate carries the estimate. The default, 4 TFLOP/s sustained, is the one ``colab``'s schedule
was sized by (:data:`pddlite.profiles.COLAB_STEPS`): 6% of a T4's float16 tensor-core peak and half
its float32 peak. For scale, the eager steps measured on an H200 (docs/performance.md) ran at 16-23 TFLOP/s,
held back by kernel launches rather than arithmetic. What is not counted: downloading and reading
the data, scoring, UMAP, plots and element-wise work; on the H200 these were most of notebook 4's
wall time (docs/course.md). The images are random
tensors of MNIST's shape (60,000 training, 10,000 test): a step's FLOPs do not depend on the
pixels. The count runs on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pddlite import ablation, toy  # noqa: E402
from pddlite.baselines import DeepSVDD, EGBAD, GANomaly, MCDD  # noqa: E402
from pddlite.data import Task, split_task  # noqa: E402
from pddlite.nets import make_gan  # noqa: E402
from pddlite.pdd import PDD  # noqa: E402
from pddlite.profiles import get_profile  # noqa: E402

#: The trainings of each notebook run alone from a bare machine, in units counted below. Read from
#: the notebooks: 1 trains a BiGAN on EGBAD's schedule and networks; 2 a five-epoch GAN demo and
#: the pre-training; 3 the pre-training and 2 x NET_STEPS margin steps on the prototypes; 4 the
#: tune-up (and one written-out step on the CPU, not counted); 5 the
#: tune-up, the control, three new values in each of five sweeps (the default value reuses the
#: tune-up) and the variant walk; 6 the grid's PDD run with its control and the four baselines;
#: 7 PDD on MNIST and on Fashion-MNIST; 0 and 8 (whose ``colab`` plan loads rows) train nothing.
NOTEBOOK_TRAININGS: dict[str, dict[str, int]] = {
    "00": {},
    "01": {"bigan": 1},
    "02": {"gan-demo": 1, "pdd-pretrain": 1},
    "03": {"pdd-pretrain": 1, "margin-descent": 1},
    "04": {"pdd-pretrain": 1, "pdd-tuneup": 1},
    "05": {"pdd-pretrain": 1, "pdd-tuneup": 2 + 5 * 3, "variant-walk": 1},
    "06": {"pdd-pretrain": 1, "pdd-tuneup": 2, "egbad": 1, "ganomaly": 1, "mcdd": 1, "deepsvdd": 1},
    "07": {"pdd-pretrain": 1, "pdd-tuneup": 1, "fashion-pretrain": 1, "fashion-tuneup": 1},
    "08": {},
}
DEMO_EPOCHS = 5  # notebook 2's GAN demo: at most 5 epochs of the pre-training's schedule
NET_STEPS = {"smoke": 20, "quick": 100, "colab": 300, "paper": 300}  # notebook 3's, per profile


def mnist_shaped_task(dataset: str, n_train: int, n_test: int, shots: int = 20, remove_prototypes: bool = True,
                      seed: int = 0) -> Task:
    """Anomaly 1 of ``dataset``'s name on random images of MNIST's shape, ten balanced classes."""
    g = torch.Generator().manual_seed(seed)
    x, tx = (torch.rand(n, 1, 28, 28, generator=g) * 2 - 1 for n in (n_train, n_test))
    y, ty = (torch.arange(n) % 10 for n in (n_train, n_test))
    return split_task(x, y, tx, ty, anomaly=1, shots=shots, seed=seed, dataset=dataset,
                      remove_prototypes=remove_prototypes)


def margin_descent_flops(task: Task, profile: str) -> float:
    """Notebook 3's Eq. 4 against Eq. 5 descent on the network: NET_STEPS steps of each of two losses,
    counted as the difference between two runs and one (the first run also embeds once more)."""
    from torch.utils.flop_counter import FlopCounterMode

    _, discriminator = make_gan(task.image_shape, get_profile(profile).width)  # untrained: the count is the same
    counted = []
    for steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            toy.compare_descent_network(discriminator, task.prototype_images, task.prototype_labels,
                                        losses=("margin_eq4", "margin"), steps=steps)
        counted.append(float(counter.get_total_flops()))
    return (counted[1] - counted[0]) * NET_STEPS[profile]


def variant_walk_flops(n_train: int, n_test: int, profile: str) -> float:
    """Notebook 5's walk (every step of :data:`pddlite.ablation.VARIANT_STEPS` after step 0, the
    notebook's own model): each step trains from scratch, except one that only rescores the model
    of the step before it (:func:`pddlite.ablation.scoring_changes`), as the walk runs it."""
    total = 0.0
    for step in range(1, len(ablation.VARIANT_STEPS)):
        if step > 1 and ablation.scoring_changes(step):
            continue
        _, task_args, pdd_args = ablation.VARIANT_STEPS[step]
        task = mnist_shaped_task("mnist", n_train, n_test, **task_args)
        opts = dict(pdd_args)
        model = PDD(profile=profile, device="cpu", seed=0, progress=False, variant=opts.pop("variant"), **opts)
        total += model.training_estimate(task, flops_per_second=1.0).flops
    return total


def unit_flops(profile: str, n_train: int, n_test: int) -> dict[str, float]:
    """The FLOPs of each unit of :data:`NOTEBOOK_TRAININGS` in ``profile``."""
    mnist = mnist_shaped_task("mnist", n_train, n_test)
    fashion = mnist_shaped_task("fashion-mnist", n_train, n_test)

    def pdd(task: Task, **options) -> tuple[float, float]:
        """(pre-training, tune-up) FLOPs: the run with its control counts the tune-up twice."""
        model = PDD(profile=profile, device="cpu", seed=0, progress=False, **options)
        run = model.training_estimate(task, flops_per_second=1.0).flops
        tuneup = model.training_estimate(task, ablation=True, flops_per_second=1.0).flops - run
        return run - tuneup, tuneup

    def baseline(cls) -> float:
        return cls(profile=profile, device="cpu", seed=0, progress=False).training_estimate(
            mnist, flops_per_second=1.0).flops

    pretrain, tuneup = pdd(mnist)
    fashion_pretrain, fashion_tuneup = pdd(fashion)
    epochs = PDD(profile=profile, device="cpu").schedule("mnist")["pretrain_epochs"]
    egbad = baseline(EGBAD)
    units = {
        "pdd-pretrain": pretrain,
        "pdd-tuneup": tuneup,
        "gan-demo": pretrain * min(DEMO_EPOCHS, epochs) / epochs,  # every epoch of a stage costs the same
        "fashion-pretrain": fashion_pretrain,
        "fashion-tuneup": fashion_tuneup,
        "bigan": egbad,
        "egbad": egbad,
        "ganomaly": baseline(GANomaly),
        "mcdd": baseline(MCDD),
        "deepsvdd": baseline(DeepSVDD),
        "margin-descent": margin_descent_flops(mnist, profile),
        "variant-walk": variant_walk_flops(n_train, n_test, profile),
    }
    return units


def notebook_estimates(units: dict[str, float], flops_per_second: float) -> dict[str, dict[str, float]]:
    """Per notebook: its FLOPs (the sum of its units) and the seconds they take at ``flops_per_second``."""
    out = {}
    for name, trainings in NOTEBOOK_TRAININGS.items():
        flops = sum(units[unit] * count for unit, count in Counter(trainings).items())
        out[name] = {"tflop": flops / 1e12, "seconds": flops / flops_per_second}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="colab", help="the profile to count (default: colab)")
    parser.add_argument("--tflops", type=float, default=4.0, help="assumed sustained TFLOP/s (default 4: a T4)")
    parser.add_argument("--smoke", action="store_true", help="the smoke profile on 2,000 images: seconds, for tests")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    if not args.tflops > 0:
        parser.error(f"--tflops must be a positive rate, got {args.tflops}")
    profile, n_train, n_test = ("smoke", 2_000, 500) if args.smoke else (args.profile, 60_000, 10_000)
    torch.manual_seed(0)
    start = time.perf_counter()
    units = unit_flops(profile, n_train, n_test)
    rate = args.tflops * 1e12
    notebooks = notebook_estimates(units, rate)
    print(f"profile {profile}, MNIST-shaped data ({n_train:,} training images), assumed {args.tflops:g} TFLOP/s; "
          f"counted in {time.perf_counter() - start:.0f} s")
    print(f"{'unit':18s} {'TFLOP':>9s} {'seconds':>8s}")
    for unit, flops in units.items():
        print(f"{unit:18s} {flops / 1e12:9.2f} {flops / rate:8.1f}")
    print(f"\n{'notebook':18s} {'TFLOP':>9s} {'minutes':>8s}")
    for name, est in notebooks.items():
        print(f"{name:18s} {est['tflop']:9.2f} {est['seconds'] / 60:8.1f}")
    if args.out:
        args.out.write_text(json.dumps({"profile": profile, "n_train": n_train, "assumed_tflops": args.tflops,
                                        "units_tflop": {k: v / 1e12 for k, v in units.items()},
                                        "notebooks": notebooks}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

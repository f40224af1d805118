"""Throughput of PDD's training steps and Eq. 7 scoring, measured side by side in one run.

    python benchmarks/bench_core.py [--device auto] [--steps 5] [--dataset-shape 1,28,28]

1. Images per second of a GAN pre-training step and of a tune-up step (one adversarial step plus
   one margin step on 180 prototypes) at paper width (Table 3) and batch size (Table 2: 200), and
   how close that is to the machine's limit: the floating-point operations of each step (counted
   by ``torch.utils.flop_counter``: convolutions and matrix products, forward and backward), the
   rate they run at, and the measured float32 matrix-multiply peak of the same device.
2. Eq. 7 scoring of 10,000 x 3,136 embeddings against 180 prototypes (9 classes x 20 shots):
   pddlite's PrototypeKDE (one matrix product, log space) against scikit-learn's KernelDensity
   (one per class), which computes the same log-densities.

Absolute seconds drift on a shared machine; the ratios printed at the end are the figures to quote.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pddlite.device import resolve_device
from pddlite.nets import init_weights, make_gan
from pddlite.runtime import Runtime
from pddlite.scoring import PrototypeKDE
from pddlite.tuneup import TuneUpTrainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_inputs(device: torch.device, shape: tuple[int, int, int], width: float = 1.0, batch: int = 200):
    """What one training step needs: a freshly initialised Table 3/4 GAN on ``device``, ``batch``
    random images and 9 x 20 random prototypes with their labels (step cost does not depend on pixels)."""
    torch.manual_seed(0)
    g, d = make_gan(shape, width)
    g.apply(init_weights)
    d.apply(init_weights)
    images = torch.rand(batch, *shape, device=device) * 2 - 1
    protos = torch.rand(180, *shape, device=device) * 2 - 1
    labels = torch.arange(9, device=device).repeat_interleave(20)
    return g.to(device), d.to(device), images, protos, labels


def training_throughput(device: torch.device, steps: int, shape: tuple[int, int, int], batch: int) -> dict[str, float]:
    g, d, _, protos, labels = step_inputs(device, shape, 1.0, batch)
    images = torch.rand(batch * 4, *shape, device=device) * 2 - 1
    trainer = TuneUpTrainer(g, d, protos, labels, runtime=Runtime(device=device))
    out = {}
    for name, step in (("pretrain", lambda x: trainer.step(x)),
                       ("tuneup", lambda x: (trainer.step(x), trainer.margin_step()))):
        step(images[:batch])  # warm-up (cuDNN autotune, allocator)
        _sync(device)
        start = time.perf_counter()
        for i in range(steps):
            step(images[(i % 4) * batch:(i % 4 + 1) * batch])
        _sync(device)
        out[name] = steps * batch / (time.perf_counter() - start)
    return out


def step_flops(device: torch.device, shape: tuple[int, int, int], batch: int) -> dict[str, float]:
    """Floating-point operations of one pre-training step and one tune-up step (counted, not timed)."""
    from torch.utils.flop_counter import FlopCounterMode

    g, d, images, protos, labels = step_inputs(device, shape, 1.0, batch)
    trainer = TuneUpTrainer(g, d, protos, labels, runtime=Runtime(device=device))
    out = {}
    for name, step in (("pretrain", lambda: trainer.step(images)),
                       ("tuneup", lambda: (trainer.step(images), trainer.margin_step()))):
        with FlopCounterMode(display=False) as counter:
            step()
        out[name] = float(counter.get_total_flops())
    return out


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-multiply rate of ``device`` in FLOP/s (2 n^3 per n x n product)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2.0 * n**3 / best


def scoring_times(n_test: int = 10_000, dim: int = 3_136, classes: int = 9, shots: int = 20, bandwidth: float = 10.0):
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (classes, dim))
    protos = (centres[:, None, :] + 0.3 * rng.normal(0, 1, (classes, shots, dim))).reshape(-1, dim)
    labels = np.repeat(np.arange(classes), shots)
    test = centres[rng.integers(0, classes, n_test)] + 0.3 * rng.normal(0, 1, (n_test, dim))

    start = time.perf_counter()
    ours = PrototypeKDE(bandwidth).fit(torch.from_numpy(protos), torch.from_numpy(labels))
    log_ours = ours.log_density(torch.from_numpy(test)).numpy()
    t_ours = time.perf_counter() - start

    start = time.perf_counter()
    log_sk = np.stack([
        KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(protos[labels == c]).score_samples(test)
        for c in range(classes)
    ], axis=1)
    t_sk = time.perf_counter() - start
    assert np.allclose(log_ours, log_sk, rtol=1e-9, atol=1e-6), "the two KDEs disagree"
    return t_ours, t_sk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--shape", default="1,28,28", help="1,28,28 (Table 3) or 3,64,64 (Table 4)")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    device = resolve_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    rates = training_throughput(device, args.steps, shape, args.batch)
    print(f"GAN pre-training step, width 1, batch {args.batch}: {rates['pretrain']:9.1f} images/s")
    print(f"tune-up step (adversarial + margin on 180):   {rates['tuneup']:9.1f} images/s")
    print(f"ratio tune-up / pre-training throughput: {rates['tuneup'] / rates['pretrain']:.2f}")
    per_epoch = {"pretrain": 54_000 / rates["pretrain"], "tuneup": 54_000 / rates["tuneup"]}
    print(f"estimated MNIST paper task (54,000 images, 20 + 40 epochs): "
          f"{(20 * per_epoch['pretrain'] + 40 * per_epoch['tuneup']) / 60:.1f} min on this device")

    flops = step_flops(device, shape, args.batch)
    peak = matmul_peak(device)
    print(f"float32 matrix-multiply peak measured on this device: {peak / 1e9:9.1f} GFLOP/s")
    for name, label in (("pretrain", "pre-training"), ("tuneup", "tune-up")):
        per_image = flops[name] / args.batch
        achieved = per_image * rates[name]
        print(f"{label:>12} step: {flops[name] / 1e9:7.2f} GFLOP per step ({per_image / 1e6:.1f} MFLOP per image), "
              f"{achieved / 1e9:7.1f} GFLOP/s = {achieved / peak:.0%} of the matrix-multiply peak")

    t_ours, t_sk = scoring_times()
    print(f"Eq. 7 log-densities, 10,000 x 3,136 vs 180 prototypes: pddlite {t_ours:.3f} s, "
          f"scikit-learn KernelDensity {t_sk:.3f} s")
    print(f"ratio scikit-learn / pddlite: {t_sk / t_ours:.1f}x")


if __name__ == "__main__":
    main()

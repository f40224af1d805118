"""Training profiles: how long and how wide to train (Table 2 of the paper, and CPU-sized runs).

* ``paper``: the networks of Tables 3-4 at full width, the batch sizes and epochs of Table 2, and
  the hyper-parameters of Sec. 5.1 (beta 3, w 10, q_intra 0.5, q_inter 0.25, Adam).
* ``quick``: a CPU-feasible run with real learning: half-width networks, 8 epochs of pre-training
  and a tune-up of 150 optimiser steps (3 epochs at the 10,000-image cap) at Table 2's batch
  size, the baselines sized by optimiser steps too (:data:`QUICK_STEPS`, about 3 minutes each on
  2 CPU cores), and at most 10,000 unlabeled training images.
* ``colab``: a Colab GPU session: the paper's full-width networks, 8 epochs of pre-training and a
  tune-up of 300 steps (3 epochs at its 20,000-image cap), the baselines by optimiser steps
  (:data:`COLAB_STEPS`), at most 20,000 unlabeled images; sized from counted FLOPs and an assumed
  T4 throughput (see :data:`COLAB_STEPS`).
* ``smoke``: seconds, for continuous integration: tiny networks, one epoch on 512 images.

The profile can also come from the ``PDDLITE_PROFILE`` environment variable (empty means unset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import canonical_dataset_name
from .errors import PDDLiteError
from .files import setting_from_environment
from .options import choice

#: Table 2 of the paper: (batch size, epochs) per method and dataset. mnist-5k uses MNIST's row.
TABLE2: dict[str, dict[str, tuple[int, int]]] = {
    "egbad": {"mnist": (100, 20), "fashion-mnist": (100, 30), "cifar10": (150, 30)},
    "ganomaly": {"mnist": (300, 15), "fashion-mnist": (300, 15), "cifar10": (300, 40)},
    "mcdd": {"mnist": (150, 40), "fashion-mnist": (150, 40), "cifar10": (200, 80)},
    "pdd-pretrain": {"mnist": (200, 20), "fashion-mnist": (100, 40), "cifar10": (200, 30)},
    "pdd-tuneup": {"mnist": (200, 40), "fashion-mnist": (100, 40), "cifar10": (200, 30)},
}


def table2_dataset(dataset: str) -> str:
    """The dataset whose Table 2 row (and Deep SVDD schedule) a dataset uses: mnist-5k and arrays use MNIST's."""
    key = canonical_dataset_name(dataset) if dataset != "arrays" else "mnist"
    return "mnist" if key == "mnist-5k" else key


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How a run is sized, built by keyword. ``epoch_fraction`` scales Table 2's epochs (at least ``min_epochs``)."""

    name: str
    width: float
    epoch_fraction: float
    min_epochs: int
    max_train_images: int | None
    batch_size: int | None  # None: Table 2's batch size
    description: str
    fixed_epochs: dict[str, int] = field(default_factory=dict)  # per method, instead of the fraction
    steps: dict[str, int] = field(default_factory=dict)  # per method: this many optimiser steps, not the fraction

    def schedule(self, method: str, dataset: str, n_images: int | None = None) -> tuple[int, int]:
        """(batch size, epochs) for ``method`` (a key of :data:`TABLE2`) on ``dataset``. Where the
        profile sizes the method by optimiser steps (``steps``) and the number of training images
        is given, the epochs that make those steps; otherwise Table 2's epochs scaled."""
        if method not in TABLE2:
            raise PDDLiteError(f"no Table 2 entry for {method!r}; known: {', '.join(TABLE2)}")
        batch, epochs = TABLE2[method][table2_dataset(dataset)]
        batch = self.batch_size or batch
        return batch, self.epochs_for_steps(method, self.scale_epochs(epochs, method), batch, n_images)

    def scale_epochs(self, epochs: int, method: str) -> int:
        """A full schedule's ``epochs`` at this profile: its ``fixed_epochs`` entry for ``method``
        where it has one, else ``epoch_fraction`` of them (at least ``min_epochs``)."""
        if method in self.fixed_epochs:
            return int(self.fixed_epochs[method])
        return max(self.min_epochs, int(round(epochs * self.epoch_fraction)))

    def epochs_for_steps(self, method: str, epochs: int, batch_size: int, n_images: int | None) -> int:
        """The fewest epochs with at least ``steps[method]`` optimiser steps over ``n_images``
        (full batches only, as :func:`pddlite.data.batches` draws them); ``epochs`` where the
        profile gives the method no step count or the number of images is unknown."""
        want = self.steps.get(method)
        if not want or not n_images:
            return epochs
        per_epoch = max(1, n_images // min(batch_size, n_images))
        return max(1, -(-want // per_epoch))


#: The optimiser steps of the PDD tune-up and of each baseline in ``quick``, whatever the number
#: of training images (a quarter of Table 2's epochs gave GANomaly 132 generator steps on 10,000
#: images but 36 on mnist-5k). Each baseline is sized to about ``quick``'s budget of 3 minutes per
#: task on 2 CPU cores, from ``benchmarks/bench_baselines.py --profile quick --datasets mnist-5k``
#: (seconds per step: GANomaly 1.15 at batch 300, EGBAD 0.46 at batch 100, MCDD 0.024, Deep SVDD
#: 0.06 + 0.03), so GANomaly gets the fewest. The PDD tune-up's 150 steps are its 3 epochs at the
#: 10,000-image cap; on mnist-5k's ~3,400 unlabeled images 3 epochs were only 51 steps, and on
#: its validation tasks (ten classes, three seeds; docs/results.md) 156 steps gave a mean AUROC / AUPRC of
#: 0.836 / 0.365 against 0.821 / 0.332 after 39. PDD's pre-training keeps its 8 epochs.
QUICK_STEPS: dict[str, int] = {
    "pdd-tuneup": 150,
    "egbad": 400, "ganomaly": 150, "mcdd": 2000, "deepsvdd": 1500, "deepsvdd-autoencoder": 1500,
}

#: ``colab``'s optimiser steps per baseline: twice ``quick``'s count of images seen (batch sizes
#: as Table 2), at full width. Sizing, an estimate until ``benchmarks/gpu_check.py`` has run on a
#: T4: a PDD step at full width and batch 200 is ~165 GFLOP (counted, ``bench_core.py``); 8 + 3
#: epochs of 100 steps on 20,000 images, plus the adversarial-only control's 3 epochs, are
#: ~230 TFLOP, about 1 minute at an assumed 4 TFLOP/s sustained (6% of a T4's float16 tensor peak of
#: 65 TFLOP/s; these small convolutions at batch 200 are far from it), so that a notebook that
#: trains a few models stays well inside 15 minutes.
COLAB_STEPS: dict[str, int] = {k: 2 * v for k, v in QUICK_STEPS.items()}

PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper", width=1.0, epoch_fraction=1.0, min_epochs=1, max_train_images=None, batch_size=None,
        description="Table 2 batch sizes and epochs, full-width Table 3/4 networks (a GPU run)"),
    "quick": Profile(
        name="quick", width=0.5, epoch_fraction=0.25, min_epochs=2, max_train_images=10_000, batch_size=None,
        description="half-width networks, PDD 8 pre-training epochs + 150 tune-up steps, baselines by "
                    "QUICK_STEPS optimiser steps, <= 10,000 training images (CPU, minutes)",
        fixed_epochs={"pdd-pretrain": 8, "pdd-tuneup": 3}, steps=QUICK_STEPS),
    "colab": Profile(
        name="colab", width=1.0, epoch_fraction=0.25, min_epochs=2, max_train_images=20_000, batch_size=None,
        description="Table 3/4 networks at full width, PDD 8 epochs + 300 tune-up steps, baselines by optimiser "
                    "steps, <= 20,000 training images (one task in a few minutes on a Colab T4)",
        fixed_epochs={"pdd-pretrain": 8, "pdd-tuneup": 3}, steps=COLAB_STEPS),
    "smoke": Profile(
        name="smoke", width=0.125, epoch_fraction=0.0, min_epochs=1, max_train_images=512, batch_size=64,
        description="tiny networks, one epoch on 512 images (seconds; for CI)"),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """A profile by name; ``None`` reads ``PDDLITE_PROFILE`` (empty: unset) and falls back to ``quick``."""
    if isinstance(name, Profile):
        return name
    if name is None:
        chosen = setting_from_environment("PDDLITE_PROFILE")
        if chosen is not None and chosen.lower() not in PROFILES:
            raise PDDLiteError(f"the environment variable PDDLITE_PROFILE is {chosen!r}, not a profile; set it to one "
                               f"of: {', '.join(PROFILES)} (or unset it)")
        name = chosen or "quick"
    key = str(name).strip().lower()
    return PROFILES[choice("profile", key, PROFILES)]

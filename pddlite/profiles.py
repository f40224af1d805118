"""Training profiles: how long and how wide to train (Table 2 of the paper, and CPU-sized runs).

* ``paper``: the networks of Tables 3-4 at full width, the batch sizes and epochs of Table 2, and
  the hyper-parameters of Sec. 5.1 (beta 3, w 10, q_intra 0.5, q_inter 0.25, Adam).
* ``quick``: a CPU-feasible run with real learning: half-width networks, 8 epochs of pre-training
  and 3 of tune-up at Table 2's batch size (a quarter of Table 2's epochs for the baselines), and at
  most 10,000 unlabeled training images.
* ``smoke``: seconds, for continuous integration: tiny networks, one epoch on 512 images.

The profile can also come from the ``PDDLITE_PROFILE`` environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .data import canonical_dataset_name
from .errors import PDDLiteError

#: Table 2 of the paper: (batch size, epochs) per method and dataset. mnist-5k uses MNIST's row.
TABLE2: dict[str, dict[str, tuple[int, int]]] = {
    "egbad": {"mnist": (100, 20), "fashion-mnist": (100, 30), "cifar10": (150, 30)},
    "ganomaly": {"mnist": (300, 15), "fashion-mnist": (300, 15), "cifar10": (300, 40)},
    "mcdd": {"mnist": (150, 40), "fashion-mnist": (150, 40), "cifar10": (200, 80)},
    "pdd-pretrain": {"mnist": (200, 20), "fashion-mnist": (100, 40), "cifar10": (200, 30)},
    "pdd-tuneup": {"mnist": (200, 40), "fashion-mnist": (100, 40), "cifar10": (200, 30)},
}


@dataclass(frozen=True)
class Profile:
    """How a run is sized. ``epoch_fraction`` scales Table 2's epochs (at least ``min_epochs``)."""

    name: str
    width: float
    epoch_fraction: float
    min_epochs: int
    max_train_images: int | None
    batch_size: int | None  # None: Table 2's batch size
    description: str
    fixed_epochs: dict[str, int] = field(default_factory=dict)  # per method, instead of the fraction

    def schedule(self, method: str, dataset: str) -> tuple[int, int]:
        """(batch size, epochs) for ``method`` (a key of :data:`TABLE2`) on ``dataset``."""
        if method not in TABLE2:
            raise PDDLiteError(f"no Table 2 entry for {method!r}; known: {', '.join(TABLE2)}")
        key = canonical_dataset_name(dataset) if dataset != "arrays" else "mnist"
        key = "mnist" if key == "mnist-5k" else key
        batch, epochs = TABLE2[method][key]
        epochs = self.fixed_epochs.get(method, max(self.min_epochs, int(round(epochs * self.epoch_fraction))))
        return (self.batch_size or batch), epochs


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", 1.0, 1.0, 1, None, None,
                     "Table 2 batch sizes and epochs, full-width Table 3/4 networks (a GPU run)"),
    "quick": Profile("quick", 0.5, 0.25, 2, 10_000, None,
                     "half-width networks, 8 + 3 PDD epochs (a quarter of Table 2's for the baselines), "
                     "<= 10,000 training images (CPU, minutes)",
                     {"pdd-pretrain": 8, "pdd-tuneup": 3}),
    "smoke": Profile("smoke", 0.125, 0.0, 1, 512, 64,
                     "tiny networks, one epoch on 512 images (seconds; for CI)"),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """A profile by name; ``None`` reads ``PDDLITE_PROFILE`` and falls back to ``quick``."""
    if isinstance(name, Profile):
        return name
    if name is None:
        name = os.environ.get("PDDLITE_PROFILE", "quick")
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise PDDLiteError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[key]

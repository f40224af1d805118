"""The run-time options travel as one Runtime: from run_task and the grid down to the trainers."""

from __future__ import annotations

import pytest
import torch

from pddlite import PDDLiteError
from pddlite.experiment import run_task
from pddlite.grid import replicate
from pddlite.runtime import Runtime
from pddlite.trainer import EpochTrainer


def test_with_seed_changes_the_seed_and_nothing_else():
    given = Runtime(device="cpu", seed=3, progress=False, precision="fp32", compile=True)
    moved = given.with_seed(3 + 7919)
    assert moved.seed == 7922 and given.seed == 3
    assert moved == Runtime(device="cpu", seed=7922, progress=False, precision="fp32", compile=True)


def test_a_trainer_built_with_the_defaults_resolves_them_itself():
    trainer = EpochTrainer()
    assert isinstance(trainer.device, torch.device) and trainer.seed == 0
    assert trainer.precision.name in ("fp32", "bf16", "fp16") and not trainer.compile and not trainer.cuda_graphs
    # a resolved Runtime resolves to itself: a detector's runtime_ reaches its trainers unchanged
    resolved = Runtime(device="cpu", seed=5).resolved()
    assert EpochTrainer(resolved).runtime == resolved


@pytest.mark.parametrize("loose", [{"device": "cpu"}, {"seed": 1}, {"cuda_graphs": True}, {"precision": "fp32"}])
def test_run_task_refuses_a_run_time_option_given_on_its_own(loose):
    name = next(iter(loose))
    with pytest.raises(PDDLiteError, match=rf"one runtime=Runtime\(\.\.\.\), not as {name}=.*runtime=Runtime\({name}="):
        run_task("mnist-5k", 1, profile="smoke", method="pixel-knn", **loose)


def test_the_grid_refuses_a_seed_of_its_own_before_any_run(tmp_path):
    with pytest.raises(PDDLiteError, match="the grid's seeds are its repetitions"):
        replicate(["mnist-5k"], ["pixel-knn"], reps=1, anomalies=[1], profile="smoke", out_dir=tmp_path / "out",
                  progress=False, runtime=Runtime(device="cpu", seed=4))
    assert not (tmp_path / "out").exists()

"""EpochTrainer: the loop every model shares, with no GAN in it: batches, history, resumable state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pddlite.errors import PDDLiteError
from pddlite.runtime import Runtime
from pddlite.trainer import EpochTrainer, is_compiled

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class LineFit(EpochTrainer):
    """The smallest trainer: least squares of a linear map, one Adam step per batch."""

    loss_names = ("mse",)

    def __init__(self, seed: int = 0, compile: bool = False):
        super().__init__(Runtime(device="cpu", seed=seed, precision="fp32", compile=compile))
        torch.manual_seed(seed)
        self.net = nn.Linear(3, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=0.05)}
        self.epochs_started = 0
        self.seen: list[torch.Tensor] = []

    def start_epoch(self) -> None:
        self.epochs_started += 1

    def batch_losses(self, batch):
        self.seen.append(batch[:, 0].clone())
        x, y = batch[:, :3], batch[:, 3:]
        loss = ((self.net(x) - y) ** 2).mean()
        self.optimize(loss, self.optimizers["net"])
        return (loss.detach(),)


def data(n: int = 64) -> torch.Tensor:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    return torch.cat([x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3], dim=1)


def test_fit_runs_whole_epochs_of_full_shuffled_batches_and_records_the_mean_loss():
    trainer = LineFit()
    history = trainer.fit(data(), epochs=3, batch_size=16, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3] and trainer.epochs_started == 3
    assert len(trainer.seen) == 3 * 4 and all(len(b) == 16 for b in trainer.seen)
    first_epoch = torch.cat(trainer.seen[:4])
    assert sorted(first_epoch.tolist()) == sorted(data()[:, 0].tolist())  # every image once per epoch
    assert not torch.equal(first_epoch, data()[:, 0])  # in a shuffled order
    assert history[-1]["mse"] < history[0]["mse"]


def test_an_interrupted_run_resumes_to_the_same_weights_and_history():
    straight = LineFit()
    straight.fit(data(), epochs=4, batch_size=16, progress=False)
    first = LineFit()
    first.fit(data(), epochs=2, batch_size=16, progress=False)
    resumed = LineFit(seed=9)  # other initial weights: everything must come from the state
    resumed.load_state_dict(first.state_dict())
    resumed.fit(data(), epochs=4, batch_size=16, progress=False)
    assert resumed.epochs_started == 2  # only the two missing epochs ran
    assert resumed.history == straight.history
    for a, b in zip(resumed.net.parameters(), straight.net.parameters()):
        assert torch.equal(a, b)


def test_on_epoch_end_sees_each_finished_epoch():
    seen = []
    LineFit().fit(data(), epochs=2, batch_size=32, progress=False, on_epoch_end=lambda t: seen.append(t.epoch))
    assert seen == [1, 2]


def test_compile_compiles_each_network_once_in_place_and_trains_to_the_same_weights(eager_compile):
    plain, compiled = LineFit(), LineFit(compile=True)
    keys = list(compiled.net.state_dict())
    for epochs in (2, 3):  # a resumed fit does not compile again
        plain.fit(data(), epochs=epochs, batch_size=16, progress=False)
        compiled.fit(data(), epochs=epochs, batch_size=16, progress=False)
    assert eager_compile == [compiled.net] and is_compiled(compiled.net) and not is_compiled(plain.net)
    assert list(compiled.net.state_dict()) == keys  # in place: no "_orig_mod." prefix in checkpoints
    # the eager backend runs the same operations: compiling changed nothing but how they are called
    assert compiled.history == plain.history
    assert all(torch.equal(a, b) for a, b in zip(compiled.net.parameters(), plain.net.parameters()))
    sharing = LineFit(compile=True)  # a second trainer of the same network (PDD's two stages)
    sharing.modules = {"net": compiled.net}
    sharing.prepare_to_train()
    assert eager_compile == [compiled.net]


def test_a_deep_copy_of_a_compiled_trainer_is_uncompiled_and_compile_must_be_true_or_false(eager_compile):
    import copy

    trainer = LineFit(compile=True)
    trainer.prepare_to_train()
    assert is_compiled(trainer.net) and not is_compiled(copy.deepcopy(trainer).net)
    with pytest.raises(PDDLiteError, match="compile must be True or False, got 'yes'"):
        EpochTrainer(Runtime(device="cpu", compile="yes"))

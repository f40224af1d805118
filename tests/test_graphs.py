"""CUDA graphs of whole training steps (pddlite.graphs): the bookkeeping, checked on the CPU.

A real capture needs a GPU (benchmarks/gpu_check.py runs one). Here the stand-in ReplayEagerly
re-runs the step on the static batch at every replay: a graph replays exactly what it recorded on
those tensors, so training through the stand-in must equal eager training bit for bit, and any
step that read something other than its static batch, or skipped or repeated a batch, would not.
"""

from __future__ import annotations

import pytest
import torch

from pddlite import PDD
from pddlite.device import Precision
from pddlite.errors import PDDLiteError
from pddlite.gan import GANTrainer
from pddlite.graphs import (ReplayEagerly, StepGraph, WARMUP_STEPS, flatten, host_syncs, make_capturable,
                            unsupported_setting)
from pddlite.margins import NotebookTerms
from pddlite.nets import init_weights, make_gan
from pddlite.runtime import Runtime
from pddlite.tuneup import TuneUpTrainer

CPU = Runtime(device="cpu")

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class FailingCapture:
    def __init__(self, step, static_batch):
        raise RuntimeError("operation not permitted when stream is capturing")


def gan(seed=0):
    torch.manual_seed(seed)
    g, d = make_gan((1, 28, 28), width=0.125)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


def images(n=48):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1


def prototypes():
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(4)) * 2 - 1
    return x, torch.arange(3).repeat_interleave(4)


def tuneup(augment=False, margin="eq56"):
    g, d = gan()
    x, y = prototypes()
    return TuneUpTrainer(g, d, x, y, margin=margin, augment=augment, ema_decay=0.9, runtime=CPU)


def weights(trainer):
    return [t.detach().clone() for m in trainer.modules.values() for t in m.state_dict().values()]


@pytest.mark.parametrize("make", [lambda: GANTrainer(*gan(), runtime=CPU), lambda: tuneup(augment=True)],
                         ids=["pre-training", "tune-up with augmented prototypes"])
def test_training_through_replays_equals_eager_training_bit_for_bit(make):
    eager, graphed = make(), make()
    graphed.step_graph = StepGraph(graphed.batch_losses, capture=ReplayEagerly)
    eager.fit(images(), epochs=3, batch_size=8, progress=False)
    graphed.fit(images(), epochs=3, batch_size=8, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(eager), weights(graphed)))
    assert eager.history == graphed.history
    # 3 epochs of 6 steps: the warm-up steps, then one capture per epoch (recaptured at each start)
    assert graphed.step_graph.counts == {"eager": WARMUP_STEPS, "captures": 3, "replays": 18 - WARMUP_STEPS}


def test_a_failed_capture_warns_once_and_trains_on_eagerly():
    eager, graphed = GANTrainer(*gan(), runtime=CPU), GANTrainer(*gan(), runtime=CPU)
    graphed.step_graph = StepGraph(graphed.batch_losses, capture=FailingCapture)
    eager.fit(images(), epochs=2, batch_size=8, progress=False)
    with pytest.warns(RuntimeWarning, match="could not be captured") as caught:
        graphed.fit(images(), epochs=2, batch_size=8, progress=False)
    assert len(caught) == 1 and "stream is capturing" in graphed.step_graph.failure
    assert graphed.step_graph.counts == {"eager": 12, "captures": 0, "replays": 0}
    assert all(torch.equal(a, b) for a, b in zip(weights(eager), weights(graphed)))


def test_a_batch_of_another_shape_runs_eagerly_and_the_captured_one_replays_after():
    calls = []

    def step(batch):
        calls.append(batch.shape[0])
        return (batch.sum(),)

    graph = StepGraph(step, warmup=1, capture=ReplayEagerly)
    graph(torch.ones(4))  # warm-up
    assert graph(torch.ones(4))[0].item() == 4.0  # captured, then replayed
    assert graph(torch.ones(3))[0].item() == 3.0  # another shape: eager
    assert graph(torch.full((4,), 2.0))[0].item() == 8.0  # replayed on the new values
    assert graph.counts == {"eager": 2, "captures": 1, "replays": 2} and calls == [4, 4, 3, 4]


def test_flatten_rebuilds_nested_tuples_and_refuses_other_batches():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    leaves, rebuild = flatten((a, (b, c), ()))
    assert [t.shape[0] for t in leaves] == [1, 2, 3]
    rebuilt = rebuild(leaves)
    assert rebuilt[0] is a and rebuilt[1][0] is b and rebuilt[1][1] is c and rebuilt[2] == ()
    with pytest.raises(TypeError, match="tensor or a tuple"):
        flatten([a, b])


def test_the_steps_draw_every_random_number_in_select_and_none_inside():
    trainer = tuneup(augment=True)
    trainer.prepare_to_train()
    batch = trainer.select(images(), torch.arange(8))
    noise_state, view_state = trainer.noise_generator.get_state(), trainer.augment_generator.get_state()
    trainer.batch_losses(batch)
    assert torch.equal(trainer.noise_generator.get_state(), noise_state)
    assert torch.equal(trainer.augment_generator.get_state(), view_state)


def test_noise_drawn_before_the_step_is_the_noise_an_eager_step_draws():
    """Drawing the step's noise in select changed no number: a step with its noise given equals one
    that draws it itself, from the same generator state."""
    first, second = GANTrainer(*gan(), runtime=CPU), GANTrainer(*gan(), runtime=CPU)
    real = images(8)
    assert [t.item() for t in first.step(real, fake_factor=2)] == \
        [t.item() for t in second.step(real, noise=second.step_noise(8, fake_factor=2))]
    assert all(torch.equal(a, b) for a, b in zip(weights(first), weights(second)))


def no_optimiser_steps(trainer):
    """The optimisers' steps switched off: on the CPU Adam reads its step count on the host, which
    a capturable Adam on a GPU does not (make_capturable)."""
    for optimizer in trainer.optimizers.values():
        optimizer.step = lambda *args, **kwargs: None


def test_host_syncs_names_what_would_make_the_host_wait():
    x = torch.arange(6.0)
    assert host_syncs(lambda: x.sum().item()) == ["_local_scalar_dense"]
    assert host_syncs(lambda: x[x > 2]) == ["index (boolean mask)"]
    assert host_syncs(lambda: torch.unique(x)) != []
    assert host_syncs(lambda: (x * 2).sort().values[3]) == []


def test_the_pretraining_and_eq56_tuneup_steps_have_no_host_sync_and_the_reference_terms_do():
    for trainer in (GANTrainer(*gan(), runtime=CPU), tuneup(augment=True)):
        no_optimiser_steps(trainer)
        trainer.prepare_to_train()
        batch = trainer.select(images(), torch.arange(8))
        trainer.batch_losses(batch)  # the first step finds the prototype pairs (a sync, once)
        assert host_syncs(trainer.batch_losses, batch) == [], type(trainer).__name__
        assert trainer.graph_unsupported() is None
    reference = tuneup(margin=NotebookTerms())
    no_optimiser_steps(reference)
    reference.prepare_to_train()
    assert host_syncs(reference.batch_losses, reference.select(images(), torch.arange(8))) != []
    assert "cannot be a CUDA graph" in reference.graph_unsupported()


def test_cuda_graphs_are_refused_in_one_line_where_they_cannot_work():
    cuda = torch.device("cuda")
    assert "CUDA device" in unsupported_setting(torch.device("cpu"), Precision("fp32", "cpu"), False)
    assert "bf16 or fp32" in unsupported_setting(cuda, Precision("fp16", "cuda"), False)
    assert "one of compile" in unsupported_setting(cuda, Precision("bf16", "cuda"), True)
    assert unsupported_setting(cuda, Precision("bf16", "cuda"), False) is None
    with pytest.raises(PDDLiteError, match="CUDA device.*drop cuda_graphs"):
        PDD(profile="smoke", device="cpu", cuda_graphs=True)
    with pytest.raises(PDDLiteError, match="must be True or False"):
        PDD(profile="smoke", device="cpu", cuda_graphs="yes")
    trainer = GANTrainer(*gan(), runtime=Runtime(device="cpu", cuda_graphs=True))
    with pytest.raises(PDDLiteError, match="CUDA device"):
        trainer.fit(images(), epochs=1, batch_size=8, progress=False)


def test_make_capturable_sets_the_flag_that_loading_a_state_resets():
    trainer = GANTrainer(*gan(), runtime=CPU)
    trainer.fit(images(), epochs=1, batch_size=8, progress=False)
    state = trainer.state_dict()
    for optimizer in trainer.optimizers.values():
        make_capturable(optimizer)
        assert all(group["capturable"] for group in optimizer.param_groups)
    trainer.step_graph = StepGraph(trainer.batch_losses, capture=ReplayEagerly)
    trainer.load_state_dict(state)
    assert trainer.step_graph is None  # it recorded tensors that loading replaced
    assert not any(g["capturable"] for o in trainer.optimizers.values() for g in o.param_groups)


def test_on_the_cpu_the_optimisers_stay_plain_and_the_networks_keep_their_layout():
    from pddlite.device import place

    trainer = GANTrainer(*gan(), runtime=CPU)
    trainer.prepare_to_train()
    assert not any(g.get("capturable") for o in trainer.optimizers.values() for g in o.param_groups)
    net = place(make_gan((1, 28, 28), width=0.125)[1], torch.device("cpu"))
    conv = next(p for p in net.parameters() if p.ndim == 4)
    assert conv.is_contiguous()  # NCHW: CPU numbers do not move

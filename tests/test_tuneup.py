"""The tune-up trainer: one loop, a margin-term strategy, and the switches of the ablation."""

import torch

from pddlite.margins import Eq56Terms, NotebookTerms
from pddlite.nets import init_weights, make_gan
from pddlite.runtime import Runtime
from pddlite.tuneup import TuneUpTrainer

CPU = Runtime(device="cpu")


def tiny(seed=0):
    torch.manual_seed(seed)
    g, d = make_gan((1, 28, 28), width=0.125)
    g.apply(init_weights)
    d.apply(init_weights)
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(12, 1, 28, 28, generator=gen) * 2 - 1
    return g, d, prototypes, torch.arange(3).repeat_interleave(4)


def test_margin_steps_alone_lower_the_eq56_loss():
    g, d, x, y = tiny()
    trainer = TuneUpTrainer(g, d, x, y, margin=Eq56Terms(), margin_lr=2e-3, adversarial=False, runtime=CPU)
    first = trainer.margin_step().item()
    for _ in range(30):
        last = trainer.margin_step().item()
    assert last < 0.8 * first


def test_the_strategy_sets_the_optimisers_and_the_generator_rate():
    g, d, x, y = tiny()
    eq56 = TuneUpTrainer(g, d, x, y, margin="eq56", lr=1e-3, runtime=CPU)
    assert "margin" in eq56.optimizers and eq56.optimizers["generator"].param_groups[0]["lr"] == 1e-3
    notebook = TuneUpTrainer(g, d, x, y, margin=NotebookTerms(), lr=1e-3, runtime=CPU)
    assert {"intra", "inter"} <= set(notebook.optimizers) and "margin" not in notebook.optimizers
    assert notebook.optimizers["generator"].param_groups[0]["lr"] == 2e-3


def test_switching_the_margin_steps_off_leaves_the_adversarial_steps_alone():
    g, d, x, y = tiny()
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1
    trainer = TuneUpTrainer(g, d, x, y, margin_steps=False, runtime=CPU)
    before = [p.detach().clone() for p in d.parameters()]
    losses = trainer.batch_losses(trainer.select(images, torch.arange(32)))
    assert losses[2].item() == 0.0 and losses[0].item() > 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters()))  # the adversarial step moved D

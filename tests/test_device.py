"""Device helpers: the precision each device trains in, float16 loss scaling, cuDNN's mode."""

import pytest
import torch

from pddlite import PDDLiteError
from pddlite.device import Precision, choose_precision, seed_everything
from pddlite.gan import GANTrainer
from pddlite.nets import init_weights, make_gan
from pddlite.runtime import Runtime
from pddlite.trainer import EpochTrainer

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_follows_the_gpus_compute_capability(capability, expected):
    # a T4 (7.5) has float16 tensor cores only; A100 (8.0), L4 (8.9), H100 (9.0) have bfloat16 ones
    p = choose_precision("cuda", "auto", capability=capability)
    assert p == Precision(expected, "cuda")
    assert p.scales_loss == (expected == "fp16")


def test_the_cpu_trains_in_float32_unless_asked_and_unknown_names_are_refused():
    assert choose_precision("cpu") == Precision("fp32", "cpu")
    assert choose_precision("cpu").dtype is None and not choose_precision("cpu").grad_scaler().is_enabled()
    assert choose_precision("cuda", "fp32", capability=(7, 5)).dtype is None
    assert choose_precision("cpu", "BF16").dtype is torch.bfloat16
    with pytest.raises(PDDLiteError, match="unknown precision 'half'.*auto, bf16, fp16, fp32"):
        choose_precision("cpu", "half")


def _linear_step(precision, loss_scale=1.0):
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    trainer = EpochTrainer(Runtime(device="cpu", precision=precision))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    loss = (net(x) ** 2).mean() * loss_scale
    trainer.optimize(loss, opt)
    return net, trainer


def test_float16_loss_scaling_gives_the_unscaled_update_and_skips_overflowing_steps():
    plain, _ = _linear_step("fp32")
    scaled, trainer = _linear_step("fp16")  # GradScaler on the CPU; the loss itself is float32 here
    assert trainer.scaler.is_enabled() and trainer.scaler.get_scale() == 65536.0
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # an infinite loss: the step is skipped and the scale halves
    before = [p.detach().clone() for p in scaled.parameters()]
    x = torch.randn(8, 4)
    trainer.optimize((scaled(x) ** 2).mean() * float("inf"), torch.optim.SGD(scaled.parameters(), lr=0.1))
    assert all(torch.equal(a, b) for a, b in zip(before, scaled.parameters()))
    assert trainer.scaler.get_scale() == 32768.0


def test_a_gan_step_runs_in_float16_autocast_with_loss_scaling_on_the_cpu():
    torch.manual_seed(0)
    g, d = make_gan((1, 28, 28), 0.125)
    g.apply(init_weights)
    d.apply(init_weights)
    trainer = GANTrainer(g, d, runtime=Runtime(device="cpu", precision="fp16"))
    loss_d, loss_g = trainer.step(torch.rand(16, 1, 28, 28) * 2 - 1)
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    state = trainer.state_dict()
    assert state["grad_scaler"]["scale"] == trainer.scaler.get_scale()
    again = GANTrainer(g, d, runtime=Runtime(device="cpu", precision="fp16"))
    again.load_state_dict(state)
    assert again.scaler.get_scale() == trainer.scaler.get_scale()


def test_cudnn_runs_fast_unless_determinism_is_asked_for():
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        seed_everything(0)
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        seed_everything(0, deterministic=True)
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before

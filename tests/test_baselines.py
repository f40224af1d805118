"""The four baselines: they run on a smoke task, score in the right direction, and follow their recipes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pddlite import PDDLiteError, get_profile, make_task
from pddlite.baselines import MCDD, DeepSVDD, EGBAD, GANomaly
from pddlite.baselines.deepsvdd import SVDDDecoder, SVDDEncoder, deepsvdd_schedule, initial_center
from pddlite.baselines.egbad import EMABiGANTrainer
from pddlite.baselines.ganomaly import GANomalyGenerator, feature_matching
from pddlite.baselines.mcdd import MCDDNet
from pddlite.experiment import run_task
from pddlite.methods import METHODS
from pddlite.nets import Encoder, JointDiscriminator, make_gan
from pddlite.runtime import Runtime

CPU = Runtime(device="cpu")
QUIET_CPU = Runtime(device="cpu", progress=False)


# one intra-op thread: on a small shared CPU a second one makes these tiny ops many times slower
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def task():
    return make_task("mnist-5k", anomaly=1, shots=10, seed=0, device="cpu")


# --------------------------------------------------------------------------- every baseline, end to end


@pytest.mark.parametrize("method", ["egbad", "ganomaly", "mcdd", "deepsvdd"])
def test_each_baseline_runs_on_a_smoke_task(method):
    assert method in METHODS
    row = run_task("mnist-5k", anomaly=3, shots=10, profile="smoke", method=method,
                   runtime=Runtime(device="cpu", seed=1, progress=False))
    model = row.pop("model")
    assert isinstance(model, METHODS[method])
    assert row["method"] == method and row["dataset"] == "mnist-5k" and row["anomaly"] == 3
    assert row["profile"] == "smoke" and row["seed"] == 1 and row["device"] == "cpu"
    for metric in ("auroc", "auprc"):
        assert 0.0 <= row[metric] <= 1.0 and math.isfinite(row[metric])
    # the smoke profile: one epoch on at most 512 images, batches of 64, 1/8-width networks
    assert model.schedule_["epochs"] == 1 and model.schedule_["batch_size"] == 64
    assert model.width_ == 0.125
    assert len(model.history_["svdd"] if method == "deepsvdd" else model.history_) == 1


# Hyper-parameters chosen so that each model learns enough in a few CPU seconds; the obvious
# anomaly is a training digit with its colours inverted (white background, dark strokes).
DIRECTION_SETTINGS = {
    "egbad": dict(lr=1e-3, ema_decay=None, batch_size=16, epochs=2, max_train_images=1024),
    "ganomaly": dict(epochs=2),
    "mcdd": dict(epochs=10),
    "deepsvdd": dict(epochs=10),
}


@pytest.mark.parametrize("method", sorted(DIRECTION_SETTINGS))
def test_an_obvious_anomaly_scores_higher_than_the_training_data(task, method):
    model = METHODS[method](profile="smoke", device="cpu", seed=0, progress=False, **DIRECTION_SETTINGS[method])
    model.fit(task)
    normal = task.train_images[:200]
    scores_normal = model.decision_function(normal)
    scores_inverted = model.decision_function(-normal)
    assert scores_normal.shape == (200,) and scores_normal.dtype == np.float64
    y = np.r_[np.zeros(200), np.ones(200)]
    assert roc_auc_score(y, np.r_[scores_normal, scores_inverted]) > 0.9
    assert np.median(scores_inverted) > np.median(scores_normal)


@pytest.mark.parametrize("cls", [EGBAD, GANomaly, MCDD, DeepSVDD])
def test_scores_are_computed_in_eval_mode(task, cls):
    """In eval mode an image's score does not depend on the other images of the batch."""
    model = cls(profile="smoke", device="cpu", progress=False).fit(task)
    x = task.test_images[:300]
    modes = [m.training for m in model._scoring_modules()]
    alone = model.decision_function(x[:5])
    within = model.decision_function(x)[:5]
    np.testing.assert_allclose(alone, within, rtol=1e-4, atol=1e-5)
    again = model.decision_function(x[:5])
    np.testing.assert_array_equal(alone, again)
    # left in the mode they were found in (eval only while scoring)
    assert [m.training for m in model._scoring_modules()] == modes


def test_same_seed_same_scores(task):
    a = MCDD(profile="smoke", device="cpu", seed=3, progress=False).fit(task).decision_function(task.test_images[:50])
    b = MCDD(profile="smoke", device="cpu", seed=3, progress=False).fit(task).decision_function(task.test_images[:50])
    c = MCDD(profile="smoke", device="cpu", seed=4, progress=False).fit(task).decision_function(task.test_images[:50])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# --------------------------------------------------------------------------- schedules


def test_table2_schedules_at_paper_settings():
    paper = get_profile("paper")
    assert EGBAD(profile=paper, device="cpu").schedule("mnist") == {"batch_size": 100, "epochs": 20}
    assert EGBAD(profile=paper, device="cpu").schedule("fashion-mnist") == {"batch_size": 100, "epochs": 30}
    assert EGBAD(profile=paper, device="cpu").schedule("cifar10") == {"batch_size": 150, "epochs": 30}
    assert GANomaly(profile=paper, device="cpu").schedule("mnist-5k") == {"batch_size": 300, "epochs": 15}
    assert GANomaly(profile=paper, device="cpu").schedule("cifar10") == {"batch_size": 300, "epochs": 40}
    assert MCDD(profile=paper, device="cpu").schedule("fashion-mnist") == {"batch_size": 150, "epochs": 40}
    assert MCDD(profile=paper, device="cpu").schedule("cifar10") == {"batch_size": 200, "epochs": 80}
    assert EGBAD(profile=paper, device="cpu")._resolve()["width_"] == 1.0
    quick = get_profile("quick")
    assert EGBAD(profile=quick, device="cpu").schedule("mnist") == {"batch_size": 100, "epochs": quick.schedule("egbad", "mnist")[1]}
    assert MCDD(profile=paper, device="cpu", epochs=3, batch_size=7).schedule("mnist") == {"batch_size": 7, "epochs": 3}


def test_quick_baselines_are_sized_by_optimiser_steps_not_by_epochs():
    from pddlite.profiles import QUICK_STEPS

    quick = get_profile("quick")
    for n in (2736, 8820):  # unlabeled training images: mnist-5k and 10,000 MNIST images less 1,000 + 180
        for cls in (EGBAD, GANomaly, MCDD):
            sched = cls(profile=quick, device="cpu").schedule("mnist-5k", n)
            steps = sched["epochs"] * (n // sched["batch_size"])
            per_epoch = n // sched["batch_size"]
            assert QUICK_STEPS[cls.method] <= steps < QUICK_STEPS[cls.method] + per_epoch, (cls.method, n)
        svdd = DeepSVDD(profile=quick, device="cpu").schedule("mnist-5k", n)
        assert svdd["epochs"] * (n // 200) >= QUICK_STEPS["deepsvdd"]
        assert svdd["ae_epochs"] * (n // 200) >= QUICK_STEPS["deepsvdd-autoencoder"]
        assert svdd["milestone"] == round(50 * svdd["epochs"] / 150)  # the drop stays at a third
    # a quarter of Table 2's 15 epochs would be 4 epochs of 9 batches on mnist-5k
    assert GANomaly(profile=quick, device="cpu").schedule("mnist-5k") == {"batch_size": 300, "epochs": 4}
    assert GANomaly(profile=quick, device="cpu").schedule("mnist-5k", 2736)["epochs"] == 17  # 150 / 9 steps
    # the paper profile is Table 2 as written, whatever the data size
    assert GANomaly(profile="paper", device="cpu").schedule("mnist-5k", 2736)["epochs"] == 15


def test_the_colab_profile_is_full_width_with_twice_quicks_optimiser_steps():
    from pddlite.pdd import PDD
    from pddlite.profiles import COLAB_STEPS, QUICK_STEPS

    colab = get_profile("colab")
    assert colab.width == 1.0 and colab.max_train_images == 20_000
    sched = PDD(profile="colab", device="cpu").schedule("mnist")
    assert (sched["pretrain_epochs"], sched["tune_epochs"], sched["pretrain_batch_size"]) == (8, 3, 200)
    # 300 tune-up steps: 3 epochs at the 20,000-image cap, more on a smaller dataset
    assert PDD(profile="colab", device="cpu").schedule("mnist", 20_000)["tune_steps"] == 300
    assert PDD(profile="colab", device="cpu").schedule("mnist-5k", 3420)["tune_epochs"] == 18
    assert all(COLAB_STEPS[k] == 2 * QUICK_STEPS[k] for k in QUICK_STEPS)
    n = 18_820  # 20,000 MNIST images less one class's share and the prototypes
    epochs = GANomaly(profile=colab, device="cpu").schedule("mnist", n)["epochs"]
    assert epochs * (n // 300) >= COLAB_STEPS["ganomaly"] > (epochs - 1) * (n // 300)


def test_deepsvdd_lowers_the_rate_for_the_milestone_th_epoch_as_the_public_code():
    from pddlite.baselines.deepsvdd import SVDDTrainer

    encoder = torch.nn.Linear(2, 2, bias=False)
    trainer = SVDDTrainer(encoder, torch.zeros(2), lr=1e-4, milestone=50, runtime=CPU)
    rates = []
    for epoch in (0, 48, 49, 50):
        trainer.epoch = epoch
        trainer.start_epoch()
        rates.append(trainer.optimizers["encoder"].param_groups[0]["lr"])
    # the code steps its MultiStepLR(milestones=[50]) at the start of each epoch: the 50th epoch
    # (0-based 49) already runs at 1e-5
    assert rates == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5])


def test_deepsvdd_schedule_follows_the_public_code_and_scales_like_table2():
    paper = deepsvdd_schedule(get_profile("paper"), "mnist")
    assert paper == {"batch_size": 200, "epochs": 150, "milestone": 50, "ae_epochs": 150, "ae_milestone": 50,
                     "ae_weight_decay": 5e-4}
    cifar = deepsvdd_schedule(get_profile("paper"), "cifar10")
    assert (cifar["ae_epochs"], cifar["ae_milestone"], cifar["ae_weight_decay"]) == (350, 250, 5e-7)
    half = dataclasses.replace(get_profile("paper"), name="half", epoch_fraction=0.5, min_epochs=4)
    quick = deepsvdd_schedule(half, "fashion-mnist")
    assert (quick["epochs"], quick["milestone"], quick["ae_epochs"]) == (75, 25, 75)
    tiny = deepsvdd_schedule(dataclasses.replace(half, epoch_fraction=0.01), "cifar10")
    assert (tiny["epochs"], tiny["milestone"], tiny["ae_epochs"], tiny["ae_milestone"]) == (4, 1, 4, 3)
    smoke = deepsvdd_schedule(get_profile("smoke"), "mnist-5k")
    assert (smoke["batch_size"], smoke["epochs"], smoke["ae_epochs"]) == (64, 1, 1)  # min_epochs 1


def test_unknown_options_and_bad_values_are_refused():
    with pytest.raises(PDDLiteError, match="unknown EGBAD option.*known:.*ema_decay"):
        EGBAD(profile="smoke", device="cpu", beta=3.0)
    with pytest.raises(PDDLiteError, match=r"weight must be a number in \[0, 1\]"):
        EGBAD(profile="smoke", device="cpu", weight=1.5)
    with pytest.raises(PDDLiteError, match="adversarial"):
        GANomaly(profile="smoke", device="cpu", adversarial="bce")
    with pytest.raises(PDDLiteError, match="epochs must be a positive whole number"):
        MCDD(profile="smoke", device="cpu", epochs=0)
    with pytest.raises(PDDLiteError, match="batch_size must be a positive whole number"):
        EGBAD(profile="smoke", device="cpu", batch_size=-4)
    with pytest.raises(PDDLiteError, match="width must be a number"):
        DeepSVDD(profile="smoke", device="cpu", width="abc")
    with pytest.raises(PDDLiteError, match="max_train_images must be a positive whole number"):
        MCDD(profile="smoke", device="cpu", max_train_images=0)
    with pytest.raises(PDDLiteError, match="seed must be a whole number"):
        GANomaly(profile="smoke", device="cpu", seed=2**64)
    # a value's type is checked before it is compared, and a word is never read as True
    with pytest.raises(PDDLiteError, match="lr must be a positive number, got 'fast'"):
        GANomaly(profile="smoke", device="cpu", lr="fast")
    with pytest.raises(PDDLiteError, match=r"weight must be a number in \[0, 1\], got 'high'"):
        EGBAD(profile="smoke", device="cpu", weight="high")
    with pytest.raises(PDDLiteError, match="bounded_scale must be True or False, got 'no'"):
        MCDD(profile="smoke", device="cpu", bounded_scale="no")
    with pytest.raises(PDDLiteError, match="rep_dim must be a positive whole number"):
        DeepSVDD(profile="smoke", device="cpu", rep_dim=0)
    # NumPy numbers are numbers
    model = MCDD(profile="smoke", device="cpu", epochs=np.int64(2), lr=np.float32(0.01), width=np.float64(0.5))
    assert (model.epochs, model.width) == (2, 0.5)  # stored as given
    assert model.schedule("mnist")["epochs"] == 2 and type(model.schedule("mnist")["epochs"]) is int
    with pytest.raises(PDDLiteError, match="whole class numbers"):
        MCDD(profile="smoke", device="cpu").fit(torch.zeros(8, 1, 28, 28), np.full(8, 1.5))
    with pytest.raises(PDDLiteError, match="not fitted"):
        DeepSVDD(profile="smoke", device="cpu").decision_function(torch.zeros(2, 1, 28, 28))
    with pytest.raises(PDDLiteError, match="labeled normal data"):
        MCDD(profile="smoke", device="cpu").fit(torch.zeros(8, 1, 28, 28))
    with pytest.raises(PDDLiteError, match="no variant"):
        run_task("mnist-5k", 1, profile="smoke", method="mcdd", runtime=QUIET_CPU, variant="reference")


def test_fit_on_plain_images(task):
    """Unsupervised baselines also fit on an image tensor; MCDD on images and labels."""
    x = task.train_images[:256]
    model = DeepSVDD(profile="smoke", device="cpu", progress=False).fit(x)
    assert model.dataset_ == "arrays" and model.decision_function(x[:4]).shape == (4,)
    mcdd = MCDD(profile="smoke", device="cpu", progress=False).fit(x, task.train_labels[:256].numpy())
    assert mcdd.classes_.tolist() == sorted(set(task.train_labels[:256].tolist()))
    with pytest.raises(PDDLiteError, match="expected images shaped"):
        mcdd.decision_function(torch.zeros(3, 3, 64, 64))


def test_the_training_cap_keeps_the_same_images_from_a_task_or_from_arrays(task):
    """One cap on training images: fit(task) and fit(images, labels) keep the same subset, and so
    does PDD (Task.subsample_train), so every detector trains on the same images."""
    model = MCDD(profile="smoke", device="cpu", progress=False, seed=3, max_train_images=100)
    model._start_fit()  # the resolved cap and device, as fit resolves them
    images, labels, _ = model._training_data(task.train_images, task.train_labels)
    from_task, task_labels, _ = model._training_data(task, None)
    assert len(images) == 100
    assert torch.equal(images, from_task) and torch.equal(labels, task_labels)
    assert torch.equal(images, task.subsample_train(100, seed=3).train_images)
    assert not torch.equal(images, task.subsample_train(100, seed=4).train_images)

# --------------------------------------------------------------------------- EGBAD


def test_egbad_score_is_the_weighted_l1_residual_plus_feature_matching(task):
    model = EGBAD(profile="smoke", device="cpu", progress=False, weight=0.25).fit(task)
    x = task.test_images[:6]
    with torch.no_grad():
        for m in model._scoring_modules():
            m.eval()
        z = model.encoder_(x)
        rec = model.generator_(z)
        residual = (x - rec).abs().flatten(1).sum(1)
        fm = (model.discriminator_.features(x, z) - model.discriminator_.features(rec, z)).abs().sum(1)
        for m in model._scoring_modules():
            m.train()
    expected = 0.75 * residual + 0.25 * fm
    np.testing.assert_allclose(model.decision_function(x), expected.double().numpy(), rtol=1e-5)
    assert model.lr_ == 1e-5  # the EGBAD code's MNIST learning rate by default


def _egbad_nets(shape=(1, 28, 28), width=0.125):
    torch.manual_seed(0)
    return [make_gan(shape, width)[0], Encoder(shape, width), JointDiscriminator(shape, width)]


def test_egbad_averages_are_warmed_up_and_follow_the_trained_weights_in_a_short_run():
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    nets = _egbad_nets()
    initial = torch.cat([p.detach().flatten().clone() for net in nets for p in net.parameters()])
    trainer = EMABiGANTrainer(*nets, lr=1e-3, ema_decay=0.999, runtime=CPU)
    for _ in range(20):
        trainer.step(real)
    live = torch.cat([p.detach().flatten() for net in nets for p in net.parameters()])
    shadow = torch.cat([p.flatten() for net in trainer.averaged().values() for p in net.parameters()])
    # with the code's plain 0.999, 98% of the average would still be the initial weights
    assert (shadow - live).norm() < 0.5 * (shadow - initial).norm()
    assert all(int(a.updates) == 20 for a in trainer.averages.values())
    assert set(trainer.state_dict()["ema"]) == {"generator", "encoder", "discriminator"}


def test_egbad_scores_with_batchnorm_statistics_of_the_averaged_weights(task):
    model = EGBAD(profile="smoke", device="cpu", progress=False, lr=1e-3).fit(task)
    live_encoder = model.trainer_.modules["encoder"]
    bn = next(m for m in model.encoder_.modules() if isinstance(m, torch.nn.BatchNorm2d))
    live_bn = next(m for m in live_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # recompute by hand: the mean over training batches of each batch's channel means, as seen by
    # this layer of the averaged encoder
    seen = []
    handle = bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].mean(dim=(0, 2, 3))))
    images = task.subsample_train(model.max_train_images_, seed=model.seed).train_images.float()
    copy_ = {k: v.clone() for k, v in bn.state_dict().items()}
    with torch.no_grad():
        model.encoder_.train()
        for x in images.split(model.schedule_["batch_size"]):
            model.encoder_(x)
        model.encoder_.eval()
    handle.remove()
    bn.load_state_dict(copy_)
    expected = torch.stack(seen).mean(dim=0)
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(live_bn.running_mean, expected, rtol=1e-3, atol=1e-4)
    with pytest.raises(PDDLiteError, match="ema_decay"):
        EGBAD(profile="smoke", device="cpu", ema_decay=1.0)


# --------------------------------------------------------------------------- GANomaly


def test_ganomaly_feature_matching_forms():
    f_real = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    f_fake = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    # paper: E_x || f(x) - E f(G(x)) ||_2 with E f(G(x)) = (1, 1): both distances sqrt(2)
    assert feature_matching(f_real, f_fake, "paper").item() == pytest.approx(math.sqrt(2))
    # code: mean squared error image by image: (1 + 0 + 1 + 4) / 4
    assert feature_matching(f_real, f_fake, "code").item() == pytest.approx(1.5)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_ganomaly_generator_shapes(shape):
    g = GANomalyGenerator(shape, width=0.125)
    x = torch.rand(3, *shape) * 2 - 1
    rec, z, z_rec = g(x)
    assert rec.shape == x.shape and z.shape == (3, 100) and z_rec.shape == (3, 100)


def _ganomaly_terms_at_init(task, adversarial):
    """(L_adv, L_con, L_enc) of one step at initialisation: width 1, 28x28, batch 64."""
    torch.manual_seed(0)
    model = GANomaly(profile="smoke", device="cpu", width=1.0, progress=False, adversarial=adversarial)
    model._start_fit()  # the resolved width and device, as fit resolves them
    model._build((1, 28, 28), 0)
    loss_d, loss_g, adv, con, enc = model.trainer_.step(task.train_images[:64].float()).tolist()
    return adv, con, enc


def test_ganomaly_default_loss_terms_are_of_one_order_at_initialisation(task):
    # the public code's L_adv (a mean of squares) is of the order of L_con and L_enc, which is
    # what its weights (1, 50, 1) assume; the paper's L2 norm over 3,136 features is ~50x larger
    adv, con, enc = _ganomaly_terms_at_init(task, "code")
    terms = [adv, con, enc]
    assert max(terms) / min(terms) < 3.0, terms
    adv_paper, con_paper, _ = _ganomaly_terms_at_init(task, "paper")
    assert adv_paper / con_paper > 20.0
    assert GANomaly(profile="smoke", device="cpu").adversarial == "code"


def test_ganomaly_steps_the_generator_first_then_the_discriminator(task, monkeypatch):
    model = GANomaly(profile="smoke", device="cpu", progress=False)
    model._start_fit()  # the resolved width and device, as fit resolves them
    model._build((1, 28, 28), 0)
    order = []
    for name, opt in model.trainer_.optimizers.items():
        step = opt.step
        monkeypatch.setattr(opt, "step", lambda *a, _s=step, _n=name, **k: (order.append(_n), _s(*a, **k))[1])
    model.trainer_.step(task.train_images[:16].float())
    assert order == ["generator", "discriminator"]


def test_ganomaly_resets_d_only_when_the_mean_of_its_two_terms_is_tiny(task, monkeypatch):
    import pddlite.baselines.ganomaly as ganomaly

    model = GANomaly(profile="smoke", device="cpu", progress=False)
    model._start_fit()  # the resolved width and device, as fit resolves them
    model._build((1, 28, 28), 0)
    # D perfect on real images only: the real term is ~0, the fake term is not, so no reset
    monkeypatch.setattr(ganomaly, "bce_real", lambda logits: 0.0 * logits.sum() + 1e-7)
    model.trainer_.step(task.train_images[:16].float())
    assert model.trainer_.reinitialisations == 0
    # both terms ~0: the mean is below 1e-5 and D is re-initialised
    monkeypatch.setattr(ganomaly, "bce_fake", lambda logits: 0.0 * logits.sum() + 1e-7)
    model.trainer_.step(task.train_images[:16].float())
    assert model.trainer_.reinitialisations == 1


def test_ganomaly_score_is_the_latent_mse(task):
    model = GANomaly(profile="smoke", device="cpu", progress=False, adversarial="code").fit(task)
    x = task.test_images[:5]
    model.generator_.eval()
    with torch.no_grad():
        _, z, z_rec = model.generator_(x)
    model.generator_.train()
    np.testing.assert_allclose(model.decision_function(x), ((z - z_rec) ** 2).mean(1).double().numpy(), rtol=1e-5)
    assert set(model.history_[0]) >= {"loss_d", "loss_g", "adv", "con", "enc"}


# --------------------------------------------------------------------------- MCDD


def test_mcdd_takes_the_image_recipe_of_the_public_code_for_64x64_images():
    from pddlite.baselines.mcdd import MCDDTrainer, resolve_recipe

    assert resolve_recipe("auto", (3, 64, 64)) == "image" and resolve_recipe("auto", (1, 28, 28)) == "tabular"
    net = MCDDNet((3, 64, 64), n_classes=3, width=0.125, latent_dim=4)
    trainer = MCDDTrainer(net, torch.zeros(6, dtype=torch.long), recipe="image", epochs=8, runtime=CPU)
    opt = trainer.optimizers["net"]
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0.9, True, 1e-4)
    assert trainer.reg_lambda == 0.1 and trainer.milestones == (4, 6) and trainer.augment
    images = torch.rand(6, 3, 64, 64) * 2 - 1
    rates = []
    for epoch in range(8):
        trainer.epoch = epoch
        trainer.train_epoch(images, 3)
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    tabular = MCDDTrainer(MCDDNet((1, 28, 28), 3, 0.125, 4), torch.zeros(6, dtype=torch.long), recipe="tabular", runtime=CPU)
    assert isinstance(tabular.optimizers["net"], torch.optim.Adam) and tabular.reg_lambda == 1.0
    assert tabular.base_lr == 1e-3 and not tabular.augment
    with pytest.raises(PDDLiteError, match="recipe"):
        MCDD(profile="smoke", device="cpu", recipe="cifar")


def test_mcdd_scales_stay_one_with_the_bound_as_in_the_public_code(task):
    model = MCDD(profile="smoke", device="cpu", progress=False, epochs=2).fit(task)
    assert model.recipe_ == "tabular"
    assert torch.equal(model.net_.log_scales.detach(), torch.zeros_like(model.net_.log_scales))


def test_mcdd_distances_loss_terms_and_score():
    torch.manual_seed(0)
    net = MCDDNet((1, 28, 28), n_classes=3, width=0.125, latent_dim=4)
    with torch.no_grad():
        net.log_scales.copy_(torch.tensor([-1.0, 0.0, 0.5]))
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    net.eval()
    with torch.no_grad():
        f = net.embed(x)
        d = net.distances(x)
    # sigma_k = exp(relu(s_k)): class 0's scale is bounded to 1
    s = torch.tensor([0.0, 0.0, 0.5])
    expected = ((f[:, None, :] - net.centers[None]) ** 2).sum(-1) / (2 * torch.exp(2 * s)) + 4 * s
    torch.testing.assert_close(d, expected)
    free = MCDDNet((1, 28, 28), 3, 0.125, 4, bounded_scale=False)
    free.load_state_dict(net.state_dict())
    free.eval()
    with torch.no_grad():
        d_free = free.distances(x)
    # the paper's free scale: sigma_0 = e^-1 < 1 is used as it is
    sq0 = ((f - net.centers[0]) ** 2).sum(-1)
    torch.testing.assert_close(d_free[:, 0], sq0 / (2 * math.exp(-2)) - 4)
    torch.testing.assert_close(d_free[:, 1:], d[:, 1:])


def test_mcdd_learns_the_normal_classes_from_their_labels(task):
    model = MCDD(profile="smoke", device="cpu", progress=False, epochs=10).fit(task)
    assert model.classes_.tolist() == list(task.normal_classes)
    x, y = task.train_images[:500], task.train_labels[:500]
    accuracy = (model.predict_class(x) == y).float().mean().item()
    assert accuracy > 0.4  # nine classes: chance is about 0.11
    scores = model.decision_function(x)
    np.testing.assert_allclose(scores, model._class_distances(x).min(dim=1).values.double().numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- Deep SVDD


@pytest.mark.parametrize("shape,rep_dim", [((1, 28, 28), 32), ((3, 64, 64), 128)])
def test_deepsvdd_network_is_bias_free(shape, rep_dim):
    phi = SVDDEncoder(shape, width=0.125)
    assert phi.rep_dim == rep_dim
    names = [n for n, _ in phi.named_parameters()]
    assert names and not any(n.endswith("bias") for n in names)
    bns = [m for m in phi.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.affine for m in bns)
    phi.eval()
    x = torch.rand(2, *shape)
    assert phi(x).shape == (2, rep_dim)
    decoder = SVDDDecoder(shape, width=0.125, rep_dim=rep_dim)  # the mirror image, for pre-training
    assert not any(n.endswith("bias") for n, _ in decoder.named_parameters())
    assert sum(p.numel() for p in decoder.parameters()) == sum(p.numel() for p in phi.parameters())
    out = decoder(phi(x))
    assert out.shape == x.shape and out.abs().max() <= 1


def test_deepsvdd_centre_is_fixed_and_kept_away_from_zero(task):
    model = DeepSVDD(profile="smoke", device="cpu", progress=False, epochs=2).fit(task)
    assert model.center_.abs().min() >= 0.1 - 1e-7
    assert not any(p is model.center_ for p in model.encoder_.parameters())
    assert not model.center_.requires_grad
    assert len(model.history_["autoencoder"]) == 1 and len(model.history_["svdd"]) == 2
    phi = SVDDEncoder((1, 28, 28), 0.125)
    c = initial_center(phi, torch.zeros(4, 1, 28, 28), eps=0.5)
    assert c.abs().min() >= 0.5
    no_pretraining = DeepSVDD(profile="smoke", device="cpu", progress=False, ae_epochs=0).fit(task.train_images[:128])
    assert no_pretraining.history_["autoencoder"] == []


def test_pddlite_run_with_a_baseline_method(tmp_path, capsys):
    from pddlite.cli import main

    out = tmp_path / "row.json"
    assert main(["run", "--method", "mcdd", "--dataset", "mnist-5k", "--anomaly", "7", "--profile", "smoke",
                 "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    assert "mcdd: AUROC" in capsys.readouterr().out
    import json

    row = json.loads(out.read_text())
    assert row["method"] == "mcdd" and row["anomaly"] == 7 and 0 <= row["auroc"] <= 1
    capsys.readouterr()
    for flag, value in (("--checkpoint", str(tmp_path / "c.pt")), ("--variant", "paper")):
        # options of PDD alone are refused for a baseline, not silently dropped
        assert main(["run", "--method", "mcdd", flag, value, "--profile", "smoke", "--device", "cpu",
                     "--no-progress"]) == 2
        assert f"{flag} is for PDD only" in capsys.readouterr().err
    assert main(["run", "--method", "nosuch", "--profile", "smoke", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nosuch'" in err and "deepsvdd, egbad, ganomaly, mcdd, pdd, pixel-centroid, pixel-knn" in err

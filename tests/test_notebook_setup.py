"""pddlite.notebook: the series' setup in one call, and its default task with the offline fallback."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pddlite import PDDLiteError, notebook


def test_the_profile_is_the_environment_s_else_colab_on_a_gpu_and_quick_on_a_cpu(monkeypatch):
    monkeypatch.delenv("PDDLITE_PROFILE", raising=False)
    assert notebook.notebook_profile(torch.device("cpu")).name == "quick"
    assert notebook.notebook_profile(torch.device("cuda")).name == "colab"
    assert notebook.notebook_profile(torch.device("cuda"), "paper").name == "paper"
    monkeypatch.setenv("PDDLITE_PROFILE", "smoke")
    assert notebook.notebook_profile(torch.device("cuda")).name == "smoke"


def test_setup_names_the_folders_per_profile(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PDDLITE_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv("PDDLITE_RESULTS", str(tmp_path / "res"))
    threads = torch.get_num_threads()
    try:
        nb = notebook.setup(seed=3, profile="smoke", device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert (nb.profile.name, nb.seed, nb.device.type) == ("smoke", 3, "cpu")
    assert nb.checkpoint("a.pt") == tmp_path / "ck" / "smoke" / "a.pt" and nb.results == tmp_path / "res"
    assert "profile:     smoke" in capsys.readouterr().out


def test_the_default_task_falls_back_to_mnist_5k_in_one_line(monkeypatch, capsys):
    nb = notebook.NotebookSetup(torch.device("cpu"), notebook.get_profile("quick"), 0, None, None, None)
    seen = []

    def fake_make_task(name, **kwargs):
        seen.append(name)
        if name == "mnist":
            raise PDDLiteError("MNIST is not downloaded and there is no network")
        return name

    monkeypatch.setattr(notebook, "make_task", fake_make_task)
    assert notebook.default_task(nb) == "mnist-5k" and seen == ["mnist", "mnist-5k"]
    assert "falling back to the offline mnist-5k" in capsys.readouterr().out
    smoke = notebook.NotebookSetup(torch.device("cpu"), notebook.get_profile("smoke"), 0, None, None, None)
    seen.clear()
    assert notebook.default_task(smoke) == "mnist-5k" and seen == ["mnist-5k"]  # smoke never downloads
    monkeypatch.setattr(notebook, "make_task", lambda name, **kw: (_ for _ in ()).throw(PDDLiteError("broken")))
    with pytest.raises(PDDLiteError, match="broken"):
        notebook.default_task(smoke)  # the offline data itself failing is not hidden


def test_the_series_shares_each_pdd_stage_through_one_pair_of_checkpoints(monkeypatch, tmp_path, capsys):
    """Notebook 2 pre-trains, notebooks 4, 5 and 7 load that pre-training and share one tune-up:
    the second call trains nothing and gives the same scores."""
    from pddlite import make_task
    from pddlite.trainer import EpochTrainer

    task = make_task("mnist-5k", anomaly=1, shots=5, seed=0, device="cpu")
    nb = notebook.NotebookSetup(torch.device("cpu"), notebook.get_profile("smoke"), 0, None, tmp_path, tmp_path)
    pre_path, tuned_path = nb.pdd_checkpoints(task)
    assert (pre_path.name, tuned_path.name) == ("pdd-mnist-5k-anomaly1-shots5-seed0-pretrain.pt",
                                                "pdd-mnist-5k-anomaly1-shots5-seed0.pt")
    capsys.readouterr()
    pretrained, tuned = notebook.pretrained_and_tuned(nb, task)
    said = [line for line in capsys.readouterr().out.splitlines() if "checkpoint" in line]
    assert said == ["no pre-training and no tune-up checkpoint of this task from an earlier notebook: training them "
                    "here (on Colab, USE_DRIVE = True keeps checkpoints for the next notebook)"]
    assert pre_path.exists() and tuned_path.exists()
    assert (pretrained.stage_.value, tuned.stage_.value) == ("pretrained", "done")

    def no_training(*args, **kwargs):
        raise AssertionError("a stage with a checkpoint was trained again")

    monkeypatch.setattr(EpochTrainer, "fit", no_training)
    pretrained_again, tuned_again = notebook.pretrained_and_tuned(nb, task)
    assert "checkpoint" not in capsys.readouterr().out, "nothing to say when both checkpoints are there"
    images = task.test_images[:64]
    assert np.array_equal(tuned_again.decision_function(images), tuned.decision_function(images))
    assert np.array_equal(pretrained_again.decision_function(images), pretrained.decision_function(images))


@pytest.mark.parametrize("seed", ["0", 1.5, 2**64, -1, True])
def test_a_seed_that_is_not_a_whole_number_in_range_is_refused_in_one_line(seed, monkeypatch):
    monkeypatch.setattr(notebook, "seed_everything", lambda *a, **k: pytest.fail("seeded before the check"))
    with pytest.raises(PDDLiteError, match=r"seed must be a whole number from 0 to 2\*\*62 - 1") as caught:
        notebook.setup(seed=seed, profile="smoke", device="cpu", verbose=False)
    assert "\n" not in str(caught.value)


def test_empty_variables_mean_unset_and_bad_values_name_their_variable(monkeypatch, tmp_path):
    threads = torch.get_num_threads()
    monkeypatch.chdir(tmp_path)
    for variable in ("PDDLITE_PROFILE", "PDDLITE_CHECKPOINTS", "PDDLITE_RESULTS", "PDDLITE_DATA"):
        monkeypatch.setenv(variable, "")
    try:
        nb = notebook.setup(device="cpu", verbose=False)
        assert nb.profile.name == "quick"
        assert (nb.checkpoints, nb.results) == (Path("checkpoints") / "quick", Path("results"))
        assert nb.data.name == "data" and nb.data != Path("")
        monkeypatch.setenv("PDDLITE_PROFILE", "nonsense")
        with pytest.raises(PDDLiteError, match="PDDLITE_PROFILE is 'nonsense', not a profile"):
            notebook.setup(device="cpu", verbose=False)
        monkeypatch.setenv("PDDLITE_PROFILE", " ")
        (tmp_path / "plain").write_text("x")
        for variable in ("PDDLITE_CHECKPOINTS", "PDDLITE_RESULTS", "PDDLITE_DATA"):
            monkeypatch.setenv(variable, str(tmp_path / "plain"))
            with pytest.raises(PDDLiteError, match=f"{variable} is .*plain.*not a folder"):
                notebook.setup(device="cpu", verbose=False)
            monkeypatch.setenv(variable, "")
    finally:
        torch.set_num_threads(threads)

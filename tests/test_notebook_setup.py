"""pddlite.notebook: the series' setup in one call, and its default task with the offline fallback."""

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

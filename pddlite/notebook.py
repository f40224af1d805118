"""A notebook's setup in one call: the device, the profile, the seed, the folders and the default task.

    from pddlite.notebook import setup, default_task

    nb = setup()                  # prints what it chose; nb.device, nb.profile, nb.seed, nb.checkpoints
    task = default_task(nb)       # MNIST, anomaly 1, 20 shots; mnist-5k in smoke or when offline
    pretrained, tuned = pretrained_and_tuned(nb, task)   # load-or-train, shared by notebooks 2, 4, 5 and 7

The profile is ``$PDDLITE_PROFILE`` when set (empty means unset, as for every ``PDDLITE_*``
variable), else ``colab`` on a GPU (the paper's networks, sized
for a Colab session) and ``quick`` on a CPU: the one place where the series makes that choice.
Pass ``profile=`` to choose it in the notebook instead. With ``use_drive=True`` on Colab, datasets,
checkpoints and results go to Google Drive and survive the session.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .ablation import tune_up_from
from .data import Task, default_data_root, make_task
from .device import check_seed, resolve_device, seed_everything
from .errors import PDDLiteError
from .files import setting_from_environment
from .pdd import PDD
from .profiles import Profile, get_profile

#: where ``use_drive=True`` keeps each kind of file on Google Drive (Colab)
DRIVE_FOLDERS = {"PDDLITE_DATA": "data", "PDDLITE_CHECKPOINTS": "checkpoints", "PDDLITE_RESULTS": "results"}


@dataclass(frozen=True)
class NotebookSetup:
    """What :func:`setup` chose. ``checkpoints`` and ``results`` are per profile, so that profiles never mix."""

    device: torch.device
    profile: Profile
    seed: int
    data: Path
    checkpoints: Path
    results: Path

    def checkpoint(self, name: str) -> Path:
        """The path of checkpoint ``name`` (``"pdd-anomaly1.pt"``, ...) in this profile's folder."""
        return self.checkpoints / name

    def pdd_checkpoints(self, task: Task) -> tuple[Path, Path]:
        """The two checkpoints of PDD on ``task``: after pre-training, and after the tune-up.

        Every notebook names them alike, so a stage trained in one notebook (pre-training in 2) is
        loaded by the next (4, 5 and 7) instead of trained again. They are two files, so that the
        pre-trained model stays for the before / after comparisons of Figs. 9-15.
        """
        anomaly = "-".join(str(a) for a in task.anomaly_classes)
        name = f"pdd-{task.dataset}-anomaly{anomaly}-shots{task.shots}-seed{task.seed}"
        return self.checkpoint(f"{name}-pretrain.pt"), self.checkpoint(f"{name}.pt")


def notebook_profile(device: torch.device, profile: str | Profile | None = None) -> Profile:
    """``profile`` if given, else ``$PDDLITE_PROFILE``, else ``colab`` on a GPU and ``quick`` on a CPU."""
    if profile is not None or setting_from_environment("PDDLITE_PROFILE") is not None:
        return get_profile(profile)  # the variable's value is checked, and named when wrong, there
    return get_profile("colab" if device.type == "cuda" else "quick")


def _folder_from_environment(variable: str, default: str) -> Path:
    """``$variable`` (empty: unset) or ``default``; one line naming the variable when it is a file."""
    folder = Path(setting_from_environment(variable) or default).expanduser()
    if folder.exists() and not folder.is_dir():
        raise PDDLiteError(f"the environment variable {variable} is {str(folder)!r}, a file, not a folder: set it "
                           "to a folder (or unset it)")
    return folder


def setup(seed: int = 0, profile: str | Profile | None = None, device: str = "auto",
          use_drive: bool = False, verbose: bool = True) -> NotebookSetup:
    """Choose the device and profile, seed everything, and name the folders; print what was chosen.

    ``seed`` is a whole number from 0 to 2**62 - 1 (a string, a float or a negative number is refused).
    """
    seed = check_seed(seed)  # before anything is mounted or seeded
    if use_drive and "google.colab" in sys.modules:  # pragma: no cover - Colab only
        from google.colab import drive

        drive.mount("/content/drive")
        for variable, folder in DRIVE_FOLDERS.items():
            if setting_from_environment(variable) is None:  # empty counts as unset here too
                os.environ[variable] = f"/content/drive/MyDrive/pddlite/{folder}"
    dev = resolve_device(device)
    prof = notebook_profile(dev, profile)
    seed_everything(seed)
    if prof.name == "smoke":
        torch.set_num_threads(1)  # tiny networks: on a small shared CPU a second thread only adds waiting
    nb = NotebookSetup(
        device=dev, profile=prof, seed=seed, data=default_data_root(),
        checkpoints=_folder_from_environment("PDDLITE_CHECKPOINTS", "checkpoints") / prof.name,
        results=_folder_from_environment("PDDLITE_RESULTS", "results"),
    )
    if verbose:
        where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (no GPU found)"
        print(f"device:      {where} (torch {torch.__version__})")
        if dev.type != "cuda" and "google.colab" in sys.modules:  # pragma: no cover - Colab only
            print("for the paper's networks: Runtime > Change runtime type > T4 GPU, then run all cells again")
        print(f"profile:     {prof.name} ({prof.description})")
        print(f"seed:        {seed}")
        print(f"datasets:    {nb.data}")
        print(f"checkpoints: {nb.checkpoints.resolve()}")
        if prof.name == "smoke":
            print("smoke profile: networks train for seconds, so scores are near chance or accidental; "
                  "it checks that the code runs, not how well a method works.")
    return nb


def default_task(nb: NotebookSetup, dataset: str = "mnist", anomaly: int = 1, shots: int = 20,
                 **options) -> Task:
    """The series' task: ``dataset`` (mnist-5k in ``smoke``, which stays offline), with the offline
    mnist-5k in its place, said in one line, when ``dataset`` cannot be downloaded."""
    name = "mnist-5k" if nb.profile.name == "smoke" else dataset
    try:
        return make_task(name, anomaly=anomaly, shots=shots, seed=nb.seed, **options)
    except PDDLiteError as err:
        if name == "mnist-5k":
            raise
        print(f"{err}\n-> falling back to the offline mnist-5k")
        return make_task("mnist-5k", anomaly=anomaly, shots=shots, seed=nb.seed, **options)


def pretrained_and_tuned(nb: NotebookSetup, task: Task) -> tuple[PDD, PDD]:
    """PDD after pre-training, and a tuned copy of it: each loaded from its checkpoint
    (:meth:`NotebookSetup.pdd_checkpoints`) when an earlier notebook trained it, else trained and saved.

    ``fit(task)`` is the same two stages in one call; here they stay two models, so that a notebook
    can compare them. Other tune-ups of the same pre-training: :func:`pddlite.ablation.tune_up_from`.
    """
    pretrain_path, tuned_path = nb.pdd_checkpoints(task)
    missing = [stage for stage, path in (("pre-training", pretrain_path), ("tune-up", tuned_path)) if not path.exists()]
    if missing:  # one line: on Colab every notebook starts on a fresh machine
        print(f"no {' and no '.join(missing)} checkpoint of this task from an earlier notebook: training "
              f"{'them' if len(missing) > 1 else 'it'} here (on Colab, USE_DRIVE = True keeps checkpoints for the next notebook)")
    pretrained = PDD(profile=nb.profile, device=nb.device, seed=nb.seed, checkpoint=pretrain_path).pretrain(task)
    return pretrained, tune_up_from(pretrained, task, checkpoint=tuned_path)

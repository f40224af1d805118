"""Bad input at every door of pddlite, one case at a time: how does each call end?

    python benchmarks/bad_inputs.py                      # every case: totals, then each case that went wrong
    python benchmarks/bad_inputs.py --out cases.jsonl    # and one JSON row per case
    python benchmarks/bad_inputs.py --no-training        # only the cases that train nothing
    python benchmarks/bad_inputs.py --door "cli report"  # one door (see DOORS); -k WORD: cases named WORD
    python benchmarks/bad_inputs.py --in-process         # the command line called here, not in processes
    python benchmarks/bad_inputs.py --time-limit 30      # a case that takes longer counts as a hang

Each case is one call a careless or a demanding user would make: a wrong argument of ``pddlite run``,
``replicate`` or ``report``, odd arrays for ``make_task_from_arrays``, a damaged dataset file or
checkpoint, a result row with a field of the wrong type, images in the wrong range for
``decision_function``, and the legitimate inputs next to them (numpy integers, channels-last images,
a resumed grid). Then what a shared cluster or a Colab VM adds: a file system that fails in the middle
of a write or is full (injected: a patched ``open``), a named pipe where a result file is expected, a
claim left by a worker on another machine, result rows received from elsewhere whose names hold
paths, and a detector fitted again on another task. The command line is run as a user runs it, ``python -m pddlite ...`` in a process of
its own; everything else is called in this process. Every case gets a fresh temporary folder, and
an oracle of its own puts it into exactly one category:

* ``clean``: bad input refused with :class:`pddlite.PDDLiteError` (on the command line: exit status 2,
  one ``error:`` line, after argparse's usage lines for an argument it parses itself) whose message
  contains the words the case names, so that it says what is wrong;
* ``handled``: legitimate input (or a fault such as Ctrl-C) and the call did the right thing, checked;
* ``silent-wrong``: it ran and the result is wrong (bad input accepted, or a wrong result);
* ``traceback``: any other exception, a Python traceback on stderr, or no answer within the time limit
  (:data:`TIME_LIMIT_S`; a call in this process is stopped by an alarm);
* ``misleading``: a one-line refusal that does not name the problem (a word is missing, or the
  message says something it must not), or a refusal of legitimate input.

Cases that train use the ``smoke`` profile on mnist-5k (seconds each); a trained PDD checkpoint and a
fitted MCDD are made once and copied or shared. Nothing needs a network or a GPU. Everything runs on
one thread (torch's here, ``OMP_NUM_THREADS=1`` in each command's process); a command-line case
spends most of its time importing torch, so ``--in-process`` is several times faster.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pddlite import PDD, PDDLiteError, make_task, make_task_from_arrays, make_validation_task  # noqa: E402
from pddlite.baselines import EGBAD, MCDD, DeepSVDD, GANomaly, PixelCentroid, PixelKNN  # noqa: E402
from pddlite.cli import main as cli_main  # noqa: E402
from pddlite.experiment import run_task  # noqa: E402
from pddlite.grid import RunSpec, replicate, write_row  # noqa: E402
from pddlite.pdd import read_checkpoint  # noqa: E402
from pddlite.report import make_report  # noqa: E402
from pddlite.runtime import Runtime  # noqa: E402
from tests.test_data import write_idx_images, write_idx_labels, write_mnist_like  # noqa: E402

CATEGORIES = ("clean", "handled", "silent-wrong", "traceback", "misleading")
DOORS = ("cli run", "cli replicate", "cli report", "make_task", "make_validation_task", "make_task_from_arrays",
         "PDD options", "baseline options", "fit", "decision_function", "checkpoints", "torchvision files",
         "result rows", "faults mid-write", "full disks", "pipes", "stale claims", "files from elsewhere", "refits")
SMOKE = ("--profile", "smoke", "--device", "cpu", "--no-progress")
CUDA = torch.cuda.is_available()  # the cases about an absent GPU only mean something without one


@dataclass(frozen=True)
class Case:
    """One call and its oracle. API cases have ``call``, command-line cases ``argv``.

    A case that expects a refusal names ``words`` its message must contain (and ``avoid``: words it
    must not); a case of legitimate input has ``check``, which says whether the result is right,
    and ``expect``, the same in words. ``{tmp}`` in ``argv`` is the case's temporary folder.
    """

    door: str
    name: str
    call: Callable[[Path], Any] | None = None
    argv: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    driver: str | None = None  # Python run before the command line's main(): a fault to inject
    words: tuple[str, ...] | None = None
    avoid: tuple[str, ...] = ()
    check: Callable[[Any, Path], bool] | None = None
    expect: str = ""
    wrong: str = "silent-wrong"  # the category of a legitimate call whose check fails
    trains: bool = False
    own_processes: bool = False  # starts processes itself (cannot run inside a test process)

    @property
    def cli(self) -> bool:
        return bool(self.argv)

    @property
    def needs_a_process(self) -> bool:
        """A driver patches the library, or the case starts processes: never inside the caller's process."""
        return self.driver is not None or self.own_processes


def refuses(door, name, call, *words, avoid=(), trains=False) -> Case:
    """Bad input to ``call(tmp)``: refused in one line that says every one of ``words``."""
    return Case(door, name, call=call, words=words, avoid=tuple(avoid), trains=trains)


def accepts(door, name, call, check, expect, *, trains=False, wrong="silent-wrong", own_processes=False) -> Case:
    """Legitimate input to ``call(tmp)``: ``check(result, tmp)`` says whether it did the right thing."""
    return Case(door, name, call=call, check=check, expect=expect, trains=trains, wrong=wrong,
                own_processes=own_processes)


def cli_refuses(door, name, argv, *words, setup=None, driver=None, avoid=(), trains=False) -> Case:
    """``pddlite ARGV`` (after ``setup(tmp)``) exits 2 with one line that says every one of ``words``."""
    return Case(door, name, argv=tuple(argv), setup=setup, driver=driver, words=words, avoid=tuple(avoid),
                trains=trains)


def cli_accepts(door, name, argv, check, expect, *, setup=None, driver=None, trains=False,
                wrong="silent-wrong") -> Case:
    """``pddlite ARGV`` (after ``setup(tmp)``) does the right thing: ``check(ran, tmp)``."""
    return Case(door, name, argv=tuple(argv), setup=setup, driver=driver, check=check, expect=expect,
                trains=trains, wrong=wrong)


# --------------------------------------------------------------------------- running a case


@dataclass
class Ran:
    """What a command did: exit status, stdout and stderr."""

    code: int
    out: str
    err: str


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def judge_refusal(case: Case, message: str) -> tuple[str, str]:
    """A refusal: clean when it is one line with every word of the case and none it must avoid."""
    if case.words is None:
        return "misleading", f"refused a legitimate input: {_first_line(message)}"
    if "\n" in message.strip():
        return "misleading", f"more than one line: {message.strip()[:300]!r}"
    low = message.lower()
    missing = [w for w in case.words if w.lower() not in low]
    wrong = [w for w in case.avoid if w.lower() in low]
    if missing or wrong:
        why = "; ".join(filter(None, [missing and f"does not say {missing}", wrong and f"says {wrong}"]))
        return "misleading", f"{message.strip()[:300]} ({why})"
    return "clean", message.strip()[:300]


def judge_result(case: Case, value: Any, tmp: Path) -> tuple[str, str]:
    """A call that returned: right (handled) or wrong, by the case's check."""
    if case.words is not None:
        return "silent-wrong", f"accepted; expected a refusal that says {list(case.words)}"
    try:
        right = bool(case.check(value, tmp))
        why = ""
    except Exception as err:  # a check that cannot read the result: the result is not what it should be
        right, why = False, f" ({type(err).__name__}: {_first_line(str(err))})"
    return ("handled", case.expect) if right else (case.wrong, f"expected {case.expect}{why}")


#: seconds a case may take before it counts as a hang
TIME_LIMIT_S = 240


class NoAnswer(BaseException):
    """Raised by the alarm when a call in this process hangs (a named pipe read, a lock waited on)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Stop the code inside after ``seconds`` with :class:`NoAnswer` (POSIX, main thread; else no limit)."""
    import threading

    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise NoAnswer(f"no answer within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_api(case: Case, tmp: Path) -> tuple[str, str]:
    try:
        with time_limit(TIME_LIMIT_S):
            value = case.call(tmp)
    except NoAnswer as err:
        return "traceback", str(err)
    except PDDLiteError as err:
        return judge_refusal(case, str(err))
    except Exception as err:
        return "traceback", f"{type(err).__name__}: {_first_line(str(err))}"
    return judge_result(case, value, tmp)


#: how a driver ends: the command line as ``python -m pddlite`` runs it
_DRIVER_MAIN = "\nimport sys\nfrom pddlite.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run_process(argv: list[str], tmp: Path, driver: str | None, timeout: float) -> Ran:
    """``python -m pddlite ARGV`` (or the driver, then main) in a process of its own, in ``tmp``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PDDLITE_PROFILE": "smoke",
           "PDDLITE_DATA": str(tmp / "data-cache"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pddlite", *argv] if driver is None else [sys.executable, "-c",
                                                                            driver + _DRIVER_MAIN, *argv]
    try:
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Ran(-9, "", f"no answer within {timeout:.0f} s (killed)")
    return Ran(done.returncode, done.stdout, done.stderr)


def run_in_this_process(argv: list[str]) -> Ran:
    """The command line's ``main`` called here, its output captured: what a test can afford."""
    out, err = io.StringIO(), io.StringIO()

    def show(message, category, filename, lineno, file=None, line=None):  # as the interpreter prints them
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show  # a test runner's own warning capture would hide them
        try:
            with time_limit(TIME_LIMIT_S):
                code = cli_main(argv)
        except NoAnswer as stop:
            err.write(f"{stop} (stopped)\n")
            code = -9
        except SystemExit as stop:  # argparse's refusals
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # what the interpreter would print and exit with
            traceback.print_exc()
            code = 1
    return Ran(code, out.getvalue(), err.getvalue())


_ERROR_LINE = re.compile(r"^pddlite(?: [a-z]+)?: error: ")


def refusal_message(err: str) -> str | None:
    """The refusal on stderr: one ``pddlite: error:`` line, or argparse's usage lines and its error
    line; ``None`` when stderr is anything else."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if not lines or not _ERROR_LINE.match(lines[-1]):
        return None
    if len(lines) > 1 and not lines[0].startswith("usage:"):
        return "\n".join(lines)  # other lines before the error: judged as more than one line
    return _ERROR_LINE.sub("", lines[-1])


def run_cli(case: Case, tmp: Path, in_process: bool) -> tuple[str, str]:
    if case.setup is not None:
        case.setup(tmp)
    argv = [a.format(tmp=tmp) for a in case.argv]
    ran = run_in_this_process(argv) if in_process else run_process(argv, tmp, case.driver, TIME_LIMIT_S)
    if "Traceback (most recent call last)" in ran.err or ran.code == -9:
        return "traceback", _last_line(ran.err)
    if ran.code == 2:
        message = refusal_message(ran.err)
        if message is None:
            return "misleading", f"exit 2 without an error line: {ran.err.strip()[-300:]!r}"
        return judge_refusal(case, message)
    if case.words is not None:
        return "silent-wrong", f"exit {ran.code}; expected a refusal that says {list(case.words)}"
    return judge_result(case, ran, tmp)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:300]


def run_case(case: Case, in_process_cli: bool = False) -> dict[str, Any]:
    """Run one case in a fresh temporary folder; its JSON row (name, door, category, detail, seconds)."""
    start = time.perf_counter()
    in_process = in_process_cli and not case.needs_a_process
    with tempfile.TemporaryDirectory(prefix="pddlite-bad-input-") as folder:
        tmp = Path(folder)
        try:
            category, detail = run_cli(case, tmp, in_process) if case.cli else run_api(case, tmp)
        except Exception as err:  # in a case's setup: the library failed before the call itself
            category, detail = "traceback", f"while setting the case up: {type(err).__name__}: {_first_line(str(err))}"
    return {"case": case.name, "door": case.door, "category": category, "detail": detail,
            "seconds": round(time.perf_counter() - start, 2), "trains": case.trains,
            "via": "process" if case.cli and not in_process else "call"}


# --------------------------------------------------------------------------- data and shared models


def tiny_arrays(per_class: int = 6, classes=(0, 1, 2, 3), shape=(28, 28), seed: int = 0):
    """Random uint8 images, ``per_class`` of each class: the smallest input a task can be built from."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(classes), per_class)
    return rng.integers(0, 256, size=(len(y), *shape), dtype=np.uint8), y


def unit_floats(per_class: int = 6):
    x, y = tiny_arrays(per_class)
    return x.astype(np.float32) / 255.0, y


class Shared:
    """What several cases read and none changes: built on first use, once per campaign."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:  # only the cases that train need one
            self._folder = Path(tempfile.mkdtemp(prefix="pddlite-bad-input-shared-"))
        return self._folder

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def task(self, anomaly: int = 1, shots: int = 20):
        """An mnist-5k task (seed 0): the task the command line builds by default."""
        return self._get(f"task{anomaly}-{shots}", lambda: make_task("mnist-5k", anomaly, shots, 0))

    def pdd(self) -> tuple[PDD, Path]:
        """A smoke PDD fitted on task() with a checkpoint: the model ``pddlite run --checkpoint`` writes."""
        def fit():
            path = self.folder / "pdd.pt"
            model = PDD(profile="smoke", device="cpu", seed=0, progress=False, checkpoint=path).fit(self.task())
            return model, path
        return self._get("pdd", fit)

    def mcdd(self) -> MCDD:
        return self._get("mcdd", lambda: MCDD(profile="smoke", device="cpu", progress=False).fit(self.task()))

    def checkpoint_copy(self, tmp: Path) -> Path:
        """A copy of the trained checkpoint in the case's own folder."""
        return Path(shutil.copy(self.pdd()[1], tmp / "model.pt"))

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._made.clear()
        self._folder = None


SHARED = Shared()


def pdd(**options) -> PDD:
    return PDD(profile="smoke", device="cpu", progress=False, **options)


def same_scores(a: np.ndarray, b: np.ndarray, atol: float = 0.0) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=atol)


# --------------------------------------------------------------------------- faults to inject


#: the file system refuses every write, as a read-only mount does (reading goes on: the imports come first)
READ_ONLY = """
import builtins, errno, io, os
import pddlite.cli
def _refuse(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")
_open, _os_open = io.open, os.open
def _open_to_read(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        _refuse()
    return _open(file, mode, *args, **kwargs)
def _os_open_to_read(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        _refuse()
    return _os_open(path, flags, *args, **kwargs)
def _mkdir(path, *args, **kwargs):
    if os.path.exists(path):
        raise FileExistsError(errno.EEXIST, "File exists", str(path))
    _refuse()
builtins.open = io.open = _open_to_read
os.open, os.mkdir = _os_open_to_read, _mkdir
"""

#: Ctrl-C while the work runs (in the function each command calls to compute)
CTRL_C_RUN = """
import pddlite.cli
def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt
pddlite.cli.run_task = _interrupt
"""
CTRL_C_GRID = CTRL_C_RUN.replace("pddlite.cli", "pddlite.grid")

#: no network: a download fails as urllib fails offline
OFFLINE = """
import urllib.error
import torchvision.datasets.mnist as _mnist
def _offline(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")
_mnist.download_and_extract_archive = _offline
"""

#: a method that takes a while and logs each run it does; the first run waits until both workers
#: are there, so that the two always overlap
SLOW_WORKER = """
import os, sys, time
from pddlite.methods import METHODS
_log, _here = os.environ["CAMPAIGN_LOG"], os.environ["CAMPAIGN_BARRIER"]
with open(_here, "a") as fh:
    fh.write(f"{os.getpid()}\\n")
def _run(task, profile, seed, device, progress=True, **options):
    deadline = time.time() + 120
    while len(open(_here).read().split()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    with open(_log, "a") as fh:
        fh.write(f"{os.getpid()} {task.anomaly_classes[0]} {seed}\\n")
    time.sleep(0.3)
    return {"auroc": 0.5, "auprc": 0.1}
METHODS["slow"] = type("Slow", (), {"run": staticmethod(_run)})
"""


def plain_file(tmp: Path) -> None:
    (tmp / "plain").write_text("a file where a folder is expected\n")


# --------------------------------------------------------------------------- cli run


def _row(tmp: Path, name: str = "row.json") -> dict[str, Any]:
    return json.loads((tmp / name).read_text())


def _printed_row(ran: Ran, tmp: Path, name: str = "row.json") -> dict[str, Any] | None:
    """The JSON row written by ``--out``, if the command succeeded and printed the same AUROC."""
    row = _row(tmp, name)
    return row if ran.code == 0 and f"AUROC {row['auroc']:.4f}" in ran.out and 0 <= row["auroc"] <= 1 else None


def damaged_mnist(tmp: Path) -> None:
    write_mnist_like(tmp / "data", "MNIST")
    images = tmp / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])


def cli_run_cases() -> list[Case]:
    door = "cli run"
    run = ("run", *SMOKE)
    knn = (*run, "--method", "pixel-knn")

    def interrupted(ran: Ran, tmp: Path, checkpoint: bool) -> bool:
        err = ran.err.strip()
        return (ran.code == 130 and err.startswith("pddlite: interrupted") and "\n" not in err
                and ("--checkpoint" in err) == checkpoint)

    def another_anomaly(tmp: Path) -> None:
        SHARED.checkpoint_copy(tmp)  # trained on anomaly 1

    cases = [
        cli_refuses(door, "anomaly that is not a number", (*knn, "--anomaly", "one"), "--anomaly", "invalid int"),
        cli_refuses(door, "shots that leave no unlabeled image", (*knn, "--shots", "400"),
                    "none is left unlabeled", "lower --shots"),
        cli_refuses(door, "seed beyond 64 bits", (*knn, "--seed", str(2**64)), "seed", "2**62"),
        cli_refuses(door, "--variant for a baseline", (*knn, "--variant", "paper"), "--variant", "PDD only"),
        cli_refuses(door, "--checkpoint for a baseline", (*knn, "--checkpoint", "{tmp}/c.pt"), "--checkpoint",
                    "PDD only"),
        cli_refuses(door, "--out empty", (*knn, "--out", ""), "--out is empty"),
        cli_refuses(door, "--out a folder", (*knn, "--out", "{tmp}"), "is a folder"),
        cli_refuses(door, "--out under a file", (*knn, "--out", "{tmp}/plain/row.json"), "plain is a file",
                    setup=plain_file),
        cli_refuses(door, "--out on a read-only file system", (*knn, "--out", "{tmp}/row.json"), "--out",
                    "read-only file system", driver=READ_ONLY),
        cli_refuses(door, "--checkpoint on a read-only file system", (*run, "--checkpoint", "{tmp}/c.pt"),
                    "--checkpoint", "read-only file system", driver=READ_ONLY),
        cli_refuses(door, "--checkpoint a folder", (*run, "--checkpoint", "{tmp}"), "--checkpoint", "is a folder"),
        cli_refuses(door, "checkpoint of anomaly 1 resumed for --anomaly 7",
                    (*run, "--anomaly", "7", "--no-ablation", "--checkpoint", "{tmp}/model.pt"),
                    "another task", "anomaly_classes [1] (this task: [7])", setup=another_anomaly, trains=True),
        cli_refuses(door, "truncated MNIST file in --data-dir",
                    (*knn, "--dataset", "mnist", "--data-dir", "{tmp}/data"),
                    "damaged", "delete", avoid=("not found",), setup=damaged_mnist),
        cli_refuses(door, "dataset missing and offline", (*knn, "--dataset", "mnist", "--data-dir", "{tmp}/none"),
                    "--data-dir", "mnist-5k", driver=OFFLINE),
        cli_accepts(door, "Ctrl-C in a baseline run", knn, lambda ran, tmp: interrupted(ran, tmp, checkpoint=False),
                    "exit 130, one line, no --checkpoint advice (a baseline has no checkpoint)",
                    driver=CTRL_C_RUN, wrong="misleading"),
        cli_accepts(door, "Ctrl-C in a PDD run", run, lambda ran, tmp: interrupted(ran, tmp, checkpoint=True),
                    "exit 130, one line that says --checkpoint resumes", driver=CTRL_C_RUN, wrong="misleading"),
        cli_accepts(door, "a baseline run writes its row where --out says",
                    (*knn, "--anomaly", "3", "7", "--out", "{tmp}/new/deeper/row.json"),
                    lambda ran, tmp: (r := _printed_row(ran, tmp, "new/deeper/row.json")) is not None
                    and (r["anomaly"], r["method"], r["profile"]) == ([3, 7], "pixel-knn", "smoke"),
                    "a new folder, the row of anomalies [3, 7], the printed AUROC"),
        cli_accepts(door, "a smoke PDD run", (*run, "--no-ablation", "--out", "{tmp}/row.json"),
                    lambda ran, tmp: (r := _printed_row(ran, tmp)) is not None and r["variant"] == "pddlite"
                    and "pretrain_auroc" in r and "adversarial_only_auroc" not in r,
                    "a pddlite row with the pre-training metrics and no ablation", trains=True),
    ]
    if not CUDA:
        cases.append(cli_refuses(door, "--device cuda without a GPU", (*knn, "--device", "cuda"),
                                 "CUDA is not available", "--device cpu"))
    return cases


# --------------------------------------------------------------------------- cli replicate


def _grid_argv(*extra: str) -> tuple[str, ...]:
    return ("replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--anomalies", "1", "--reps", "1",
            *SMOKE, *extra)


def _grid_row_path(tmp: Path, anomaly: int = 1, rep: int = 0) -> Path:
    return RunSpec("mnist-5k", anomaly, "pixel-knn", rep).path(tmp / "res", "smoke")


def _finished_grid(tmp: Path) -> None:
    """The folder after ``replicate`` has run (pixel-knn trains nothing: a second)."""
    replicate(["mnist-5k"], ["pixel-knn"], reps=1, anomalies=[1], profile="smoke", out_dir=tmp / "res",
              runtime=Runtime(device="cpu", progress=False), progress=False)


def _forge(**change: Any) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _finished_grid(tmp)
        path = _grid_row_path(tmp)
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    return setup


def _rerun(ran: Ran, tmp: Path) -> bool:
    row = json.loads(_grid_row_path(tmp).read_text())
    return (ran.code == 0 and "re-running" in ran.err and row["auroc"] < 0.99 and row["profile"] == "smoke"
            and row["shots"] == 20 and isinstance(row["auprc"], float) and row["precision"] == "fp32"
            and row.get("data") != "0123456789abcdef")


def _claimed(live: bool) -> Callable[[Path], None]:
    """A claim on the run by a live process (this one's parent: alive whether the command runs in a
    process of its own or in this one) or by one that has ended."""
    def setup(tmp: Path) -> None:
        import socket

        from pddlite.files import claim_path

        pid = os.getppid() if live else _dead_pid()
        lock = claim_path(_grid_row_path(tmp))
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "since": time.time()}))
    return setup


def _dead_pid() -> int:
    """The id of a process that has ended (one of ours, so that no one else's is named)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def two_workers(tmp: Path) -> list[list[str]]:
    """Two ``replicate`` processes on one folder, started together; every run each one did."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "CAMPAIGN_LOG": str(tmp / "runs.log"), "CAMPAIGN_BARRIER": str(tmp / "workers")}
    argv = ["replicate", "--datasets", "mnist-5k", "--methods", "slow", "--anomalies", "0", "1", "2", "3",
            "--reps", "2", *SMOKE, "--out", str(tmp / "res")]
    workers = [subprocess.Popen([sys.executable, "-c", SLOW_WORKER + _DRIVER_MAIN, *argv], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = [w.wait(timeout=240) for w in workers]
    if any(codes):
        raise RuntimeError(f"a worker failed: {[w.stderr.read()[-300:] for w in workers]}")
    return [line.split() for line in (tmp / "runs.log").read_text().splitlines()]


def cli_replicate_cases() -> list[Case]:
    door = "cli replicate"
    return [
        cli_refuses(door, "--reps 0", _grid_argv("--reps", "0", "--out", "{tmp}/res"), "reps must be at least 1"),
        cli_refuses(door, "--reps beyond the largest seed", _grid_argv("--reps", str(2**64), "--out", "{tmp}/res"),
                    "reps", "seed"),
        cli_refuses(door, "--shard 3/2", _grid_argv("--shard", "3/2", "--out", "{tmp}/res"), "k/n", "'3/2'"),
        cli_refuses(door, "--out a file", _grid_argv("--out", "{tmp}/plain"), "is a file", setup=plain_file),
        cli_refuses(door, "--out on a read-only file system", _grid_argv("--out", "{tmp}/res"), "--out",
                    "read-only file system", driver=READ_ONLY),
        cli_refuses(door, "--dry-run --shots 1", _grid_argv("--shots", "1", "--dry-run", "--out", "{tmp}/res"),
                    "shots", ">= 2"),
        cli_accepts(door, "Ctrl-C in the grid", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 130 and "run the same command again" in ran.err
                    and "--checkpoint" not in ran.err and len(ran.err.strip().splitlines()) == 1,
                    "exit 130, one line: run the same command again (no --checkpoint, which replicate has not)",
                    driver=CTRL_C_GRID, wrong="misleading"),
        cli_accepts(door, "a row of another profile, shots and AUROC 0.999 at this run's path",
                    _grid_argv("--out", "{tmp}/res"), _rerun, "the run again, its own row in place of the forged one",
                    setup=_forge(profile="quick", shots=10, auroc=0.999)),
        cli_accepts(door, "a row of another anomaly at this run's path", _grid_argv("--out", "{tmp}/res"),
                    _rerun, "the run again", setup=_forge(anomaly=2)),
        cli_accepts(door, "a row with AUROC NaN at this run's path", _grid_argv("--out", "{tmp}/res"), _rerun,
                    "the run again: a NaN is not a finished result", setup=_forge(auroc=float("nan"))),
        cli_accepts(door, "a row with AUPRC as text at this run's path", _grid_argv("--out", "{tmp}/res"), _rerun,
                    "the run again: text is not a finished result", setup=_forge(auprc="0.3")),
        cli_accepts(door, "a bf16 row at this run's fp32 path", _grid_argv("--out", "{tmp}/res"), _rerun,
                    "the run again in this run's precision", setup=_forge(precision="bf16")),
        cli_accepts(door, "a row made on other images at this run's path", _grid_argv("--out", "{tmp}/res"), _rerun,
                    "the run again on this run's images", setup=_forge(data="0123456789abcdef")),
        cli_accepts(door, "a half-written row file", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0
                    and json.loads(_grid_row_path(tmp).read_text())["method"] == "pixel-knn",
                    "the run again, a whole row",
                    setup=lambda tmp: (_grid_row_path(tmp).parent.mkdir(parents=True),
                                       _grid_row_path(tmp).write_text('{"dataset": "mnist-5k", "au'))),
        cli_accepts(door, "a finished grid run again", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and "1 runs finished" in ran.out and "re-running" not in ran.err,
                    "nothing re-run", setup=_finished_grid),
        cli_accepts(door, "a claim left by a process that has ended", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and _grid_row_path(tmp).exists(),
                    "the claim taken over and the run done", setup=_claimed(live=False)),
        cli_accepts(door, "a run claimed by a live worker", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and not _grid_row_path(tmp).exists() and "other workers" in ran.err,
                    "the run left to its worker, and a line that says so", setup=_claimed(live=True)),
        accepts(door, "two replicate processes on one folder", two_workers,
                lambda log, tmp: sorted(tuple(r[1:]) for r in log) == sorted(
                    (str(a), str(s)) for a in range(4) for s in range(2))
                and len(list((tmp / "res").rglob("*.json"))) == 8,
                "each of the 8 runs done once, by one of the two", own_processes=True),
    ]


# --------------------------------------------------------------------------- cli report and result rows


def write_rows(folder: Path, reps=(0, 1), anomalies=(0, 1), **change: Any) -> None:
    """Result rows as ``replicate`` writes them: mcdd on mnist, one file per (anomaly, repetition)."""
    for anomaly in anomalies:
        for rep in reps:
            row = {"dataset": "mnist", "anomaly": anomaly, "method": "mcdd", "rep": rep, "seed": rep,
                   "profile": "smoke", "shots": 20, "split": "test", "device": "cpu", "seconds": 1.0,
                   "settings": "s1", "finished_at": "2026-01-02T00:00:00+00:00",
                   "auroc": 0.8 + 0.01 * anomaly + 0.001 * rep, "auprc": 0.3, **change}
            # where replicate would put the row, whatever a change made of its fields
            write_row(row, RunSpec("mnist", anomaly, "mcdd", rep).path(folder, "smoke"))


def _runs_in_summary(folder: Path) -> int | None:
    found = re.search(r"^(\d+) runs", (folder / "summary.md").read_text(), re.M)
    return int(found.group(1)) if found else None


def cli_report_cases() -> list[Case]:
    door = "cli report"

    def rows(tmp: Path) -> None:
        write_rows(tmp / "res")

    def malformed(tmp: Path) -> None:
        write_rows(tmp / "res", auroc="0.9")

    def backup(tmp: Path) -> None:
        write_rows(tmp / "res")
        shutil.copytree(tmp / "res" / "smoke", tmp / "res" / "backup" / "smoke")

    return [
        cli_refuses(door, "a results folder that does not exist", ("report", "{tmp}/missing"), "no results folder"),
        cli_refuses(door, "a file for the results folder", ("report", "{tmp}/plain"), "is a file", setup=plain_file,
                    avoid=("first",)),
        cli_refuses(door, "an empty results folder", ("report", "{tmp}"), "no result rows"),
        cli_refuses(door, "--out a file", ("report", "{tmp}/res", "--out", "{tmp}/plain"), "is a file",
                    setup=lambda tmp: (rows(tmp), plain_file(tmp))),
        cli_refuses(door, "--out under a file", ("report", "{tmp}/res", "--out", "{tmp}/plain/figures"),
                    "plain is a file", setup=lambda tmp: (rows(tmp), plain_file(tmp))),
        cli_refuses(door, "--shots that no row has", ("report", "{tmp}/res", "--shots", "10"), "shots 10", "20",
                    setup=rows, avoid=("first",)),
        cli_refuses(door, "--profile that no row has", ("report", "{tmp}/res", "--profile", "quick"), "quick", "smoke",
                    setup=rows),
        cli_refuses(door, "every row malformed", ("report", "{tmp}/res"), "auroc", setup=malformed, avoid=("first",)),
        cli_accepts(door, "a report of four runs", ("report", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and _runs_in_summary(tmp / "res") == 4
                    and (tmp / "res" / "auroc_vs_mcdd_mnist.png").exists(),
                    "summary.md of 4 runs and the MCDD figure", setup=rows),
        cli_accepts(door, "a backup copy of every row in a sub-folder", ("report", "{tmp}/res", "--out", "{tmp}/fig"),
                    lambda ran, tmp: ran.code == 0 and _runs_in_summary(tmp / "fig") == 4
                    and ran.err.count("another row of the run") == 4,
                    "4 runs, the 4 copies named as skipped", setup=backup),
    ]


def _odd_row(**change: Any) -> Callable[[Path], int | None]:
    """A report of four good rows and one more (repetition 5) changed by ``change``: how many runs it counts."""
    def call(tmp: Path) -> int | None:
        write_rows(tmp / "res")
        write_rows(tmp / "res", reps=(5,), anomalies=(1,), **change)
        make_report(tmp / "res", tmp / "fig")
        return _runs_in_summary(tmp / "fig")
    return call


def _extra_file(text: str) -> Callable[[Path], int | None]:
    def call(tmp: Path) -> int | None:
        write_rows(tmp / "res")
        (tmp / "res" / "smoke" / "mnist" / "mcdd" / "extra.json").write_text(text)
        with contextlib.redirect_stderr(io.StringIO()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make_report(tmp / "res", tmp / "fig")
        return _runs_in_summary(tmp / "fig")
    return call


def result_row_cases() -> list[Case]:
    door = "result rows"
    left_out = "the odd row left out: 4 runs"

    def odd(name: str, runs: int = 4, **change: Any) -> Case:
        with_it = "the row counted: 5 runs"
        return accepts(door, name, _odd_row(**change), lambda n, tmp, runs=runs: n == runs,
                       left_out if runs == 4 else with_it)

    def quiet(call):
        def run(tmp):
            with contextlib.redirect_stderr(io.StringIO()):
                return call(tmp)
        return run

    cases = [
        odd("auroc as a string", auroc="0.9"),
        odd("auroc NaN", auroc=float("nan")),
        odd("auroc above 1", auroc=1.5),
        odd("auroc null", auroc=None),
        odd("auprc a list", auprc=[0.3]),
        odd("anomaly as a string", anomaly="1"),
        odd("anomaly as a float", anomaly=1.0),
        odd("seed as a float", seed=0.5),
        odd("seed as a bool", seed=True),
        odd("dataset as a number", dataset=5),
        odd("method as a list", method=["mcdd"]),
        odd("variant as a list", variant=[1]),
        odd("shots as a list", shots=[20]),
        odd("shots as a string", shots="20"),
        odd("profile as a mapping", profile={"name": "smoke"}),
        odd("split as a list", split=["test"]),
        odd("another shots count", shots=10),
        odd("older settings", settings="s0", finished_at="2025-01-01T00:00:00+00:00"),
        odd("finished_at as a number", runs=5, finished_at=5),
        odd("a row with no settings of an older pddlite", runs=4, settings=None,
            finished_at="2025-01-01T00:00:00+00:00"),
        accepts(door, "a file that is not JSON", _extra_file("{not json"), lambda n, tmp: n == 4, left_out),
        accepts(door, "an empty .json file", _extra_file(""), lambda n, tmp: n == 4, left_out),
        accepts(door, "a JSON list", _extra_file("[1, 2]"), lambda n, tmp: n == 4, left_out),
    ]
    for i, case in enumerate(cases):
        cases[i] = dataclasses.replace(case, call=quiet(case.call))
    return cases


# --------------------------------------------------------------------------- tasks


def make_task_cases() -> list[Case]:
    door = "make_task"
    t = lambda **kw: (lambda tmp: make_task(**{"dataset": "mnist-5k", "anomaly": 1, **kw}))  # noqa: E731
    cases = [
        refuses(door, "unknown dataset", t(dataset="imagenet"), "unknown dataset", "mnist-5k"),
        refuses(door, "dataset None", t(dataset=None), "unknown dataset"),
        refuses(door, "anomaly 10", t(anomaly=10), "no class 10"),
        refuses(door, "anomaly -1", t(anomaly=-1), "no class -1"),
        refuses(door, "anomaly as a float", t(anomaly=1.0), "anomaly", "1.0"),
        refuses(door, "anomaly None", t(anomaly=None), "anomaly"),
        refuses(door, "anomaly as a string", t(anomaly="1"), "integers"),
        refuses(door, "anomaly True", t(anomaly=True), "integers"),
        refuses(door, "no anomaly class", t(anomaly=[]), "at least one anomaly class"),
        refuses(door, "every class anomalous", t(anomaly=list(range(10))), "every class"),
        refuses(door, "shots 1", t(shots=1), "shots", ">= 2"),
        refuses(door, "shots as a float", t(shots=5.0), "shots", "integer"),
        refuses(door, "shots beyond a class", t(shots=401), "fewer than shots=401"),
        refuses(door, "shots that leave no unlabeled image", t(shots=400), "none is left unlabeled"),
        refuses(door, "seed -1", t(seed=-1), "seed"),
        refuses(door, "seed beyond 64 bits", t(seed=2**64), "seed", "2**62"),
        refuses(door, "seed as a float", t(seed=0.5), "seed"),
        refuses(door, "seed as a string", t(seed="0"), "seed"),
        refuses(door, "device that does not exist", t(device="tpu"), "tpu"),
        accepts(door, "dataset spelled another way", t(dataset="MNIST_5K"),
                lambda task, tmp: task.dataset == "mnist-5k", "dataset mnist-5k"),
        accepts(door, "numpy integers", t(anomaly=np.int64(3), shots=np.int32(5), seed=np.int64(2)),
                lambda task, tmp: task.anomaly_classes == (3,) and task.shots == 5 and len(task.prototype_images) == 45,
                "anomaly (3,), 9 x 5 prototypes"),
        accepts(door, "anomaly as an array", t(anomaly=np.array([3, 1])),
                lambda task, tmp: task.anomaly_classes == (1, 3), "anomaly classes (1, 3)"),
        accepts(door, "the same anomaly twice", t(anomaly=[3, 3]), lambda task, tmp: task.anomaly_classes == (3,),
                "anomaly classes (3,)"),
        accepts(door, "the largest seed", t(seed=2**62 - 1), lambda task, tmp: task.seed == 2**62 - 1,
                "a task with that seed"),
        accepts(door, "prototypes kept in the unlabeled set", t(remove_prototypes=False),
                lambda task, tmp: len(task.train_images) == 3600, "3,600 unlabeled images"),
    ]
    if not CUDA:
        cases.append(refuses(door, "device cuda without a GPU", t(device="cuda"), "CUDA is not available"))
    return cases


def make_validation_task_cases() -> list[Case]:
    door = "make_validation_task"
    v = lambda **kw: (lambda tmp: make_validation_task(**{"dataset": "mnist-5k", "anomaly": 1, **kw}))  # noqa: E731

    def same_prototypes(task, tmp) -> bool:
        test = SHARED.task()
        return (task.split == "validation" and bool(task.test_is_anomaly.any())
                and torch.equal(task.prototype_images, test.prototype_images))

    return [
        refuses(door, "holdout 0", v(holdout=0.0), "holdout"),
        refuses(door, "holdout 1", v(holdout=1.0), "holdout"),
        refuses(door, "holdout NaN", v(holdout=float("nan")), "holdout"),
        refuses(door, "holdout as a word", v(holdout="a fifth"), "holdout"),
        refuses(door, "holdout None", v(holdout=None), "holdout"),
        refuses(door, "one normal class", v(anomaly=list(range(9))), "two or more normal classes"),
        refuses(door, "shots that leave no image to hold out", v(shots=399), "shots"),
        refuses(door, "anomaly as a float", v(anomaly=1.0), "anomaly", "1.0"),
        refuses(door, "seed beyond 64 bits", v(seed=2**64), "seed"),
        refuses(door, "unknown dataset", v(dataset="svhn"), "unknown dataset"),
        accepts(door, "the validation task of the default task", v(), same_prototypes,
                "a validation split with anomalies, and the test task's prototypes"),
        accepts(door, "holdout as a numpy float", v(holdout=np.float32(0.3)),
                lambda task, tmp: task.split == "validation" and len(task.test_images) > 0,
                "a validation task"),
    ]


def make_task_from_arrays_cases() -> list[Case]:
    door = "make_task_from_arrays"

    def arrays(x=None, y=None, anomaly=1, shots=2, **kw):
        def call(tmp):
            bx, by = tiny_arrays()
            return make_task_from_arrays(bx if x is None else x, by if y is None else y, anomaly, shots, **kw)
        return call

    x, y = tiny_arrays()
    f, _ = unit_floats()
    with_nan, with_inf = f.copy(), f.copy()
    with_nan[3, 4, 5], with_inf[0, 0, 0] = np.nan, np.inf
    fractional = y + 0.2 + 0.5 * (np.arange(len(y)) % 2)  # 1.2 and 1.7 would both become 1 if truncated
    label_nan = y.astype(float)
    label_nan[2] = np.nan
    reference = lambda: make_task_from_arrays(x, y, 1, 2)  # noqa: E731

    def same_task(task, tmp) -> bool:
        ref = reference()
        return all(torch.allclose(getattr(task, n), getattr(ref, n), atol=1e-6)
                   for n in ("train_images", "prototype_images", "test_images"))

    cases = [
        refuses(door, "NaN pixels", arrays(x=with_nan), "NaN"),
        refuses(door, "infinite pixels", arrays(x=with_inf), "infinite"),
        refuses(door, "bool images", arrays(x=x > 127), "booleans"),
        refuses(door, "string images", arrays(x=x.astype(str)), "numbers"),
        refuses(door, "object images", arrays(x=x.astype(object)), "numbers"),
        refuses(door, "complex images", arrays(x=x.astype(np.complex64)), "complex"),
        refuses(door, "float pixels 0..255", arrays(x=x.astype(np.float32)), "[0, 1]"),
        refuses(door, "floats already in [-1, 1]", arrays(x=f * 2 - 1), "[0, 1]"),
        refuses(door, "negative integer pixels", arrays(x=x.astype(np.int64) - 128), "[0, 255]"),
        refuses(door, "16-bit pixels above 255", arrays(x=x.astype(np.uint16) * 4), "[0, 255]"),
        refuses(door, "30x30 images", arrays(x=tiny_arrays(shape=(30, 30))[0]), "(1, 30, 30)"),
        refuses(door, "grey 64x64 images", arrays(x=tiny_arrays(shape=(64, 64))[0]), "(1, 64, 64)"),
        refuses(door, "colour 28x28 images", arrays(x=tiny_arrays(shape=(28, 28, 3))[0]), "(3, 28, 28)"),
        refuses(door, "one image, not a batch", arrays(x=x[0]), "N x H x W"),
        refuses(door, "five dimensions", arrays(x=x[:, None, None]), "N x H x W"),
        refuses(door, "fractional labels 1.2 and 1.7", arrays(y=fractional), "whole class numbers"),
        refuses(door, "NaN label", arrays(y=label_nan), "NaN"),
        refuses(door, "string labels", arrays(y=y.astype(str)), "numbers"),
        refuses(door, "bool labels", arrays(y=y > 1), "booleans"),
        refuses(door, "negative labels", arrays(y=y - 1), ">= 0"),
        refuses(door, "one label short", arrays(y=y[:-1]), "one label per image"),
        refuses(door, "anomaly class with no images", arrays(anomaly=7), "class 7"),
        refuses(door, "anomaly as a float", arrays(anomaly=1.0), "anomaly", "1.0"),
        refuses(door, "zero images", arrays(x=x[:0], y=y[:0]), "no images"),
        refuses(door, "a class with one image", arrays(x=x[:-5], y=y[:-5]), "one image"),
        refuses(door, "test_fraction 0", arrays(test_fraction=0.0), "test_fraction"),
        refuses(door, "test_fraction 1", arrays(test_fraction=1.0), "test_fraction"),
        refuses(door, "test_fraction negative", arrays(test_fraction=-0.2), "test_fraction"),
        refuses(door, "test_fraction as a string", arrays(test_fraction="0.2"), "test_fraction"),
        refuses(door, "test_fraction too small for every class", arrays(test_fraction=0.01), "test_fraction"),
        refuses(door, "test images without test labels", arrays(test_images=x), "test_images and test_labels"),
        refuses(door, "test images of another shape", arrays(test_images=tiny_arrays(shape=(32, 32, 3))[0],
                                                              test_labels=y), "test images"),
        refuses(door, "shots that leave no unlabeled image", arrays(shots=6, test_images=x, test_labels=y),
                "none is left unlabeled"),
        refuses(door, "seed beyond 64 bits", arrays(seed=2**64), "seed"),
        refuses(door, "device that does not exist", arrays(device="tpu"), "tpu"),
        accepts(door, "floats in [0, 1] equal uint8", arrays(x=x.astype(np.float64) / 255.0), same_task,
                "the uint8 task"),
        accepts(door, "int64 pixels equal uint8", arrays(x=x.astype(np.int64)), same_task, "the uint8 task"),
        accepts(door, "channels-last grey images", arrays(x=x[..., None]), same_task, "the uint8 task"),
        accepts(door, "nested lists", arrays(x=x.tolist(), y=y.tolist()), same_task, "the uint8 task"),
        accepts(door, "labels as a column", arrays(y=y[:, None]), same_task, "the uint8 task"),
        accepts(door, "whole float labels", arrays(y=y.astype(np.float64)), same_task, "the uint8 task"),
        accepts(door, "float16 images in [0, 1]", arrays(x=(x / 255.0).astype(np.float16)),
                lambda task, tmp: task.image_shape == (1, 28, 28) and task.train_images.abs().max() <= 1,
                "a 1x28x28 task in [-1, 1]"),
        accepts(door, "colour 32x32 images", arrays(x=tiny_arrays(shape=(32, 32, 3))[0]),
                lambda task, tmp: task.image_shape == (3, 64, 64), "a 3x64x64 task (resized)"),
        accepts(door, "sparse class numbers", arrays(y=np.repeat([0, 5, 9, 1000], 6), anomaly=5),
                lambda task, tmp: task.normal_classes == (0, 9, 1000), "normal classes 0, 9, 1000"),
        accepts(door, "test_fraction as a numpy float", arrays(test_fraction=np.float32(0.25)),
                lambda task, tmp: len(task.test_images) == 6, "6 test images"),
    ]
    return cases


# --------------------------------------------------------------------------- detector options and fit


def pdd_option_cases() -> list[Case]:
    door = "PDD options"
    p = lambda **kw: (lambda tmp: pdd(**kw))  # noqa: E731
    bad = [("width", "abc"), ("width", 0), ("width", float("inf")), ("beta", float("nan")), ("beta", -1.0),
           ("lr", 0.0), ("lr", "fast"), ("margin_lr", -1e-4), ("bandwidth", 0.0), ("q_intra", 1.5),
           ("q_inter", -0.1), ("tune_epochs", -1), ("pretrain_epochs", 0), ("pretrain_batch_size", -64),
           ("tune_batch_size", 2.5), ("max_train_images", 0), ("ema_decay", 1.0), ("z_std", float("nan")),
           ("margin_steps", "no"), ("seed", 2**64), ("seed", -1)]
    cases = [refuses(door, f"{name}={value!r}", p(**{name: value}), name) for name, value in bad]
    cases += [
        refuses(door, "unknown scoring", p(scoring="svm"), "unknown scoring"),
        refuses(door, "unknown normalization", p(normalization="zca"), "normalization"),
        refuses(door, "unknown margin", p(margin="hinge"), "margin"),
        refuses(door, "unknown layout", p(layout="wide"), "layout"),
        refuses(door, "unknown bandwidth unit", p(bandwidth_unit="px"), "bandwidth_unit"),
        refuses(door, "unknown variant", p(variant="notebook"), "unknown variant"),
        refuses(door, "unknown profile", lambda tmp: PDD(profile="huge", device="cpu"), "unknown profile"),
        refuses(door, "unknown device", lambda tmp: PDD(profile="smoke", device="tpu"), "tpu"),
        refuses(door, "unknown precision", p(precision="fp8"), "precision"),
        refuses(door, "unknown option", p(colour="red"), "unknown PDD option", "colour"),
        refuses(door, "checkpoint=True", p(checkpoint=True), "checkpoint"),
        refuses(door, "width a million", p(width=1e6), "width"),
        accepts(door, "numpy values", p(tune_epochs=np.int64(2), beta=np.float32(1.0), seed=np.int64(3)),
                lambda m, tmp: (m.tune_epochs, m.beta, m.seed) == (2, 1.0, 3), "the values as given"),
        accepts(door, "beta 0", p(beta=0.0), lambda m, tmp: m.beta == 0.0, "beta 0 (no margin weight)"),
        accepts(door, "None for the profile's epochs", p(tune_epochs=None),
                lambda m, tmp: m.schedule("mnist-5k")["tune_epochs"] == 1, "the smoke profile's 1 epoch"),
        accepts(door, "profile spelled ' SMOKE'", lambda tmp: PDD(profile=" SMOKE", device="cpu"),
                lambda m, tmp: m._resolve()["profile_"].name == "smoke", "the smoke profile"),
    ]
    if not CUDA:
        cases.append(refuses(door, "device cuda without a GPU", lambda tmp: PDD(profile="smoke", device="cuda"),
                             "CUDA is not available"))
    return cases


def baseline_option_cases() -> list[Case]:
    door = "baseline options"
    trained = {"egbad": EGBAD, "ganomaly": GANomaly, "mcdd": MCDD, "deepsvdd": DeepSVDD}
    pixel = {"pixel-knn": PixelKNN, "pixel-centroid": PixelCentroid}
    cases = []
    for name, cls in trained.items():
        make = lambda cls=cls, **kw: (lambda tmp: cls(profile="smoke", device="cpu", **kw))  # noqa: E731
        cases += [
            refuses(door, f"{name} epochs=0", make(epochs=0), "epochs"),
            refuses(door, f"{name} batch_size=-4", make(batch_size=-4), "batch_size"),
            refuses(door, f"{name} width='abc'", make(width="abc"), "width"),
            refuses(door, f"{name} seed beyond 64 bits", make(seed=2**64), "seed"),
            refuses(door, f"{name} unknown option", make(beta=3.0), "unknown", "beta"),
        ]
    for name, cls in pixel.items():
        cases += [
            refuses(door, f"{name} unknown option", lambda tmp, cls=cls: cls(k=3), "unknown", "k"),
            refuses(door, f"{name} seed -1", lambda tmp, cls=cls: cls(seed=-1), "seed"),
        ]
    for name in (*trained, *pixel):
        run = lambda name=name, **kw: (lambda tmp: run_task("mnist-5k", 1, profile="smoke", method=name,  # noqa: E731
                                                             runtime=Runtime(device="cpu", progress=False), **kw))
        cases += [
            refuses(door, f"{name} with a PDD variant", run(variant="paper"), "variant"),
            refuses(door, f"{name} with a checkpoint", run(checkpoint="c.pt"), "checkpoint"),
        ]
    cases += [
        refuses(door, "egbad weight 1.5", lambda tmp: EGBAD(profile="smoke", device="cpu", weight=1.5), "weight"),
        refuses(door, "egbad weight as a word", lambda tmp: EGBAD(profile="smoke", device="cpu", weight="high"),
                "weight"),
        refuses(door, "egbad ema_decay 1", lambda tmp: EGBAD(profile="smoke", device="cpu", ema_decay=1.0),
                "ema_decay"),
        refuses(door, "ganomaly adversarial 'bce'", lambda tmp: GANomaly(profile="smoke", device="cpu",
                                                                          adversarial="bce"), "adversarial"),
        refuses(door, "ganomaly lr as a word", lambda tmp: GANomaly(profile="smoke", device="cpu", lr="fast"), "lr"),
        refuses(door, "ganomaly w_con -1", lambda tmp: GANomaly(profile="smoke", device="cpu", w_con=-1.0), "w_con"),
        refuses(door, "mcdd recipe 'deep'", lambda tmp: MCDD(profile="smoke", device="cpu", recipe="deep"), "recipe"),
        refuses(door, "mcdd latent_dim 0", lambda tmp: MCDD(profile="smoke", device="cpu", latent_dim=0),
                "latent_dim"),
        refuses(door, "mcdd bounded_scale 'no'", lambda tmp: MCDD(profile="smoke", device="cpu", bounded_scale="no"),
                "bounded_scale"),
        refuses(door, "deepsvdd ae_epochs -1", lambda tmp: DeepSVDD(profile="smoke", device="cpu", ae_epochs=-1),
                "ae_epochs"),
        refuses(door, "deepsvdd rep_dim 0", lambda tmp: DeepSVDD(profile="smoke", device="cpu", rep_dim=0), "rep_dim"),
        refuses(door, "pixel-knn chunk_size 0",
                lambda tmp: PixelKNN(chunk_size=0).fit(SHARED.task()).decision_function(SHARED.task().test_images[:4]),
                "chunk_size"),
        refuses(door, "pixel-knn chunk_size as a word", lambda tmp: PixelKNN(chunk_size="big"), "chunk_size"),
        accepts(door, "mcdd epochs as a numpy integer", lambda tmp: MCDD(profile="smoke", device="cpu",
                                                                         epochs=np.int64(2)),
                lambda m, tmp: m.schedule("mnist-5k")["epochs"] == 2, "2 epochs", wrong="misleading"),
    ]
    return cases


def fit_cases() -> list[Case]:
    door = "fit"
    task = SHARED.task
    images = lambda: torch.cat([task().train_images[:64], task().prototype_images])  # noqa: E731
    labels = lambda: torch.cat([torch.full((64,), -1), task().prototype_labels])  # noqa: E731

    def with_nan(tmp):
        x = images().clone()
        x[3, 0, 4, 4] = float("nan")
        return pdd().fit(x, labels())

    def one_normal_class(tmp):
        x, y = tiny_arrays(per_class=20, classes=(0, 1))
        return pdd().fit(make_task_from_arrays(x, y, anomaly=1, shots=5))

    return [
        refuses(door, "PDD on images with a NaN", with_nan, "NaN", avoid=("diverged",)),
        refuses(door, "PDD on images without labels", lambda tmp: pdd().fit(images()), "needs labels"),
        refuses(door, "PDD with every image unlabeled",
                lambda tmp: pdd().fit(images(), torch.full((len(images()),), -1)), "labeled prototypes"),
        refuses(door, "PDD with prototypes of one class",
                lambda tmp: pdd().fit(images(), torch.cat([torch.full((64,), -1), torch.zeros(len(images()) - 64)])),
                "two normal classes"),
        refuses(door, "PDD with fractional labels", lambda tmp: pdd().fit(images(), labels() + 0.5), "whole"),
        refuses(door, "PDD with one label short", lambda tmp: pdd().fit(images(), labels()[:-1]),
                "one label per image"),
        refuses(door, "PDD on raw 0..255 pixels", lambda tmp: pdd().fit((images() + 1) * 127.5, labels()), "[-1, 1]"),
        refuses(door, "PDD on a task and labels", lambda tmp: pdd().fit(task(), labels()), "takes no labels"),
        refuses(door, "PDD tuned before pre-training", lambda tmp: pdd().tune_up(task()), "pre-train first"),
        refuses(door, "MCDD on images without labels",
                lambda tmp: MCDD(profile="smoke", device="cpu", progress=False).fit(images()), "labeled normal data"),
        refuses(door, "pixel-knn on images without labels", lambda tmp: PixelKNN().fit(images()), "labels"),
        refuses(door, "Deep SVDD on 3x32x32 images",
                lambda tmp: DeepSVDD(profile="smoke", device="cpu", progress=False).fit(torch.zeros(8, 3, 32, 32)),
                "32"),
        refuses(door, "PDD on a task with one normal class", one_normal_class, "two", "classes", trains=True),
        accepts(door, "pixel-knn on images and labels", lambda tmp: PixelKNN().fit(images(), labels().clamp_min(0)),
                lambda m, tmp: m.decision_function(images()[:3]).shape == (3,), "3 scores"),
    ]


# --------------------------------------------------------------------------- decision_function


def decision_function_cases() -> list[Case]:
    door = "decision_function"
    task = SHARED.task

    def knn():
        return PixelKNN().fit(task())

    test = lambda: task().test_images[:40]  # noqa: E731

    def scoring(model, images) -> Callable[[Path], np.ndarray]:
        return lambda tmp: model().decision_function(images())

    def nan_images():
        x = test().clone()
        x[0, 0, 0, 0] = float("nan")
        return x

    def inf_images():
        x = test().clone()
        x[1, 0, 5, 5] = float("inf")
        return x

    fitted_pdd = lambda: SHARED.pdd()[0]  # noqa: E731
    cases = []
    for who, model, trains in (("pixel-knn", knn, False), ("PDD", fitted_pdd, True), ("MCDD", SHARED.mcdd, True)):
        cases += [
            refuses(door, f"{who}: raw 0..255 pixels", scoring(model, lambda: (test() + 1) * 127.5), "[-1, 1]",
                    "to_unit_range", trains=trains),
            refuses(door, f"{who}: NaN pixel", scoring(model, nan_images), "NaN", avoid=("diverged",), trains=trains),
            refuses(door, f"{who}: bool images", scoring(model, lambda: test() > 0), "booleans", trains=trains),
            refuses(door, f"{who}: pixels in [0, 1]", scoring(model, lambda: test() * 0.5 + 0.5), "[-1, 1]",
                    trains=trains),
        ]
    cases += [
        refuses(door, "PDD: infinite pixel", scoring(fitted_pdd, inf_images), "infinite", avoid=("diverged",),
                trains=True),
        refuses(door, "PDD: 3x64x64 images for a 28x28 model", scoring(fitted_pdd, lambda: torch.zeros(2, 3, 64, 64)),
                "1 x 28 x 28", trains=True),
        refuses(door, "pixel-knn: one image without its batch axis", scoring(knn, lambda: test()[0]),
                "N x 1 x 28 x 28"),
        refuses(door, "pixel-knn: channels last", scoring(knn, lambda: test().permute(0, 2, 3, 1)), "N x 1 x 28 x 28"),
        refuses(door, "pixel-knn: an empty batch", scoring(knn, lambda: test()[:0]), "no images"),
        refuses(door, "pixel-knn: strings", scoring(knn, lambda: np.array([["a"]])), "numbers"),
        refuses(door, "pixel-knn: None", scoring(knn, lambda: None), "numbers"),
        refuses(door, "PDD not fitted", lambda tmp: pdd().decision_function(test()), "not fitted"),
        refuses(door, "Deep SVDD not fitted",
                lambda tmp: DeepSVDD(profile="smoke", device="cpu").decision_function(test()), "not fitted"),
        accepts(door, "pixel-knn: numpy float64", scoring(knn, lambda: test().double().numpy()),
                lambda s, tmp: same_scores(s, knn().decision_function(test())), "the tensor's scores"),
        accepts(door, "pixel-knn: one image", scoring(knn, lambda: test()[:1]),
                # float64 distances, up to the last bits of a matrix product's blocking
                lambda s, tmp: same_scores(s, knn().decision_function(test())[:1], 1e-9), "its score in the batch"),
        accepts(door, "pixel-knn: float16", scoring(knn, lambda: test().half()),
                lambda s, tmp: same_scores(s, knn().decision_function(test()), atol=0.05), "the float32 scores"),
        accepts(door, "PDD: numpy input", scoring(fitted_pdd, lambda: test().numpy()),
                lambda s, tmp: same_scores(s, fitted_pdd().decision_function(test())), "the tensor's scores",
                trains=True),
        accepts(door, "PDD: two halves score as the whole", scoring(fitted_pdd, test),
                lambda s, tmp: same_scores(s, np.concatenate([fitted_pdd().decision_function(test()[:20]),
                                                              fitted_pdd().decision_function(test()[20:])]), 1e-9),
                "the same scores batch by batch", trains=True),
    ]
    return cases


# --------------------------------------------------------------------------- checkpoints


def _tampered(change: Callable[[dict], dict]) -> Callable[[Path], PDD]:
    """PDD.load of the trained checkpoint after ``change`` rewrote its state."""
    def call(tmp: Path) -> PDD:
        path = SHARED.checkpoint_copy(tmp)
        torch.save(change(read_checkpoint(path)), path)
        return PDD.load(path, device="cpu")
    return call


def _resume_on(make, **options) -> Callable[[Path], PDD]:
    """A PDD given the trained checkpoint (anomaly 1, 20 shots, seed 0) to resume on another task;
    no epoch may run (a finished checkpoint is loaded, never trained again)."""
    def call(tmp: Path) -> PDD:
        from pddlite.trainer import EpochTrainer

        def no_training(*args, **kwargs):
            raise AssertionError("an epoch ran: the checkpoint was trained again")

        model = pdd(checkpoint=SHARED.checkpoint_copy(tmp), **options)
        train_epoch, EpochTrainer.train_epoch = EpochTrainer.train_epoch, no_training
        try:
            return model.fit(make())
        finally:
            EpochTrainer.train_epoch = train_epoch
    return call


def checkpoint_cases() -> list[Case]:
    door = "checkpoints"

    def other_dataset():
        x, y = tiny_arrays(per_class=30, classes=tuple(range(10)))
        return make_task_from_arrays(x, y, 1, 20, test_images=x, test_labels=y)

    def raw(data: bytes) -> Callable[[Path], PDD]:
        def call(tmp):
            (tmp / "c.pt").write_bytes(data)
            return PDD.load(tmp / "c.pt", device="cpu")
        return call

    def truncated(tmp):
        path = SHARED.checkpoint_copy(tmp)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return PDD.load(path, device="cpu")

    def foreign(tmp):
        torch.save({"weights": torch.zeros(3)}, tmp / "c.pt")
        return PDD.load(tmp / "c.pt", device="cpu")

    def without_task(tmp):
        return PDD.load(SHARED.checkpoint_copy(tmp), device="cpu").decision_function(SHARED.task().test_images[:5])

    def save_into(where: str) -> Callable[[Path], Path]:
        def call(tmp):
            plain_file(tmp)
            return SHARED.pdd()[0].save(where.format(tmp=tmp))
        return call

    def round_trip(model, tmp) -> bool:
        x = SHARED.task().test_images[:50]
        return same_scores(model.decision_function(x), SHARED.pdd()[0].decision_function(x))

    drop = lambda key: (lambda s: {k: v for k, v in s.items() if k != key})  # noqa: E731
    return [
        refuses(door, "resumed for another anomaly", _resume_on(lambda: SHARED.task(anomaly=7)), "another task",
                "anomaly_classes", trains=True),
        refuses(door, "resumed for another shots count", _resume_on(lambda: SHARED.task(shots=10)), "another task",
                "shots", trains=True),
        refuses(door, "resumed for another dataset", _resume_on(other_dataset), "another task", "dataset",
                trains=True),
        refuses(door, "resumed with another seed", _resume_on(SHARED.task, seed=1), "seed", trains=True),
        refuses(door, "resumed at another width", _resume_on(SHARED.task, width=0.25), "architecture", trains=True),
        refuses(door, "resumed with another beta", _resume_on(SHARED.task, beta=1.0), "hyper-parameters", trains=True),
        refuses(door, "missing keys", _tampered(drop("discriminator")), "incomplete", "discriminator", trains=True),
        refuses(door, "an unknown config field",
                _tampered(lambda s: {**s, "config": {**s["config"], "temperature": 2}}), "temperature", trains=True),
        refuses(door, "a config value of the wrong type",
                _tampered(lambda s: {**s, "config": {**s["config"], "beta": "x"}}), "beta", trains=True),
        refuses(door, "an unknown stage", _tampered(lambda s: {**s, "stage": "polishing"}), "stage", trains=True),
        refuses(door, "a seed that is not a number", _tampered(lambda s: {**s, "seed": "zero"}), "seed", trains=True),
        refuses(door, "an architecture without its image shape",
                _tampered(lambda s: {**s, "architecture": drop("image_shape")(s["architecture"])}), "image_shape",
                trains=True),
        refuses(door, "truncated", truncated, "not a readable", trains=True),
        refuses(door, "random bytes", raw(np.random.default_rng(0).bytes(4000)), "not a readable"),
        refuses(door, "an empty file", raw(b""), "not a readable"),
        refuses(door, "a torch file that is not a checkpoint", foreign, "not a pddlite PDD checkpoint"),
        refuses(door, "a folder", lambda tmp: PDD.load(tmp, device="cpu"), "IsADirectory"),
        refuses(door, "a path that does not exist", lambda tmp: PDD.load(tmp / "none.pt"), "no checkpoint at"),
        refuses(door, "loaded without its task, then scored", without_task, "fit_scorer(task)",
                avoid=("centre", "center"), trains=True),
        refuses(door, "loaded with another task's prototypes",
                lambda tmp: PDD.load(SHARED.checkpoint_copy(tmp), task=SHARED.task(anomaly=7), device="cpu"),
                "another task", trains=True),
        refuses(door, "loaded onto an unknown device",
                lambda tmp: PDD.load(SHARED.checkpoint_copy(tmp), device="tpu"), "tpu", trains=True),
        refuses(door, "saved to a folder", save_into("{tmp}"), "is a folder", trains=True),
        refuses(door, "saved under a file", save_into("{tmp}/plain/model.pt"), "plain", trains=True),
        refuses(door, "saved to an empty path", save_into(""), "empty path", "give a file path", trains=True),
        refuses(door, "--checkpoint under a file (Python)",
                lambda tmp: (plain_file(tmp), pdd(checkpoint=tmp / "plain" / "c.pt").fit(SHARED.task()))[1], "plain",
                trains=True),
        accepts(door, "loaded with its task", lambda tmp: PDD.load(SHARED.checkpoint_copy(tmp), task=SHARED.task(),
                                                                    device="cpu"),
                round_trip, "the trained model's scores", trains=True),
        accepts(door, "a finished checkpoint given again", _resume_on(SHARED.task), round_trip,
                "the same model, not trained again", trains=True),
    ]


# --------------------------------------------------------------------------- torchvision files


def _mnist_files(damage: Callable[[Path], None] | None = None, folder: str = "MNIST",
                 dataset: str = "mnist") -> Callable[[Path], Any]:
    """make_task on tiny MNIST-format files in the case's folder, after ``damage`` to its raw folder."""
    def call(tmp):
        write_mnist_like(tmp, folder)
        if damage is not None:
            damage(tmp / folder / "raw")
        return make_task(dataset, anomaly=2, shots=3, seed=0, root=tmp, download=False)
    return call


def torchvision_cases() -> list[Case]:
    door = "torchvision files"
    images, labels = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"

    def rewrite(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
        return lambda raw: (raw / name).write_bytes(edit((raw / name).read_bytes()))

    def label_200(raw: Path) -> None:
        y = np.tile(np.arange(10), 4)
        y[5] = 200
        write_idx_labels(raw / labels, y)

    def short_labels(raw: Path) -> None:
        write_idx_labels(raw / labels, np.tile(np.arange(10), 4)[:-3])

    def wrong_size(raw: Path) -> None:
        write_idx_images(raw / images, np.zeros((40, 32, 32), np.uint8))

    def cifar_garbage(tmp):
        folder = tmp / "cifar-10-batches-py"
        folder.mkdir()
        for name in ("data_batch_1", "test_batch", "batches.meta"):
            (folder / name).write_bytes(b"\x80not a pickle")
        return make_task("cifar10", anomaly=3, shots=2, root=tmp, download=False)

    damaged = ("damaged", "delete")
    return [
        refuses(door, "truncated images file", _mnist_files(rewrite(images, lambda b: b[:1000])), *damaged,
                avoid=("not found",)),
        refuses(door, "empty images file", _mnist_files(rewrite(images, lambda b: b"")), *damaged,
                avoid=("not found",)),
        refuses(door, "random bytes", _mnist_files(rewrite(images, lambda b: np.random.default_rng(0).bytes(5000))),
                *damaged, avoid=("not found",)),
        refuses(door, "wrong magic number", _mnist_files(rewrite(images, lambda b: struct.pack(">I", 1234) + b[4:])),
                *damaged, avoid=("not found",)),
        refuses(door, "a header that counts more images", _mnist_files(rewrite(images, lambda b: b[:4]
                + struct.pack(">I", 400) + b[8:])), *damaged, avoid=("not found",)),
        refuses(door, "labels file shorter than the images", _mnist_files(short_labels), *damaged),
        refuses(door, "a label 200", _mnist_files(label_200), "class 200", "damaged"),
        refuses(door, "32x32 images in an MNIST file", _mnist_files(wrong_size), "(1, 32, 32)"),
        refuses(door, "the test files missing",
                _mnist_files(lambda raw: [(raw / f"t10k-{k}-idx{d}-ubyte").unlink() for k, d in (("images", 3),
                                                                                                  ("labels", 1))]),
                "not found"),
        refuses(door, "no files at all", lambda tmp: make_task("mnist", 1, root=tmp, download=False), "not found",
                "mnist-5k"),
        refuses(door, "root a file", lambda tmp: (plain_file(tmp), make_task("mnist", 1, root=tmp / "plain",
                                                                             download=False))[1], "not found"),
        refuses(door, "truncated Fashion-MNIST file", _mnist_files(rewrite(images, lambda b: b[:1000]), "FashionMNIST",
                                                                   "fashion-mnist"), *damaged),
        refuses(door, "CIFAR-10 files that are not pickles", cifar_garbage, *damaged),
        accepts(door, "MNIST files in torchvision's layout", _mnist_files(),
                lambda task, tmp: task.test_images.shape == (20, 1, 28, 28) and len(task.prototype_images) == 27,
                "a task of 20 test images and 27 prototypes"),
        accepts(door, "Fashion-MNIST files", _mnist_files(folder="FashionMNIST", dataset="fashion-mnist"),
                lambda task, tmp: task.class_names[2] == "Pullover", "the Fashion-MNIST class names"),
    ]


# --------------------------------------------------------------------------- faults mid-write and full disks


#: the disk is full: every write of a byte fails (an empty file still fits, as on a real full disk);
#: reading goes on. Nothing may train first: a run that trains before it checks is caught too.
FULL_DISK = """
import builtins, errno, io, os
import pddlite.cli, pddlite.grid
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
class _FullFile:
    def __init__(self, fh):
        self._fh = fh
    def write(self, data):
        if len(data):
            _full()
        return 0
    def __getattr__(self, name):
        return getattr(self._fh, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self._fh.close()
_open, _os_write = io.open, os.write
def _open_full(file, mode="r", *args, **kwargs):
    fh = _open(file, mode, *args, **kwargs)
    return _FullFile(fh) if any(c in mode for c in "wax+") else fh
def _os_write_full(fd, data):
    if len(data):
        _full()
    return 0
builtins.open = io.open = _open_full
os.write = _os_write_full
def _no_training(*args, **kwargs):
    raise RuntimeError("trained before checking where the result goes")
pddlite.cli.run_task = pddlite.grid.run_task = _no_training
"""

#: the results folder turns into a file while the run trains: its row cannot be written where asked
FOLDER_GONE = """
import os, shutil, sys
import pddlite.cli
_run_task = pddlite.cli.run_task
def _run_then_block(**kwargs):
    row = _run_task(**kwargs)
    shutil.rmtree("out")
    open("out", "w").write("in the way")
    return row
pddlite.cli.run_task = _run_then_block
"""


class _FullFile:
    """A file on a full disk, for the calls made in this process: a byte written is ENOSPC (only in
    files whose name holds ``only``, when given: the disk fills up in the middle of the work)."""

    only: str | None = None

    def __init__(self, path, mode="r", *args, **kwargs):
        self._fh = open(path, mode, *args, **kwargs)
        self._full = self.only is None or self.only in str(path)

    def write(self, data):
        if len(data) and self._full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def on_a_full_disk(call: Callable[[Path], Any], only: str | None = None) -> Callable[[Path], Any]:
    """``call`` with every file pddlite writes on a full disk (pddlite.files' ``open`` patched), or
    only the files whose name holds ``only``."""
    def run(tmp):
        from unittest import mock

        full = type("FullDisk", (_FullFile,), {"only": only})
        with mock.patch("pddlite.files.open", full, create=True):
            return call(tmp)
    return run


def _only_regular_files(tmp: Path, folder: str = ".") -> bool:
    return all(p.is_file() and p.stat().st_size > 0 for p in (tmp / folder).rglob("*") if not p.is_dir())


def fault_cases() -> list[Case]:
    door = "faults mid-write"
    from unittest import mock

    from pddlite.files import claim, write_atomically

    def clean_up_refused(tmp):
        def no_space(fh):
            fh.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

        def refuse(self, missing_ok=False):  # the folder turned read-only in the middle of the run
            raise OSError(errno.EROFS, "Read-only file system")

        with mock.patch.object(Path, "unlink", refuse):
            return write_atomically(tmp / "row.json", no_space)

    def short_torch_save(tmp):
        class Short(io.BufferedWriter):  # writes stop short, as a full network disk answers
            def write(self, data):
                return 0

        with mock.patch("pddlite.files.open", lambda path, mode="r": Short(io.FileIO(path, mode)), create=True):
            return write_atomically(tmp / "model.pt", lambda fh: torch.save({"w": torch.zeros(1000)}, fh))

    def figure_refused(tmp):
        write_rows(tmp / "res")
        (tmp / "fig").mkdir()
        try:  # the disk fills up while the first figure is saved
            return on_a_full_disk(lambda t: make_report(t / "res", t / "fig"), only=".png")(tmp)
        finally:
            left = list((tmp / "fig").iterdir())
            assert not left, f"a failed figure left {left}"

    def claim_refused(tmp):
        def no_space(fd, *args, **kwargs):
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")

        with mock.patch("pddlite.files.os.fdopen", no_space):
            try:
                return claim(tmp / "res" / "row.json")
            finally:
                leftover = list((tmp / "res").glob(".*.claim"))
                assert not leftover, f"an empty claim was left behind: {leftover}"

    return [
        refuses(door, "the temporary file cannot be removed after a failed write", clean_up_refused,
                "row.json", "No space left"),
        refuses(door, "torch.save meets a short write", short_torch_save, "model.pt", "No space left"),
        refuses(door, "the disk fills up while a figure is saved", figure_refused, "auroc_vs_mcdd_mnist.png",
                "No space left"),
        refuses(door, "the claim cannot be written", claim_refused, "claim", "No space left"),
        refuses(door, "the claim's folder is under a file",
                lambda tmp: (plain_file(tmp), claim(tmp / "plain" / "res" / "row.json"))[1], "claim", "plain"),
        cli_refuses(door, "the --out folder becomes a file while the run trains",
                    ("run", *SMOKE, "--method", "pixel-knn", "--out", "{tmp}/out/row.json"),
                    "out/row.json", "the result row is kept in", driver=FOLDER_GONE,
                    setup=lambda tmp: (tmp / "out").mkdir()),
    ]


def full_disk_cases() -> list[Case]:
    door = "full disks"
    knn = ("run", *SMOKE, "--method", "pixel-knn")

    def report_on_a_full_disk(tmp):
        write_rows(tmp / "res")
        (tmp / "fig").mkdir()
        return on_a_full_disk(lambda t: make_report(t / "res", t / "fig"))(tmp)

    long_name = "r" * 245 + ".json"
    return [
        cli_refuses(door, "run --out on a full disk", (*knn, "--out", "{tmp}/row.json"), "--out",
                    "No space left on device", driver=FULL_DISK),
        cli_refuses(door, "run --checkpoint on a full disk", ("run", *SMOKE, "--checkpoint", "{tmp}/c.pt"),
                    "--checkpoint", "No space left on device", driver=FULL_DISK),
        cli_refuses(door, "replicate --out on a full disk", _grid_argv("--out", "{tmp}/res"), "--out",
                    "No space left on device", driver=FULL_DISK),
        cli_refuses(door, "report on a full disk", ("report", "{tmp}/res"), "No space left on device",
                    driver=FULL_DISK, setup=lambda tmp: write_rows(tmp / "res")),
        refuses(door, "report on a full disk (Python)", report_on_a_full_disk, "--out", "No space left"),
        refuses(door, "a row written on a full disk (Python)",
                on_a_full_disk(lambda tmp: write_row({"auroc": 0.5}, tmp / "row.json")), "row.json", "No space left"),
        cli_refuses(door, "--checkpoint and --out the same file", ("run", *SMOKE, "--checkpoint", "{tmp}/x",
                                                                   "--out", "{tmp}/./x"), "both name"),
        cli_refuses(door, "--out a name longer than the file system allows",
                    (*knn, "--out", "{tmp}/" + "r" * 300 + ".json"), "--out", "longer than"),
        cli_accepts(door, "--out a long legal name (245 characters)", (*knn, "--out", "{tmp}/" + long_name),
                    lambda ran, tmp: _printed_row(ran, tmp, long_name) is not None
                    and [p.name for p in tmp.iterdir() if p.name != "data-cache"] == [long_name],
                    "the row written under its long name, and no temporary file left"),
    ]


# --------------------------------------------------------------------------- pipes


def _fifo(where: Callable[[Path], Path]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = where(tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
    return setup


def pipe_cases() -> list[Case]:
    door = "pipes"
    if not hasattr(os, "mkfifo"):
        return []

    def in_results(tmp):
        return tmp / "res" / "smoke" / "mnist" / "mcdd" / "pipe.json"

    def rows_and_pipe(tmp):
        write_rows(tmp / "res")
        _fifo(in_results)(tmp)

    def loaded(tmp):
        rows_and_pipe(tmp)
        from pddlite.grid import load_results

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_results(tmp / "res")

    return [
        cli_accepts(door, "a named pipe at a row's path", _grid_argv("--out", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and _grid_row_path(tmp).is_file()
                    and json.loads(_grid_row_path(tmp).read_text())["method"] == "pixel-knn",
                    "the run done, its row in place of the pipe", setup=_fifo(_grid_row_path), wrong="traceback"),
        cli_accepts(door, "a named pipe at a row's path (dry run)", _grid_argv("--out", "{tmp}/res", "--dry-run"),
                    lambda ran, tmp: ran.code == 0 and "0 done, 1 to run" in ran.out,
                    "the run counted as not done", setup=_fifo(_grid_row_path), wrong="traceback"),
        cli_accepts(door, "a named pipe in the folder a report reads", ("report", "{tmp}/res"),
                    lambda ran, tmp: ran.code == 0 and _runs_in_summary(tmp / "res") == 4 and "pipe.json" in ran.err,
                    "a report of the 4 rows, the pipe named as skipped", setup=rows_and_pipe, wrong="traceback"),
        accepts(door, "a named pipe among result files (Python)", loaded, lambda rows, tmp: len(rows) == 4,
                "the 4 rows, the pipe skipped", wrong="traceback"),
    ]


# --------------------------------------------------------------------------- stale claims across hosts


def _foreign_claim(host: str | None, age_s: float, pid: int | None = 4242, text: str | None = None):
    """A claim on the grid's run written by ``host`` (None: this machine, naming a live process) and
    last refreshed ``age_s`` seconds ago; ``text`` in place of the claim's JSON (an empty claim)."""
    def setup(tmp: Path) -> None:
        from pddlite.files import claim_path

        lock = claim_path(_grid_row_path(tmp))
        lock.parent.mkdir(parents=True)
        holder = {"host": host or socket.gethostname(), "pid": pid if host else os.getppid(), "since": time.time()}
        lock.write_text(json.dumps(holder) if text is None else text)
        then = time.time() - age_s
        os.utime(lock, (then, then))
    return setup


def stale_claim_cases() -> list[Case]:
    door = "stale claims"
    done = lambda ran, tmp: ran.code == 0 and _grid_row_path(tmp).is_file()  # noqa: E731

    def left_and_named(ran: Ran, tmp: Path) -> bool:
        return (ran.code == 0 and not _grid_row_path(tmp).exists() and "other workers" in ran.err
                and ".anomaly1_rep0_shots20.json.claim" in ran.err and "remove" in ran.err)

    return [
        cli_accepts(door, "a claim of a worker killed on another machine an hour ago", _grid_argv("--out", "{tmp}/res"),
                    done, "the claim taken over and the run done", setup=_foreign_claim("colab-vm-gone", 3600)),
        cli_accepts(door, "a days-old claim whose process id is now another live process",
                    _grid_argv("--out", "{tmp}/res"), done, "the claim taken over and the run done",
                    setup=_foreign_claim(None, 3 * 24 * 3600)),
        cli_accepts(door, "an empty claim left by a full disk an hour ago", _grid_argv("--out", "{tmp}/res"), done,
                    "the claim taken over and the run done", setup=_foreign_claim("cluster-node-7", 3600, text="")),
        cli_accepts(door, "a fresh claim of a live worker on another machine", _grid_argv("--out", "{tmp}/res"),
                    left_and_named, "the run left to its worker, and a line that names the claim file to remove "
                    "if no worker runs", setup=_foreign_claim("cluster-node-7", 5), wrong="misleading"),
    ]


# --------------------------------------------------------------------------- files from elsewhere


def _outside_untouched(tmp: Path) -> bool:
    return not any((tmp / "outside").iterdir())


def elsewhere_cases() -> list[Case]:
    door = "files from elsewhere"

    def rows_named(dataset: str, trap: bool = False) -> Callable[[Path], None]:
        def setup(tmp: Path) -> None:
            write_rows(tmp / "res", dataset=dataset)
            (tmp / "outside").mkdir()
            if trap:  # a folder the path in the row can climb out of
                (tmp / "fig" / "auroc_vs_mcdd_").mkdir(parents=True)
        return setup

    def inside(ran: Ran, tmp: Path) -> bool:
        pngs = [p for p in tmp.rglob("*.png")]
        return ran.code == 0 and len(pngs) == 1 and pngs[0].parent == tmp / "fig" and _outside_untouched(tmp)

    report = ("report", "{tmp}/res", "--out", "{tmp}/fig")
    return [
        cli_accepts(door, "a row whose dataset climbs out of the report folder", report, inside,
                    "one figure, inside the report folder, nothing outside",
                    setup=rows_named("/../../outside/escaped", trap=True)),
        cli_accepts(door, "a row whose dataset names a sub-folder", report, inside,
                    "one figure, inside the report folder", setup=rows_named("team/mnist"), wrong="traceback"),
        cli_accepts(door, "a row whose dataset is '..'", report, inside, "one figure, inside the report folder",
                    setup=rows_named("..")),
        cli_accepts(door, "a row whose dataset holds a NUL character", report, inside,
                    "one figure, inside the report folder", setup=rows_named("mnist\x00.png"), wrong="traceback"),
        cli_accepts(door, "a row whose dataset is 300 characters", report, inside,
                    "one figure, inside the report folder", setup=rows_named("m" * 300), wrong="traceback"),
    ]


# --------------------------------------------------------------------------- refits


def _refit(make: Callable[[], Any]) -> Callable[[Path], tuple[np.ndarray, np.ndarray]]:
    """A detector fitted on anomaly 1's task, then on anomaly 7's; and one fitted on anomaly 7's alone:
    the scores of both on anomaly 7's test images."""
    def call(tmp):
        first, second = SHARED.task(anomaly=1), SHARED.task(anomaly=7)
        images = second.test_images[:64]
        return make().fit(first).fit(second).decision_function(images), make().fit(second).decision_function(images)
    return call


def refit_cases() -> list[Case]:
    door = "refits"
    fresh = "the scores of a detector fitted on the second task alone"
    same = lambda s, tmp: same_scores(*s, atol=1e-5)  # noqa: E731
    return [
        accepts(door, "pixel-knn fitted again on another task", _refit(PixelKNN), same, fresh),
        accepts(door, "pixel centroid fitted again on another task", _refit(PixelCentroid), same, fresh),
        accepts(door, "MCDD fitted again on another task",
                _refit(lambda: MCDD(profile="smoke", device="cpu", progress=False, seed=0)), same, fresh, trains=True),
        accepts(door, "PDD fitted again on another task", _refit(lambda: pdd(seed=0)), same, fresh, trains=True),
        refuses(door, "PDD tuned up on another task than its pre-training",
                lambda tmp: pdd(seed=0).pretrain(SHARED.task(anomaly=1)).tune_up(SHARED.task(anomaly=7)),
                "another task", trains=True),
    ]


# --------------------------------------------------------------------------- the campaign


def all_cases() -> list[Case]:
    """Every case, door by door (names are unique)."""
    cases = (cli_run_cases() + cli_replicate_cases() + cli_report_cases() + make_task_cases()
             + make_validation_task_cases() + make_task_from_arrays_cases() + pdd_option_cases()
             + baseline_option_cases() + fit_cases() + decision_function_cases() + checkpoint_cases()
             + torchvision_cases() + result_row_cases() + fault_cases() + full_disk_cases() + pipe_cases()
             + stale_claim_cases() + elsewhere_cases() + refit_cases())
    names = Counter((c.door, c.name) for c in cases)
    assert max(names.values()) == 1, [n for n, k in names.items() if k > 1]
    return cases


def print_table(rows: list[dict[str, Any]]) -> None:
    """Totals per door and category, then every case that is neither clean nor handled."""
    width = max(len(d) for d in DOORS) + 2
    print(f"{'door':<{width}}" + "".join(f"{c:>14}" for c in CATEGORIES) + f"{'total':>8}")
    for door in [*DOORS, "all"]:
        mine = [r for r in rows if door in ("all", r["door"])]
        if not mine:
            continue
        counts = Counter(r["category"] for r in mine)
        print(f"{door:<{width}}" + "".join(f"{counts.get(c, 0):>14}" for c in CATEGORIES) + f"{len(mine):>8}")
    bad = [r for r in rows if r["category"] not in ("clean", "handled")]
    print(f"\n{len(bad)} of {len(rows)} cases neither clean nor handled" + (":" if bad else "."))
    for r in bad:
        print(f"  [{r['category']}] {r['door']}: {r['case']}: {r['detail']}")


def main(argv: list[str] | None = None) -> int:
    global TIME_LIMIT_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write one JSON row per case to this file")
    parser.add_argument("--no-training", action="store_true", help="only the cases that train nothing")
    parser.add_argument("--door", action="append", choices=DOORS, help="only this door (repeatable)")
    parser.add_argument("-k", dest="keyword", help="only cases whose name contains this")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help=f"seconds before a case counts as a hang (default {TIME_LIMIT_S})")
    parser.add_argument("--in-process", action="store_true",
                        help="call the command line's main() here instead of a process per case (faster; "
                             "cases that inject a fault still get their own process)")
    args = parser.parse_args(argv)
    TIME_LIMIT_S = args.time_limit
    torch.set_num_threads(1)
    cases = [c for c in all_cases() if not (args.no_training and c.trains)
             and (not args.door or c.door in args.door) and (not args.keyword or args.keyword in c.name)]
    start = time.perf_counter()
    rows = []
    try:
        for i, case in enumerate(cases, 1):
            row = run_case(case, in_process_cli=args.in_process)
            rows.append(row)
            print(f"[{i}/{len(cases)}] {row['category']:<12} {row['door']}: {row['case']} ({row['seconds']:.1f} s)",
                  file=sys.stderr, flush=True)
    finally:
        SHARED.close()
    print()
    print_table(rows)
    print(f"\n{len(rows)} cases in {time.perf_counter() - start:.0f} s")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

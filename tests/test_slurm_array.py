"""The SLURM job-array script, run locally: each array task is its own process with the environment
SLURM would give it (``cluster/slurm/replicate-array.sbatch``), on one shared results folder.

The union of the tasks' rows must be the whole grid, every run written exactly once (every write
of a row is logged through an audit hook on ``os.replace``, in every worker), a task killed mid-run
must leave its runs to a rerun of the same task, and a task warned of its time limit (SIGUSR1 to
the batch shell) or cancelled (SIGTERM to all its processes) must stop its workers without leaving
a claim behind.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pddlite.grid import grid_runs, select_shard
from tests.test_data import write_idx_images, write_idx_labels

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "slurm" / "replicate-array.sbatch"
GRID = ["--datasets", "mnist", "--methods", "pixel-knn", "pixel-centroid", "--reps", "2", "--anomalies", "0", "1",
        "2", "--shots", "5", "--device", "cpu"]
SHARDS, FIRST = 4, 0  # --array=0-3: shards 1..4

#: logs every result row written (os.replace onto a .json file) with the writing process's id
AUDIT = '''import os, sys
def _log_row_writes(event, args):
    if event == "os.rename" and str(args[1]).endswith(".json"):
        with open(os.environ["ROW_WRITES"], "a") as fh:
            fh.write(f"{os.getpid()} {args[1]}\\n")
sys.addaudithook(_log_row_writes)
'''


def write_data(root: Path) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 200), ("t10k", 60)):
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def task_env(tmp: Path, task_id: int, workers: int = 1) -> dict:
    site = tmp / "site"
    return {**os.environ, "SLURM_JOB_ID": str(1000 + task_id), "SLURM_ARRAY_JOB_ID": "999",
            "SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_MIN": str(FIRST),
            "SLURM_ARRAY_TASK_MAX": str(FIRST + SHARDS - 1), "SLURM_ARRAY_TASK_COUNT": str(SHARDS),
            "SLURM_ARRAY_TASK_STEP": "1", "SLURM_CPUS_PER_TASK": "1",
            "PDDLITE_PYTHON": sys.executable, "PDDLITE_WORKERS_PER_GPU": str(workers),
            "PDDLITE_DATA": str(tmp / "data"), "PDDLITE_PROFILE": "smoke", "ROW_WRITES": str(tmp / "writes.log"),
            "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def start(tmp: Path, task_id: int, workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT), "--out", str(tmp / "results"), *GRID], cwd=ROOT,
                            env=task_env(tmp, task_id, workers), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(task: subprocess.Popen) -> tuple[int, str]:
    out, _ = task.communicate(timeout=300)
    return task.returncode, out


def shard_paths(tmp: Path, shard: int) -> list[Path]:
    runs = select_shard(grid_runs(["mnist"], ["pixel-knn", "pixel-centroid"], 2, [0, 1, 2]), f"{shard}/{SHARDS}")
    return [r.path(tmp / "results", "smoke", shots=5) for r in runs]


def claims(tmp: Path) -> list[Path]:
    return sorted((tmp / "results").rglob(".*.claim"))


def session(task: subprocess.Popen) -> list[int]:
    """Every process of the task: the script and its workers (which run in process groups of their own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == task.pid:
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return pids


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def mid_run(paths: list[Path]) -> bool:
    """A row of the shard is written and the claim of another, not yet written, is held."""
    return any(p.exists() for p in paths) and any(
        p.with_name(f".{p.name}.claim").exists() and not p.exists() for p in paths)


def stop_mid_run(targets: dict) -> None:
    """For each task of ``targets`` (task -> (its shard's row paths, what to do)): freeze it (SIGSTOP)
    at a moment it is mid-run, do ``how(pids)`` and let it go on (SIGCONT). All are watched at once."""
    deadline = time.monotonic() + 240
    waiting = dict(targets)
    while waiting and time.monotonic() < deadline:
        for task, (paths, how) in list(waiting.items()):
            if task.poll() is not None:
                raise AssertionError(f"a task ended before it was caught mid-run:\n{finish(task)[1][-2000:]}")
            if mid_run(paths):
                pids = session(task)
                signal_all(pids, signal.SIGSTOP)
                if mid_run(paths):  # still, now that nothing moves
                    how(pids)
                    del waiting[task]
                signal_all(pids, signal.SIGCONT)
        time.sleep(0.005)
    assert not waiting, "a task was never mid-run"


def test_array_covers_the_grid_once_and_a_killed_warned_or_cancelled_task_is_finished_by_its_rerun(tmp_path):
    write_data(tmp_path / "data")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(AUDIT)
    every = [p for shard in range(1, SHARDS + 1) for p in shard_paths(tmp_path, shard)]
    assert len(every) == len(set(every)) == 12  # the shards partition the grid

    # task 0 (shard 1) runs two workers sharing its shard; task 1 (shard 2) is killed mid-run (SIGKILL to
    # all its processes, as a node failure would: nothing is cleaned up); task 2 (shard 3) is warned of its
    # time limit as --signal=B:USR1@300 does (USR1 to the batch shell only); task 3 (shard 4) is cancelled
    # as scancel and the time limit do (SIGTERM to every process of the job)
    first = start(tmp_path, FIRST, workers=2)
    killed, warned, cancelled = (start(tmp_path, FIRST + i) for i in (1, 2, 3))
    stop_mid_run({killed: (shard_paths(tmp_path, 2), lambda pids: signal_all(pids, signal.SIGKILL)),
                  warned: (shard_paths(tmp_path, 3), lambda pids: os.kill(warned.pid, signal.SIGUSR1)),
                  cancelled: (shard_paths(tmp_path, 4), lambda pids: signal_all(pids, signal.SIGTERM))})
    code, log = finish(first)
    assert code == 0, log[-3000:]
    assert f"shard 1/{SHARDS}, 2 worker(s)" in log
    killed.wait(timeout=60)
    for task in (warned, cancelled):
        code, log = finish(task)
        assert code != 0 and "stopping the workers" in log and "pddlite: interrupted" in log, log[-3000:]

    left = {shard: [p for p in shard_paths(tmp_path, shard) if not p.exists()] for shard in (2, 3, 4)}
    assert all(left.values()), "the three tasks were stopped before the end of their shards"
    assert all(p.exists() for p in shard_paths(tmp_path, 1))
    # the killed task's claim is left behind, its process gone; the warned and cancelled tasks released theirs
    stale = claims(tmp_path)
    assert stale and set(stale) <= {p.with_name(f".{p.name}.claim") for p in left[2]}, stale

    reruns = [start(tmp_path, task_id) for task_id in (FIRST + 1, FIRST + 2, FIRST + 3)]  # each as submitted
    for task in reruns:
        code, log = finish(task)
        assert code == 0, log[-3000:]
    assert not claims(tmp_path)

    rows = {p: json.loads(p.read_text()) for p in every}
    for run, path in zip([r for s in range(1, SHARDS + 1)
                          for r in select_shard(grid_runs(["mnist"], ["pixel-knn", "pixel-centroid"], 2, [0, 1, 2]),
                                                f"{s}/{SHARDS}")], every):
        row = rows[path]
        assert (row["dataset"], row["anomaly"], row["method"], row["rep"], row["profile"]) == \
            ("mnist", run.anomaly, run.method, run.rep, "smoke")
    assert sorted(p for p in (tmp_path / "results").rglob("*.json")) == sorted(every)  # nothing else
    writes = Counter(Path(line.split(" ", 1)[1]) for line in (tmp_path / "writes.log").read_text().splitlines())
    assert writes == Counter(every), {p: n for p, n in writes.items() if n != 1}  # each run written exactly once


def test_array_task_outside_the_shards_is_refused(tmp_path):
    env = task_env(tmp_path, FIRST + SHARDS)  # one task past the array
    done = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "results"), *GRID], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"is no shard of {SHARDS}" in done.stderr
    assert not (tmp_path / "results").exists()


def test_submit_queues_the_array_and_the_report_after_it(tmp_path):
    """submit.sh, with a stand-in ``sbatch`` on PATH that records its arguments and answers job ids."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\nn=$(wc -l < "$CALLS" 2>/dev/null || echo 0)\n'
                                    'printf "%s\\n" "$*" >> "$CALLS"\necho "$(( 700 + n ));cluster1"\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "PDDLITE_SBATCH_OPTIONS": "--partition=gpu --account=lab"}
    submit = ROOT / "cluster" / "slurm" / "submit.sh"
    done = subprocess.run(["bash", str(submit), "8", "/shared/results"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    array, report = (tmp_path / "calls").read_text().splitlines()
    assert array == (f"--parsable --partition=gpu --account=lab --array=1-8 "
                     f"--export=ALL,PDDLITE_SHARDS=8,PDDLITE_FIRST_TASK=1 {SCRIPT} --out /shared/results "
                     "--datasets mnist fashion-mnist cifar10 --methods pdd egbad ganomaly mcdd deepsvdd --reps 10 "
                     "--profile paper")
    assert report == (f"--parsable --partition=gpu --account=lab --dependency=afterok:700 "
                      f"{SCRIPT.parent / 'report.sbatch'} /shared/results")
    assert "job array 700" in done.stdout and "job 701" in done.stdout
    # replicate arguments given replace the paper's grid; too few arguments are refused
    (tmp_path / "calls").unlink()
    done = subprocess.run(["bash", str(submit), "2", "out", "--methods", "mcdd", "--reps", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and (tmp_path / "calls").read_text().splitlines()[0].endswith(
        f"{SCRIPT} --out out --methods mcdd --reps 1")
    assert subprocess.run(["bash", str(submit), "8"], env=env, capture_output=True, timeout=60).returncode == 2

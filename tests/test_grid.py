"""The replication grid: run order and seeds, exact shards, atomic rows, and resuming after an interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pddlite import PDDLiteError
from pddlite.cli import main
from pddlite.methods import METHODS
from pddlite.grid import grid_runs, load_results, parse_shard, replicate, select_shard
from pddlite.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
CPU = Runtime(device="cpu", progress=False)  # each run's epoch bars hidden, as in a grid by default
REQUIRED_KEYS = {"dataset", "anomaly", "method", "rep", "seed", "profile", "auroc", "auprc", "seconds", "device"}


# one intra-op thread: on a small shared CPU a second one makes these tiny ops many times slower
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def as_method(run):
    """A stand-in for a detector class of METHODS: a detector whose ``run(task)`` calls ``run``."""
    from pddlite.detector import Detector

    return type("FakeDetector", (Detector,), {"run": lambda self, task: run(task, self.profile, self.seed, self.device,
                                                                               progress=self.progress)})


def fake_method(calls: list, fail_after: int | None = None):
    """A method that trains nothing: records what it saw, and raises after ``fail_after`` calls."""
    def run(task, profile, seed, device, progress=True, **options):
        if fail_after is not None and len(calls) >= fail_after:
            raise RuntimeError("interrupted on purpose")
        calls.append((task.anomaly_classes[0], seed, task.prototype_images.sum().item()))
        return {"auroc": 0.5 + 0.01 * seed, "auprc": 0.25}
    return as_method(run)


def json_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json"))


# --------------------------------------------------------------------------- runs, order, seeds


def test_grid_runs_covers_every_cell_in_a_fixed_order():
    runs = grid_runs(["mnist", "Fashion_MNIST"], ["pdd", "mcdd"], reps=3)
    assert len(runs) == 2 * 10 * 3 * 2
    assert len(set(runs)) == len(runs)
    assert runs == grid_runs(["mnist", "fashion-mnist"], ["pdd", "mcdd"], reps=3)
    assert [r.method for r in runs[:4]] == ["pdd", "mcdd", "pdd", "mcdd"]
    assert (runs[0].dataset, runs[0].rep, runs[0].anomaly) == ("mnist", 0, 0)
    assert (runs[2].anomaly, runs[20].rep, runs[60].dataset) == (1, 1, "fashion-mnist")
    # the seed of a repetition is the same for every method and anomaly class
    assert all(r.seed == r.rep for r in runs)
    some = grid_runs(["cifar10"], ["egbad"], reps=[4, 7], anomalies=[3, 1])
    assert [(r.anomaly, r.rep) for r in some] == [(1, 4), (3, 4), (1, 7), (3, 7)]


def test_pdd_runs_once_per_variant_and_baselines_once():
    runs = grid_runs(["mnist"], ["pdd", "mcdd"], reps=1, anomalies=[0], variants=["pddlite", "paper", "reference"])
    assert [(r.method, r.variant) for r in runs] == [
        ("pdd", "pddlite"), ("pdd", "paper"), ("pdd", "reference"), ("mcdd", None)]
    assert [r.name for r in runs] == ["pdd-pddlite", "pdd-paper", "pdd-reference", "mcdd"]
    paths = {r.path("out", "quick") for r in runs}
    assert len(paths) == 4 and Path("out/quick/mnist/pdd-paper/anomaly0_rep0_shots20.json") in paths
    # validation rows have files of their own
    assert runs[0].path("out", "quick", split="validation").name == "anomaly0_rep0_shots20_validation.json"
    with pytest.raises(PDDLiteError, match="unknown variant 'papr'"):
        grid_runs(["mnist"], ["pdd"], 1, variants=["papr"])


def test_the_grid_scores_validation_tasks_apart(tmp_path, monkeypatch):
    seen: list = []

    def run(task, profile, seed, device, progress=True, **options):
        seen.append((task.split, options.get("variant")))
        return {"auroc": 0.5, "auprc": 0.1}

    monkeypatch.setitem(METHODS, "fake_v", as_method(run))
    rows = replicate(["mnist-5k"], ["fake_v"], reps=1, anomalies=[3], profile="smoke", out_dir=tmp_path,
                     runtime=CPU, progress=False, split="validation")
    assert seen == [("validation", None)] and rows[0]["split"] == "validation"
    assert [p.name for p in json_files(tmp_path)] == ["anomaly3_rep0_shots20_validation.json"]


def test_grid_runs_refuses_unknown_names_in_one_line():
    with pytest.raises(PDDLiteError, match=r"unknown method 'nosuch'; choose one of: .*deepsvdd, egbad, ganomaly, mcdd, pdd"):
        grid_runs(["mnist"], ["pdd", "nosuch"], 1)
    with pytest.raises(PDDLiteError, match="unknown dataset"):
        grid_runs(["svhn"], ["pdd"], 1)
    with pytest.raises(PDDLiteError, match="classes 0..9"):
        grid_runs(["mnist"], ["pdd"], 1, anomalies=[10])
    with pytest.raises(PDDLiteError, match="reps must be at least 1"):
        grid_runs(["mnist"], ["pdd"], 0)


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_shards_partition_the_grid_exactly(n):
    runs = grid_runs(["mnist", "cifar10"], ["pdd", "egbad", "ganomaly", "mcdd", "deepsvdd"], reps=3)
    shards = [select_shard(runs, f"{k}/{n}") for k in range(1, n + 1)]
    flat = [r for s in shards for r in s]
    assert len(flat) == len(runs) and set(flat) == set(runs)  # no run twice, none missing
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert select_shard(runs, (1, n)) == shards[0] == select_shard(list(runs), f" 1/{n} ")


@pytest.mark.parametrize("bad", ["3/2", "0/2", "2", "a/b", "1/0", "-1/3", "1/2/3"])
def test_bad_shards_say_the_form(bad):
    with pytest.raises(PDDLiteError, match=r"form k/n with 1 <= k <= n"):
        parse_shard(bad)


def test_bad_shard_on_the_command_line_is_one_line(capsys):
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "mcdd", "--shard", "3/2", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "k/n with 1 <= k <= n" in err and "'3/2'" in err
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "nosuch", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown method 'nosuch'" in err and "mcdd" in err


def test_shards_written_apart_merge_by_copying(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(METHODS, "fake", fake_method(calls))
    for k in (1, 2, 3):
        replicate(["mnist-5k"], ["fake"], reps=2, anomalies=[0, 5], profile="smoke", out_dir=tmp_path / f"shard{k}",
                  shard=f"{k}/3", runtime=CPU, progress=False)
    merged = tmp_path / "merged"
    for k in (1, 2, 3):  # "merge by copying result files together"
        for f in json_files(tmp_path / f"shard{k}"):
            target = merged / f.relative_to(tmp_path / f"shard{k}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    rows = load_results(merged)
    assert len(rows) == len(calls) == 4
    assert sorted((r["anomaly"], r["rep"]) for r in rows) == [(0, 0), (0, 1), (5, 0), (5, 1)]


# --------------------------------------------------------------------------- resume


def test_an_interrupted_grid_resumes_without_losing_or_repeating_runs(tmp_path, monkeypatch):
    out = tmp_path / "results"
    first: list = []
    monkeypatch.setitem(METHODS, "fake", fake_method(first, fail_after=3))
    with pytest.raises(RuntimeError, match="interrupted on purpose"):
        replicate(["mnist-5k"], ["fake"], reps=2, anomalies=[0, 1, 2], profile="smoke", out_dir=out,
                  runtime=CPU, progress=False)
    assert len(first) == 3
    assert len(json_files(out)) == 3  # every finished run was written at once
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    second: list = []
    monkeypatch.setitem(METHODS, "fake", fake_method(second))
    rows = replicate(["mnist-5k"], ["fake"], reps=2, anomalies=[0, 1, 2], profile="smoke", out_dir=out,
                     runtime=CPU, progress=False)
    assert len(second) == 6 - 3  # only what was missing ran
    assert not set(c[:2] for c in first) & set(c[:2] for c in second)
    assert len(rows) == 6 and len(json_files(out)) == 6
    keys = {(r["anomaly"], r["rep"]) for r in load_results(out)}
    assert keys == {(a, r) for a in (0, 1, 2) for r in (0, 1)}
    for row in rows:
        assert REQUIRED_KEYS <= set(row) and "model" not in row
        assert row["seed"] == row["rep"] and row["profile"] == "smoke" and row["method"] == "fake"

    third: list = []
    monkeypatch.setitem(METHODS, "fake", fake_method(third))
    again = replicate(["mnist-5k"], ["fake"], reps=2, anomalies=[0, 1, 2], profile="smoke", out_dir=out,
                      runtime=CPU, progress=False)
    assert third == [] and again == rows  # a finished grid is read back, not re-run


SLOW_GRID = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    from pddlite.methods import METHODS

    def run(task, profile, seed, device, progress=True, **options):
        time.sleep(0.4)
        return {"auroc": 0.5, "auprc": 0.1}

    from pddlite.detector import Detector
    METHODS["slowfake"] = type("Slow", (Detector,), {"run": lambda self, task: run(task, self.profile, self.seed, self.device)})

    from pddlite.grid import replicate
    from pddlite.runtime import Runtime
    replicate(["mnist-5k"], ["slowfake"], reps=3, anomalies=[0, 1, 2], profile="smoke",
              out_dir=sys.argv[1], runtime=Runtime(device="cpu", progress=False), progress=False)
""")


def test_a_killed_grid_resumes(tmp_path, monkeypatch):
    """Kill a grid process part-way (SIGKILL: no clean-up), run again, count the rows."""
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_GRID, str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while len(json_files(out)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the grid process wrote nothing in 90 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = json_files(out)
    assert 3 <= len(done) < 9, "the grid was not interrupted part-way"
    for f in done:  # atomic writes: no half-written row
        assert json.loads(f.read_text())["method"] == "slowfake"

    calls: list = []
    monkeypatch.setitem(METHODS, "slowfake", fake_method(calls))
    rows = replicate(["mnist-5k"], ["slowfake"], reps=3, anomalies=[0, 1, 2], profile="smoke", out_dir=out,
                     runtime=CPU, progress=False)
    assert len(calls) == 9 - len(done)
    assert len(rows) == 9 and len(json_files(out)) == 9
    assert len({(r["anomaly"], r["rep"]) for r in load_results(out)}) == 9


# --------------------------------------------------------------------------- seeds across methods, real runs


def test_methods_of_a_repetition_see_the_same_prototypes(tmp_path, monkeypatch):
    seen_a: list = []
    seen_b: list = []
    monkeypatch.setitem(METHODS, "fake_a", fake_method(seen_a))
    monkeypatch.setitem(METHODS, "fake_b", fake_method(seen_b))
    replicate(["mnist-5k"], ["fake_a", "fake_b"], reps=2, anomalies=[4], profile="smoke", out_dir=tmp_path,
              runtime=CPU, progress=False)
    assert seen_a == seen_b  # same (anomaly, seed, prototypes) run by run
    assert seen_a[0][2] != seen_a[1][2]  # and another draw for the next repetition


def test_real_runs_through_the_grid(tmp_path, capsys):
    rows = replicate(["mnist-5k"], ["pdd", "deepsvdd"], reps=1, anomalies=[2], profile="smoke", out_dir=tmp_path,
                     runtime=CPU, shots=5, progress=False)
    assert [r["method"] for r in rows] == ["pdd", "deepsvdd"]
    for row in rows:
        assert REQUIRED_KEYS <= set(row)
        assert row["shots"] == 5 and row["seed"] == 0 and row["device"] == "cpu"
        assert 0 <= row["auroc"] <= 1 and row["seconds"] >= 0
    # the isolated ablation of Figs. 9-11
    assert {"pretrain_auroc", "pretrain_auprc", "adversarial_only_auroc", "adversarial_only_auprc"} <= set(rows[0])
    path = tmp_path / "smoke" / "mnist-5k" / "pdd-pddlite" / "anomaly2_rep0_shots5.json"
    assert json.loads(path.read_text()) == rows[0]
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "pdd", "deepsvdd", "--reps", "2",
                 "--anomalies", "2", "--shots", "5", "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    assert "4 runs in the grid (profile smoke): 2 done, 2 to run" in capsys.readouterr().out


def test_a_row_made_with_other_settings_or_for_another_task_is_run_again(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(METHODS, "fake_s", fake_method(calls))
    out = tmp_path / "results"
    kwargs = dict(datasets=["mnist-5k"], methods=["fake_s"], reps=1, anomalies=[0, 1, 2], profile="smoke",
                  out_dir=out, runtime=CPU, progress=False)
    replicate(**kwargs)
    assert len(calls) == 3
    files = json_files(out)
    # one row from older settings, one from another shots count, one forged as a quick run: each is re-run
    for f, change in zip(files, ({"settings": "0123456789abcdef"}, {"shots": 10}, {"profile": "quick"})):
        row = json.loads(f.read_text())
        row.update(change, auroc=0.999)
        f.write_text(json.dumps(row))
    with pytest.warns(UserWarning, match="re-running") as record:
        rows = replicate(**kwargs)
    assert len(calls) == 6 and all(r["auroc"] < 0.9 for r in rows)
    messages = " ".join(str(w.message) for w in record)
    assert "settings '0123456789abcdef'" in messages and "shots 10 instead of 20" in messages
    assert "profile 'quick' instead of 'smoke'" in messages
    replicate(**kwargs)  # the rows now match: nothing runs
    assert len(calls) == 6


def test_the_settings_fingerprint_follows_what_a_run_computes_not_where_it_writes():
    from pddlite.experiment import settings_fingerprint

    base = settings_fingerprint("pdd", "quick", variant="pddlite")
    assert base == settings_fingerprint("pdd", "quick", variant="pddlite", checkpoint="a.pt", progress=False)
    assert base != settings_fingerprint("pdd", "quick", variant="paper")
    assert base != settings_fingerprint("pdd", "smoke", variant="pddlite")
    assert base != settings_fingerprint("pdd", "quick", variant="pddlite", margin_lr=2e-3)
    # a baseline's fingerprint reads its own stages of the profile, not PDD's
    import dataclasses

    from pddlite.profiles import get_profile

    quick = get_profile("quick")
    longer = dataclasses.replace(quick, steps={**quick.steps, "pdd-tuneup": 300})
    assert settings_fingerprint("pdd", longer, variant="pddlite") != base
    assert settings_fingerprint("mcdd", longer) == settings_fingerprint("mcdd", quick)
    assert settings_fingerprint("deepsvdd", dataclasses.replace(
        quick, steps={**quick.steps, "deepsvdd-autoencoder": 7})) != settings_fingerprint("deepsvdd", quick)


COUNTING_GRID = textwrap.dedent("""
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    from pddlite.methods import METHODS

    def run(task, profile, seed, device, progress=True, **options):
        with open(sys.argv[2], "a") as fh:
            fh.write(f"{os.getpid()} {task.anomaly_classes[0]} {seed}\\n")
        time.sleep(0.3)
        return {"auroc": 0.5, "auprc": 0.1}

    from pddlite.detector import Detector
    METHODS["countfake"] = type("Counting", (Detector,), {"run": lambda self, task: run(task, self.profile, self.seed, self.device)})

    from pddlite.grid import replicate
    from pddlite.runtime import Runtime
    replicate(["mnist-5k"], ["countfake"], reps=2, anomalies=[0, 1, 2, 3], profile="smoke",
              out_dir=sys.argv[1], runtime=Runtime(device="cpu", progress=False), progress=False)
""")


def test_two_workers_on_one_folder_split_the_runs(tmp_path):
    out, log = tmp_path / "results", tmp_path / "calls.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen([sys.executable, "-c", COUNTING_GRID, str(out), str(log)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=240) == 0, w.stderr.read().decode()
    calls = log.read_text().split("\n")[:-1]
    done = [tuple(c.split()[1:]) for c in calls]
    assert sorted(done) == sorted({(str(a), str(s)) for a in range(4) for s in range(2)}), "each run exactly once"
    assert len(json_files(out)) == 8
    assert not list(out.rglob(".*.claim")), "claims are released"


def test_a_claim_left_by_a_dead_process_is_taken_over_and_a_live_one_is_respected(tmp_path, monkeypatch):
    import socket

    from pddlite.files import claim, claim_path, release

    calls: list = []
    monkeypatch.setitem(METHODS, "fake_c", fake_method(calls))
    out = tmp_path / "results"
    kwargs = dict(datasets=["mnist-5k"], methods=["fake_c"], reps=1, anomalies=[0, 1], profile="smoke",
                  out_dir=out, runtime=CPU, progress=False)
    runs = grid_runs(["mnist-5k"], ["fake_c"], 1, [0, 1])
    dead, live = (r.path(out, "smoke") for r in runs)
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    claim_path(dead).parent.mkdir(parents=True)
    claim_path(dead).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead_pid), "since": 0}))
    claim_path(live).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "since": 0}))
    with pytest.warns(UserWarning, match="1 of 2 runs are still being run by other workers"):
        rows = replicate(**kwargs)
    assert [c[0] for c in calls] == [0] and len(rows) == 1
    assert not claim_path(dead).exists() and claim_path(live).exists()
    release(live)
    assert claim(live) and claim_path(live).exists()  # free again: this process holds it now
    release(live)


def test_reps_beyond_the_seeds_and_impossible_shots_are_refused_before_any_run(tmp_path, capsys):
    import numpy as np

    with pytest.raises(PDDLiteError, match=r"reps must be at most 2\*\*62"):
        grid_runs(["mnist"], ["mcdd"], 2**64)  # once an OverflowError while the run list was built
    with pytest.raises(PDDLiteError, match=r"repetition indices from 0 to 2\*\*62 - 1"):
        grid_runs(["mnist"], ["mcdd"], [0, 2**63])
    assert [r.rep for r in grid_runs(["mnist"], ["mcdd"], np.int64(2), anomalies=[0])] == [0, 1]
    # a dry run says what is wrong with --shots instead of counting runs that cannot start
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--shots", "1", "--dry-run",
                 "--profile", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "shots must be an integer >= 2" in err and "\n" not in err


# --------------------------------------------------------------------------- rows that are not results


def _pixel_grid(out, **extra):
    return replicate(["mnist-5k"], ["pixel-knn"], reps=1, anomalies=[1], profile="smoke", out_dir=out, runtime=CPU,
                     progress=False, **extra)


def _forge_row(out, **change):
    path = grid_runs(["mnist-5k"], ["pixel-knn"], 1, [1])[0].path(out, "smoke")
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    return path


@pytest.mark.parametrize("change,why", [({"auroc": float("nan")}, "auroc is nan"),
                                        ({"auprc": "0.3"}, "auprc is '0.3'"),
                                        ({"precision": "bf16"}, "precision 'bf16' instead of 'fp32'"),
                                        ({"data": "0123456789abcdef"}, "data '0123456789abcdef'")])
def test_a_row_that_is_not_a_finished_result_of_this_run_is_run_again(tmp_path, change, why):
    out = tmp_path / "results"
    first = _pixel_grid(out)[0]
    assert first["precision"] == "fp32" and len(first["data"]) == 16  # what identifies the run's images
    path = _forge_row(out, **change)
    with pytest.warns(UserWarning, match="re-running .*" + why.replace("(", r"\(").replace(".", r"\.")):
        again = _pixel_grid(out)[0]
    assert json.loads(path.read_text()) == again and again["auroc"] == first["auroc"]


def test_rows_made_on_other_images_are_not_reused_for_another_data_dir(tmp_path):
    from tests.test_data import write_mnist_like

    write_mnist_like(tmp_path / "a", "MNIST", seed=0)
    write_mnist_like(tmp_path / "b", "MNIST", seed=1)
    kwargs = dict(datasets=["mnist"], methods=["pixel-knn"], reps=1, anomalies=[1], shots=3, profile="smoke",
                  out_dir=tmp_path / "results", runtime=CPU, progress=False)
    on_a = replicate(data_dir=tmp_path / "a", **kwargs)[0]
    with pytest.warns(UserWarning, match="re-running .*has data"):
        on_b = replicate(data_dir=tmp_path / "b", **kwargs)[0]
    assert on_a["data"] != on_b["data"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same folder again: reused, nothing said
        assert replicate(data_dir=tmp_path / "b", **kwargs)[0] == on_b


class _Hung(BaseException):
    """Not an OSError (TimeoutError is one, and a reader that skips unreadable files would swallow it)."""


def _on_timeout(signum, frame):
    raise _Hung("waited on a named pipe")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX file type")
def test_a_named_pipe_at_a_rows_path_or_in_the_folder_is_never_waited_on(tmp_path):
    out = tmp_path / "results"
    path = grid_runs(["mnist-5k"], ["pixel-knn"], 1, [1])[0].path(out, "smoke")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    os.mkfifo(path.parent / "extra.json")
    previous = signal.signal(signal.SIGALRM, _on_timeout)
    signal.alarm(60)
    try:
        with pytest.warns(UserWarning, match="not a regular file"):
            row = _pixel_grid(out)[0]
        assert path.is_file() and json.loads(path.read_text()) == row  # the pipe replaced by the row
        assert len(load_results(out)) == 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- claims across hosts


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_claim_not_refreshed_is_taken_over_whatever_its_host_and_a_fresh_one_is_named(tmp_path, monkeypatch):
    import socket

    from pddlite.files import CLAIM_STALE_AFTER_S, claim_path

    calls: list = []
    monkeypatch.setitem(METHODS, "fake_h", fake_method(calls))
    out = tmp_path / "results"
    runs = grid_runs(["mnist-5k"], ["fake_h"], 1, [0, 1, 2])
    colab, reused, fresh = (claim_path(r.path(out, "smoke")) for r in runs)
    colab.parent.mkdir(parents=True)
    # a killed worker on another machine, and a days-old claim whose process id is now a live process here
    colab.write_text(json.dumps({"host": "colab-vm-that-went-away", "pid": 4242, "since": time.time()}))
    reused.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "since": 0}))
    fresh.write_text(json.dumps({"host": "another-live-machine", "pid": 4242, "since": time.time()}))
    _age(colab, CLAIM_STALE_AFTER_S + 60)
    _age(reused, 3 * 24 * 3600)
    with pytest.warns(UserWarning, match=f"1 of 3 runs are still being run .*{fresh.name}.* remove the claim"):
        rows = replicate(["mnist-5k"], ["fake_h"], reps=1, anomalies=[0, 1, 2], profile="smoke", out_dir=out,
                         runtime=CPU, progress=False)
    assert sorted(c[0] for c in calls) == [0, 1] and len(rows) == 2
    assert fresh.exists() and not colab.exists() and not reused.exists()


def test_a_live_worker_refreshes_its_claim(tmp_path, monkeypatch):
    import pddlite.files
    from pddlite.files import claim, claim_path, release

    monkeypatch.setattr(pddlite.files, "CLAIM_REFRESH_S", 0.05)
    target = tmp_path / "row.json"
    assert claim(target)
    lock = claim_path(target)
    _age(lock, 3600)
    deadline = time.time() + 10
    while time.time() - lock.stat().st_mtime > 60 and time.time() < deadline:
        time.sleep(0.05)
    try:
        assert time.time() - lock.stat().st_mtime < 60, "the claim was not refreshed"
    finally:
        release(target)
    assert not lock.exists()


# --------------------------------------------------------------------------- nothing finished is lost


def test_a_row_that_cannot_be_written_is_kept_and_the_error_says_where(tmp_path, monkeypatch):
    import pddlite.files
    import pddlite.grid

    out = tmp_path / "results"

    def run_then_block(*args, **kwargs):  # the folder becomes a file while the run trains
        import shutil

        shutil.rmtree(out / "smoke" / "mnist-5k")
        (out / "smoke" / "mnist-5k").write_text("in the way")
        return {"auroc": 0.75, "auprc": 0.5}

    monkeypatch.setattr(pddlite.grid, "run_task", run_then_block)
    monkeypatch.setattr(pddlite.files.tempfile, "gettempdir", lambda: str(tmp_path / "kept"))
    (tmp_path / "kept").mkdir()
    (out / "smoke" / "mnist-5k" / "pixel-knn").mkdir(parents=True)
    with pytest.raises(PDDLiteError, match=r"cannot write .*the finished row is kept in .*kept") as caught:
        _pixel_grid(out)
    kept = [p for p in (tmp_path / "kept").iterdir()]
    assert len(kept) == 1 and json.loads(kept[0].read_text())["auroc"] == 0.75
    assert str(kept[0]) in str(caught.value) and "\n" not in str(caught.value)

"""The experiment grid of Sec. 5: every (dataset, anomaly class, method, repetition), resumable and shardable.

>>> from pddlite.grid import replicate
>>> rows = replicate(["mnist-5k"], ["pdd", "mcdd"], reps=2, profile="smoke", out_dir="results")  # doctest: +SKIP

or, from a shell, ``pddlite replicate --datasets mnist fashion-mnist cifar10 --reps 10 --profile paper``.

* **One file per run.** Each finished run is written at once as one JSON object (written to a
  temporary file, then renamed over the final name, so a file is either complete or absent) at
  ``OUT/<profile>/<dataset>/<method>/anomaly<a>_rep<r>_shots<k>.json``. A run whose file holds
  its row is skipped: an interrupted grid resumes where it stopped, loses nothing and duplicates
  nothing. A file whose row is not a complete, finite result (a NaN or a string for a metric), or
  names another task, profile or variant, other settings (its
  :func:`pddlite.experiment.settings_fingerprint`: a changed default, a row from an older
  pddlite), another precision, or other images (the digest of the task's data,
  :meth:`pddlite.data.Task.identity`: another ``--data-dir``), is re-run, with one line that says why.
  Only regular files are read: a named pipe at a row's path is never waited on.
* **Same seed across methods.** Repetition ``r`` uses ``seed = r`` for every method and anomaly
  class, so all methods of a repetition see the same prototypes and the same split.
* **Shards.** ``--shard k/n`` keeps runs ``k-1, k-1+n, k-1+2n, ...`` of the fixed run order
  (:func:`grid_runs`): the n shards partition the grid exactly and are balanced to within one run
  and across methods. Give every shard the same command line and its own ``k`` (a Slurm array,
  several GPUs, several Colab sessions), then merge by copying the result folders together.
* **Workers share a folder.** A run is claimed (a hidden ``.<file>.claim`` created atomically)
  before it starts, so several processes given the same command and folder split the runs
  between them instead of each doing all of them. A worker refreshes its claim every minute while it
  runs; a claim not refreshed for 10 minutes (a killed worker, on this machine or another) is taken
  over (:func:`pddlite.files.claim`).
* **Progress.** One bar over the runs of the shard, with an estimate of the time left from the mean
  duration of finished runs of the same dataset and method (files already present count too).
"""

from __future__ import annotations

import gc
import json
import numbers
import os
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from .data import DATASETS, canonical_dataset_name, check_shots
from .device import MAX_SEED
from .errors import PDDLiteError
from .experiment import build_task, row_problem, run_task, settings_fingerprint
from .files import (CLAIM_STALE_AFTER_S, check_output_folder, claim, claim_path, read_regular_text, release,
                    write_or_keep, write_text_atomically)
from .methods import METHODS
from .options import choice
from .profiles import get_profile
from .runtime import Runtime
from .variants import DEFAULT_VARIANT, variant_options

#: The paper's grid (Sec. 5): three datasets, PDD and its three baselines, plus Deep SVDD.
DEFAULT_DATASETS = ("mnist", "fashion-mnist", "cifar10")
DEFAULT_METHODS = ("pdd", "egbad", "ganomaly", "mcdd", "deepsvdd", "pixel-knn", "pixel-centroid",
                   "pixel-knn-unlabeled")
DEFAULT_REPS = 10


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid. ``seed`` is the repetition index, the same for every method.

    ``variant`` is PDD's (:mod:`pddlite.variants`) and ``None`` for the baselines.
    """

    dataset: str
    anomaly: int
    method: str
    rep: int
    variant: str | None = None

    @property
    def seed(self) -> int:
        return self.rep

    @property
    def name(self) -> str:
        """The method, with PDD's variant: ``pdd-pddlite``, ``pdd-paper``, ``egbad``, ..."""
        return self.method if self.variant is None else f"{self.method}-{self.variant}"

    def path(self, out_dir: str | Path, profile: str, shots: int = 20, split: str = "test") -> Path:
        """Where this run's JSON row is written under ``out_dir`` (validation rows apart from test rows)."""
        suffix = "" if split == "test" else f"_{split}"
        return (Path(out_dir) / profile / self.dataset / self.name
                / f"anomaly{self.anomaly}_rep{self.rep}_shots{shots}{suffix}.json")

    def __str__(self) -> str:
        return f"{self.dataset} anomaly={self.anomaly} {self.name} rep={self.rep}"


def _check_methods(methods: Sequence[str]) -> list[str]:
    known = sorted(METHODS)
    out = []
    for m in methods:
        choice("method", m, known)
        if m not in out:
            out.append(m)
    if not out:
        raise PDDLiteError("name at least one method")
    return out


def _rep_list(reps: int | Iterable[int]) -> list[int]:
    """Repetition indices from a count or a list; each is the seed of its repetition."""
    if isinstance(reps, bool):
        raise PDDLiteError(f"reps must be a number of repetitions or a list of repetition indices, got {reps!r}")
    if isinstance(reps, numbers.Integral):
        if reps < 1:
            raise PDDLiteError(f"reps must be at least 1, got {reps}")
        if reps - 1 > MAX_SEED:  # repetition r is seeded with r
            raise PDDLiteError(f"reps must be at most 2**62, got {reps}: repetition r runs with seed r, and seeds "
                               "end at 2**62 - 1")
        return list(range(int(reps)))
    try:
        values = list(reps)
    except TypeError:
        values = []
    if not values or any(isinstance(r, bool) or not isinstance(r, numbers.Integral) or not 0 <= r <= MAX_SEED
                         for r in values):
        raise PDDLiteError("reps must be a number of repetitions or a list of repetition indices from 0 to "
                           f"2**62 - 1 (they are the seeds); got {reps!r}")
    return sorted(set(int(r) for r in values))


def grid_runs(
    datasets: Sequence[str],
    methods: Sequence[str],
    reps: int | Iterable[int] = DEFAULT_REPS,
    anomalies: Sequence[int] | None = None,
    variants: Sequence[str] = (DEFAULT_VARIANT,),
) -> list[RunSpec]:
    """Every run of the grid in a fixed order: dataset, then repetition, anomaly class, method, variant.

    PDD runs once per name in ``variants``; a baseline once.
    ``reps`` is a number of repetitions (indices 0..reps-1) or a list of indices; ``anomalies``
    restricts the anomaly classes (default: every class of each dataset). The order puts the
    repetition outermost, so a part-finished grid has whole repetitions of every method and class.
    """
    if isinstance(datasets, str) or isinstance(methods, str):
        raise PDDLiteError("datasets and methods are lists of names, e.g. ['mnist'] and ['pdd', 'mcdd']")
    names: list[str] = []
    for d in datasets:
        key = canonical_dataset_name(d)
        if key not in names:
            names.append(key)
    if not names:
        raise PDDLiteError("name at least one dataset")
    method_list = _check_methods(methods)
    rep_list = _rep_list(reps)
    if isinstance(variants, str):
        raise PDDLiteError("variants is a list of names, e.g. ['pddlite', 'paper']")
    variant_list = list(dict.fromkeys(variants))
    for v in variant_list:
        variant_options(v)  # a clear error for an unknown name
    if "pdd" in method_list and not variant_list:
        raise PDDLiteError("name at least one PDD variant")
    runs = []
    for dataset in names:
        n_classes = len(DATASETS[dataset])
        if anomalies is None:
            classes = list(range(n_classes))
        else:
            classes = sorted(set(int(a) for a in anomalies))
            bad = [a for a in classes if not 0 <= a < n_classes]
            if bad or not classes:
                raise PDDLiteError(f"{dataset} has classes 0..{n_classes - 1}; no anomaly class {bad[0] if bad else '(none given)'}")
        for rep in rep_list:
            for anomaly in classes:
                for method in method_list:
                    for variant in (variant_list if method == "pdd" else [None]):
                        runs.append(RunSpec(dataset, anomaly, method, rep, variant))
    return runs


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"k/n"`` (or ``(k, n)``) -> (k, n), checking 1 <= k <= n."""
    if shard is None:
        return None
    try:
        if isinstance(shard, str):
            k_text, n_text = shard.strip().split("/")
            k, n = int(k_text), int(n_text)
        else:
            k, n = (int(v) for v in shard)
    except (ValueError, TypeError):
        raise PDDLiteError(f"--shard must have the form k/n with 1 <= k <= n (e.g. 2/8), got {shard!r}") from None
    if not 1 <= k <= n:
        raise PDDLiteError(f"--shard must have the form k/n with 1 <= k <= n (e.g. 2/8), got {shard!r}")
    return k, n


def select_shard(runs: Sequence[RunSpec], shard: str | tuple[int, int] | None) -> list[RunSpec]:
    """The runs of shard k of n: every n-th run of the fixed order, starting at run k-1."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(runs)
    k, n = parsed
    return list(runs[k - 1::n])


# --------------------------------------------------------------------------- files


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def write_row(row: dict[str, Any], path: Path, keep: bool = False) -> Path:
    """Write one result row atomically (:func:`pddlite.files.write_text_atomically`); with ``keep``,
    a row that cannot be written there is kept elsewhere, and the error says where
    (:func:`pddlite.files.write_or_keep`)."""
    text = json.dumps(row, indent=2, default=_json_default) + "\n"
    return write_or_keep(path, text, "the finished row") if keep else write_text_atomically(path, text)


class _Expected:
    """What a finished row of each run must carry: its task, its run, its settings and precision,
    and the digest of its task's images (built only for a row that has everything else right, and
    once per task)."""

    def __init__(self, profile: Any, shots: int, split: str, precision: str, data_dir: Any) -> None:
        self.profile, self.shots, self.split, self.precision, self.data_dir = profile, shots, split, precision, data_dir
        self._digests: dict[tuple, str] = {}

    def fields(self, run: RunSpec) -> dict[str, Any]:
        options = {} if run.variant is None else {"variant": run.variant}
        return {"dataset": run.dataset, "anomaly": run.anomaly, "shots": self.shots, "seed": run.seed,
                "split": self.split, "method": run.method, "profile": self.profile.name, "variant": run.variant,
                "settings": settings_fingerprint(run.method, self.profile, **options), "precision": self.precision}

    def data(self, run: RunSpec) -> str:
        key = (run.dataset, run.anomaly, run.seed, run.method, run.variant)
        if key not in self._digests:
            options = {} if run.variant is None else {"variant": run.variant}
            task = build_task(run.dataset, run.anomaly, self.shots, run.seed, run.method, self.profile, self.split,
                              self.data_dir, **options)
            self._digests[key] = task.identity()["data"]
        return self._digests[key]


def _finished_row(run: RunSpec, path: Path, expected: _Expected) -> dict[str, Any] | None:
    """The row at ``path`` if it is this run's complete, finite result on the same images, else
    ``None`` (with a warning that says why when a file is there)."""
    if not os.path.lexists(path):
        return None
    row = _read_row(path)
    if row is None:
        return None
    problem = row_problem(row)
    if problem:
        warnings.warn(f"re-running {run}: the row at {path} is not a finished result ({problem})", stacklevel=3)
        return None
    fields = expected.fields(run)
    wrong = [k for k, v in fields.items() if row.get(k, "(none)") != v]
    if not wrong and row.get("data", "(none)") != expected.data(run):
        fields["data"] = expected.data(run)
        wrong = ["data"]
    if wrong:
        what = ", ".join(f"{k} {row.get(k, '(none)')!r} instead of {fields[k]!r}" for k in wrong)
        warnings.warn(f"re-running {run}: the row at {path} has {what}", stacklevel=3)
        return None
    return row


def _read_row(path: Path) -> dict[str, Any] | None:
    try:
        row = json.loads(read_regular_text(path))
    except (OSError, ValueError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else err
        warnings.warn(f"skipping {path}: not a readable result file ({why})", stacklevel=3)
        return None
    if not isinstance(row, dict) or not {"dataset", "method", "anomaly", "auroc"} <= set(row):
        return None  # some other JSON file
    return row


def load_result_files(out_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, row) for every result row found under ``out_dir`` (any depth), sorted by profile,
    dataset, method, anomaly and repetition."""
    root = Path(out_dir)
    if not root.exists():
        raise PDDLiteError(f"no results folder at {root}: run `pddlite replicate --out {root}` first")
    if not root.is_dir():
        raise PDDLiteError(f"{root} is a file, not a results folder: pass the folder that `pddlite replicate --out` wrote")
    found = [(p, row) for p in sorted(root.rglob("*.json")) if (row := _read_row(p)) is not None]  # regular files only

    def key(item: tuple[Path, dict[str, Any]]) -> tuple:
        row = item[1]
        anomaly = row["anomaly"] if isinstance(row["anomaly"], int) else -1
        rep = row.get("rep", row.get("seed", 0))
        return (str(row.get("profile", "")), str(row["dataset"]), str(row["method"]), anomaly,
                rep if isinstance(rep, int) else -1, str(item[0]))

    return sorted(found, key=key)


def load_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every result row found under ``out_dir`` (any depth), sorted by profile, dataset, method, anomaly, rep."""
    return [row for _, row in load_result_files(out_dir)]


# --------------------------------------------------------------------------- running


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class _Estimator:
    """Time left, from the mean duration of finished runs of the same (dataset, method)."""

    def __init__(self) -> None:
        self.durations: dict[tuple[str, str], list[float]] = {}

    def add(self, dataset: str, method: str, seconds: float) -> None:
        self.durations.setdefault((dataset, method), []).append(float(seconds))

    def left(self, pending: Sequence[RunSpec]) -> float | None:
        if not pending:
            return 0.0
        means = {k: sum(v) / len(v) for k, v in self.durations.items() if v}
        if not means:
            return None
        fallback = sum(means.values()) / len(means)
        return sum(means.get((r.dataset, r.name), fallback) for r in pending)


def count_finished(
    datasets: Sequence[str] = DEFAULT_DATASETS,
    methods: Sequence[str] = DEFAULT_METHODS,
    reps: int | Iterable[int] = DEFAULT_REPS,
    profile: str | None = None,
    out_dir: str | Path = "results",
    shard: str | tuple[int, int] | None = None,
    anomalies: Sequence[int] | None = None,
    shots: int = 20,
    variants: Sequence[str] = (DEFAULT_VARIANT,),
    split: str = "test",
    runtime: Runtime = Runtime(progress=False),
    data_dir: str | Path | None = None,
) -> tuple[int, int]:
    """(runs in the grid or shard, runs whose file already holds their row): ``replicate --dry-run``.

    A file that :func:`replicate` would re-run (another task, profile, settings, precision or data,
    or not a finished result) counts as not done.
    """
    prof = get_profile(profile)
    check_shots(shots)
    runs = select_shard(grid_runs(datasets, methods, reps, anomalies, variants), shard)
    expected = _Expected(prof, shots, split, runtime.resolved().precision.name, data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real run says which rows it re-runs and why
        done = sum(_finished_row(r, r.path(out_dir, prof.name, shots, split), expected) is not None for r in runs)
    return len(runs), done


def replicate(
    datasets: Sequence[str] = DEFAULT_DATASETS,
    methods: Sequence[str] = DEFAULT_METHODS,
    reps: int | Iterable[int] = DEFAULT_REPS,
    profile: str | None = None,
    out_dir: str | Path = "results",
    shard: str | tuple[int, int] | None = None,
    data_dir: str | Path | None = None,
    anomalies: Sequence[int] | None = None,
    shots: int = 20,
    progress: bool = True,
    variants: Sequence[str] = (DEFAULT_VARIANT,),
    split: str = "test",
    runtime: Runtime = Runtime(progress=False),
) -> list[dict[str, Any]]:
    """Run (or resume) the grid, or one shard of it; return the rows of the selected runs.

    Every run goes through :func:`pddlite.experiment.run_task` with ``seed = rep`` and is written
    at once as one JSON file (see the module docstring); runs whose file holds their row (same
    task, profile, variant and settings) are read, not re-run. Each run is claimed before it
    starts (:func:`pddlite.files.claim`): workers sharing a folder split the runs, and a claim left
    by a killed worker is taken over. ``progress`` shows the bar over runs. ``runtime`` holds every
    run's run-time options (:class:`pddlite.runtime.Runtime`): its ``progress`` shows each run's
    epoch bars (and its estimated training time; off by default); its seed stays 0, since each run's
    seed is its repetition index; a method that cannot honour an option (the baselines replay no
    CUDA graphs) runs with that option at its default.
    ``variants`` are PDD's variants to run side by side; ``split="validation"`` scores the
    validation tasks (where choices are made) instead of the test split, into files of their own.
    An exception in a run stops the grid (the finished runs stay written; run again to resume).
    """
    from tqdm.auto import tqdm

    prof = get_profile(profile)
    check_shots(shots)  # before any run is claimed, not in the first one
    if runtime.seed != 0:
        raise PDDLiteError(f"the grid's seeds are its repetitions (reps), not runtime's seed ({runtime.seed!r}): "
                           "leave the seed at 0")
    resolved = runtime.resolved()  # every option checked before any run is claimed
    runs = select_shard(grid_runs(datasets, methods, reps, anomalies, variants), shard)
    out = check_output_folder(out_dir)
    expected = _Expected(prof, shots, split, resolved.precision.name, data_dir)
    rows: dict[RunSpec, dict[str, Any]] = {}
    estimator = _Estimator()
    pending: list[RunSpec] = []
    for run in runs:
        path = run.path(out, prof.name, shots, split)
        row = _finished_row(run, path, expected)
        if row is None:
            pending.append(run)
        else:
            rows[run] = row
            estimator.add(run.dataset, run.name, row.get("wall_seconds", row.get("seconds", 0.0)))

    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), disable=not progress, unit="run",
               desc=f"grid {prof.name}" + (f" shard {shard}" if shard else ""), dynamic_ncols=True)
    elsewhere: list[RunSpec] = []  # claimed by another worker sharing the folder
    try:
        for i, run in enumerate(pending):
            path = run.path(out, prof.name, shots, split)
            if not claim(path):
                elsewhere.append(run)
                bar.update(1)
                continue
            try:
                with warnings.catch_warnings():  # the first scan already said why a row is re-run
                    warnings.simplefilter("ignore")
                    row = _finished_row(run, path, expected)  # finished meanwhile?
                if row is None:
                    left = estimator.left(pending[i:])
                    bar.set_postfix_str(f"now: {run}" + (f" | est. left {_format_seconds(left)}" if left else ""))
                    row = _run(run, prof.name, out, shots, split, data_dir, runtime)
                    write_row(row, path, keep=True)
                    estimator.add(run.dataset, run.name, row.get("wall_seconds", row.get("seconds", 0.0)))
            finally:
                release(path)
            rows[run] = row
            bar.update(1)
            _release_memory()
    finally:
        bar.close()
    for run in elsewhere:  # read what the other workers have finished by now
        row = _finished_row(run, run.path(out, prof.name, shots, split), expected)
        if row is not None:
            rows[run] = row
    if len(rows) < len(runs):
        missing = [r for r in runs if r not in rows]
        claims = claim_path(missing[0].path(out, prof.name, shots, split))
        warnings.warn(f"{len(missing)} of {len(runs)} runs are still being run by other workers sharing {out} "
                      f"(claims such as {claims}); run the command again when they are done to read all rows. A "
                      f"claim not refreshed for {CLAIM_STALE_AFTER_S / 60:.0f} minutes is taken over; if no worker "
                      "runs, remove the claim files", stacklevel=2)
    return [rows[r] for r in runs if r in rows]


def _run(run: RunSpec, profile: str, out: Path, shots: int, split: str, data_dir: Any,
         runtime: Runtime) -> dict[str, Any]:
    """Train and score one run of the grid (seeded by its repetition); its row, ready to write."""
    start = time.perf_counter()
    # PDD variants with the same pre-training (paper, pddlite) share it through a cache
    options = {} if run.variant is None else {"variant": run.variant, "pretrain_cache": out / profile / ".pretrained"}
    row = run_task(dataset=run.dataset, anomaly=run.anomaly, shots=shots, profile=profile, method=run.method,
                   data_dir=data_dir, split=split, runtime=runtime.with_seed(run.seed), where_honoured=True,
                   **options)
    row.pop("model", None)
    row.update({
        "rep": run.rep,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return row


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass

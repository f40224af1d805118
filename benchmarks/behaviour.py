"""What `pddlite run` computes, recorded so that a refactoring can show it changed nothing.

    python benchmarks/behaviour.py --record                  # write benchmarks/behaviour.json
    python benchmarks/behaviour.py --check                   # run again, compare, exit 1 on a change
    python benchmarks/behaviour.py --check --profiles smoke  # the fast half only

For every method (PDD in each variant, and every baseline) and each profile, one run of
`pddlite run --dataset mnist-5k --anomaly 1 --seed 0 --device cpu` on the test split, and its
metrics: AUROC and AUPRC, and for PDD the pre-training, adversarial-only and inductive ones.
The file also records the library's version, torch's version and the thread count, because CPU
training is only reproducible on the same torch build and thread count: GAN training amplifies
last-bit differences of a reduction order into different models. ``--check`` compares exactly
(a refactoring that moves no arithmetic gives the same bits) and prints every metric that moved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pddlite  # noqa: E402
from pddlite.experiment import run_task  # noqa: E402
from pddlite.runtime import Runtime  # noqa: E402
from pddlite.variants import VARIANTS  # noqa: E402

RECORD = Path(__file__).with_name("behaviour.json")
BASELINES = ("egbad", "ganomaly", "mcdd", "deepsvdd", "pixel-knn", "pixel-centroid")
PROFILES = ("smoke", "quick")
THREADS = 2


def runs() -> list[tuple[str, str | None]]:
    """(method, variant) for PDD in every variant, then every baseline."""
    return [("pdd", v) for v in VARIANTS] + [(m, None) for m in BASELINES]


def metrics(row: dict) -> dict[str, float]:
    """The row's AUROC / AUPRC fields (every stage PDD reports), exactly as the row holds them."""
    return {k: v for k, v in sorted(row.items()) if k.endswith(("auroc", "auprc")) and isinstance(v, float)}


def measure(profiles: tuple[str, ...]) -> dict[str, dict[str, float]]:
    torch.set_num_threads(THREADS)
    out: dict[str, dict[str, float]] = {}
    for profile in profiles:
        for method, variant in runs():
            key = f"{profile}/{method}" + (f"/{variant}" if variant else "")
            options = {"variant": variant} if variant else {}
            start = time.perf_counter()
            row = run_task("mnist-5k", 1, 20, profile=profile, method=method,
                           runtime=Runtime(device="cpu", seed=0, progress=False), **options)
            out[key] = metrics(row)
            print(f"{key}: {out[key]}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help=f"measure and write {RECORD.name}")
    mode.add_argument("--check", action="store_true", help=f"measure and compare with {RECORD.name}")
    p.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    args = p.parse_args()
    if args.check and not RECORD.exists():
        print(f"no {RECORD.name} to check against: run with --record first", file=sys.stderr)
        return 2
    measured = measure(tuple(args.profiles))
    if args.record:
        record = {"pddlite": pddlite.__version__, "torch": torch.__version__, "threads": THREADS,
                  "command": "pddlite run --dataset mnist-5k --anomaly 1 --seed 0 --device cpu",
                  "metrics": measured}
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {RECORD}")
        return 0
    record = json.loads(RECORD.read_text())
    if record["torch"] != torch.__version__:
        print(f"note: recorded with torch {record['torch']}, running {torch.__version__}: "
              "training may differ for that reason alone", file=sys.stderr)
    changed = 0
    for key, now in measured.items():
        before = record["metrics"].get(key)
        if before is None:
            print(f"{key}: not in the record")
            continue
        for name in sorted(set(before) | set(now)):
            if before.get(name) != now.get(name):
                changed += 1
                print(f"{key} {name}: {before.get(name)} -> {now.get(name)}")
    print("no metric changed" if not changed else f"{changed} metric(s) changed")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())

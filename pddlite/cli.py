"""The ``pddlite`` command line: ``run`` (one task), ``replicate`` (the grid) and ``report`` (its figures).

Each subcommand is an ``add_*_arguments`` function and a ``cmd_*`` function, both here, and
:func:`build_parser` lists the three by name: the library modules behind them (``experiment``,
``grid``, ``report``) know nothing of argparse. Bad input ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .device import PRECISIONS
from .errors import PDDLiteError
from .experiment import SPLITS, run_task
from .files import check_distinct_outputs, check_output_file, write_or_keep
from .grid import DEFAULT_DATASETS, DEFAULT_METHODS, DEFAULT_REPS, count_finished, replicate
from .profiles import get_profile
from .runtime import Runtime
from .variants import DEFAULT_VARIANT, VARIANTS


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision``, ``--deterministic``, ``--compile`` and ``--cuda-graphs`` (shared by ``run`` and ``replicate``)."""
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="training precision: auto (bf16 on GPUs of capability >= 8.0, fp16 with loss scaling "
                        "below, fp32 on the CPU), bf16, fp16 or fp32")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN algorithms (same seed, same GPU, same numbers; slower)")
    p.add_argument("--compile", action="store_true",
                   help="compile the networks' forward passes for training with torch.compile (measured on an "
                        "H200: slower than without, at paper width and batch 200; see docs/performance.md)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="PDD: replay each whole training step as one CUDA graph (a CUDA GPU, bf16 or fp32, the "
                        "paper and pddlite variants; see docs/performance.md); baselines train without")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist-5k", help="mnist-5k (offline), mnist, fashion-mnist or cifar10")
    p.add_argument("--anomaly", type=int, nargs="+", default=[1], help="anomaly class(es)")
    p.add_argument("--shots", type=int, default=20, help="labeled prototypes per normal class (paper: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=None, help="smoke, quick, colab or paper (default: $PDDLITE_PROFILE, else quick)")
    p.add_argument("--method", default="pdd", help="pdd, or a baseline (egbad, ganomaly, mcdd, deepsvdd, pixel-knn, pixel-centroid, pixel-knn-unlabeled)")
    p.add_argument("--variant", default=None, choices=tuple(VARIANTS),
                   help="PDD only: pddlite (default, chosen on validation tasks), paper (as its text states), "
                        "or reference (as the authors' sample notebook does it)")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="score the official test split, or the validation task built from training data (where choices are made)")
    p.add_argument("--no-ablation", action="store_true",
                   help="PDD: skip the adversarial-only control tune-up (saves its time)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_precision_arguments(p)
    p.add_argument("--data-dir", default=None, help="where datasets live (default: $PDDLITE_DATA, else a cache folder)")
    p.add_argument("--checkpoint", default=None, help="PDD: save after every epoch and resume from this file")
    p.add_argument("--out", default=None, help="write the result as one JSON object to this file")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bars and the estimated training time (which costs two training steps)")


def cmd_run(args: argparse.Namespace) -> int:
    options: dict = {}
    if args.method == "pdd":
        options = {"variant": args.variant or DEFAULT_VARIANT, "checkpoint": args.checkpoint,
                   "ablation": not args.no_ablation}
    else:
        for flag, value in (("--variant", args.variant), ("--checkpoint", args.checkpoint),
                            ("--cuda-graphs", args.cuda_graphs or None)):
            if value is not None:
                raise PDDLiteError(f"{flag} is for PDD only; {args.method} has none (drop {flag})")
    check_distinct_outputs({"--out": args.out, "--checkpoint": args.checkpoint})
    if args.out is not None:  # before the training, not after it
        check_output_file(args.out)
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
    runtime = Runtime(device=args.device, seed=args.seed, progress=not args.no_progress, precision=args.precision,
                      deterministic=args.deterministic, compile=args.compile, cuda_graphs=args.cuda_graphs)
    row = run_task(
        dataset=args.dataset, anomaly=args.anomaly if len(args.anomaly) > 1 else args.anomaly[0],
        shots=args.shots, profile=args.profile, method=args.method, data_dir=args.data_dir, split=args.split,
        runtime=runtime, **options,
    )
    row.pop("model", None)
    where = f"{row['split']} split"
    if "pretrain_auroc" in row:
        print(f"after pre-training:     AUROC {row['pretrain_auroc']:.4f}  AUPRC {row['pretrain_auprc']:.4f}  ({where})")
    if "adversarial_only_auroc" in row:
        print(f"adversarial steps only: AUROC {row['adversarial_only_auroc']:.4f}  AUPRC {row['adversarial_only_auprc']:.4f}")
    label = f"after the tune-up ({row['variant']})" if args.method == "pdd" else args.method
    print(f"{label}: AUROC {row['auroc']:.4f}  AUPRC {row['auprc']:.4f}  "
          f"({where}, {row['seconds']:.1f} s on {row['device']})")
    if args.out is not None:
        write_or_keep(args.out, json.dumps(row, indent=2) + "\n", "the result row")
    return 0


def _add_replicate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS),
                   help="datasets (mnist, fashion-mnist, cifar10, mnist-5k); default: the paper's three")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"methods; default: {' '.join(DEFAULT_METHODS)}")
    p.add_argument("--variants", nargs="+", default=[DEFAULT_VARIANT], choices=tuple(VARIANTS),
                   help=f"PDD variants to run side by side (default: {DEFAULT_VARIANT})")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="score the test split (for reporting) or the validation tasks (where choices are made)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, help="repetitions per task (seed = repetition index)")
    p.add_argument("--anomalies", type=int, nargs="+", default=None, help="anomaly classes (default: all)")
    p.add_argument("--shots", type=int, default=20, help="labeled prototypes per normal class (paper: 20)")
    p.add_argument("--profile", default=None, help="smoke, quick, colab or paper (default: $PDDLITE_PROFILE, else quick)")
    p.add_argument("--out", default="results", help="results folder (one JSON file per run)")
    p.add_argument("--shard", default=None,
                   help="run only shard k of n, written k/n (e.g. 2/8, or $SLURM_ARRAY_TASK_ID/8 with --array=1-8)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_precision_arguments(p)
    p.add_argument("--data-dir", default=None, help="where datasets live (default: $PDDLITE_DATA, else a cache folder)")
    p.add_argument("--dry-run", action="store_true", help="print how many runs this shard has and how many are done")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--run-progress", action="store_true", help="also show each run's epoch bars")


def cmd_replicate(args: argparse.Namespace) -> int:
    # each run's seed is its repetition index; --run-progress shows each run's epoch bars
    runtime = Runtime(device=args.device, progress=args.run_progress, precision=args.precision,
                      deterministic=args.deterministic, compile=args.compile, cuda_graphs=args.cuda_graphs)
    if args.dry_run:
        total, done = count_finished(args.datasets, args.methods, args.reps, args.profile, args.out, args.shard,
                                     args.anomalies, args.shots, args.variants, args.split, runtime, args.data_dir)
        print(f"{total} runs in {'shard ' + args.shard if args.shard else 'the grid'} "
              f"(profile {get_profile(args.profile).name}): {done} done, {total - done} to run; results in {args.out}")
        return 0
    rows = replicate(args.datasets, args.methods, args.reps, args.profile, args.out, args.shard, args.data_dir,
                     args.anomalies, args.shots, progress=not args.no_progress, variants=args.variants,
                     split=args.split, runtime=runtime)
    print(f"{len(rows)} runs finished in {args.out}; draw the figures with: pddlite report {args.out}")
    return 0


def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="?", default="results", help="folder of result files (default: results)")
    p.add_argument("--out", default=None, help="where to write the figures and summary.md (default: the results folder)")
    p.add_argument("--profile", default=None, help="which profile's results to use when there are several")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="report the test split (default) or the validation tasks; the two are never mixed")
    p.add_argument("--shots", type=int, default=None, help="which shots count's rows to report (default: 20 where present)")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report  # matplotlib: imported only when a report is drawn

    for path in make_report(args.results, args.out, args.profile, args.split, args.shots).values():
        print(path)
    return 0


#: the subcommands: name -> (help, add_arguments, run)
SUBCOMMANDS = {
    "run": ("train and score PDD (or a baseline) on one leave-one-class-out task", _add_run_arguments, cmd_run),
    "replicate": ("run the paper's grid (datasets x anomaly classes x methods x repetitions), resumable and shardable",
                  _add_replicate_arguments, cmd_replicate),
    "report": ("draw the paper's figures (Figs. 3-11) and a table of means from a results folder",
               _add_report_arguments, cmd_report),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pddlite", description="Prototype Data Description (Ando & Yamamoto)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, add_arguments, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PDDLiteError as err:
        print(f"pddlite: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        method = getattr(args, "method", "pdd")  # only `run` has one; a baseline run keeps no checkpoint
        what = {"run": "a run with --checkpoint resumes where it stopped" if method == "pdd"
                else f"{method} keeps no checkpoint: run the command again to start over",
                "replicate": "run the same command again: finished runs are kept and skipped"}.get(args.command, "")
        print("pddlite: interrupted" + (f" ({what})" if what else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``pddlite`` command line: ``pddlite run`` trains and scores one task.

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .device import PRECISIONS
from .errors import PDDLiteError
from .files import check_output_file, write_text_atomically
from .experiment import SPLITS
from .variants import DEFAULT_VARIANT, VARIANTS

#: subcommand name -> (function that adds its arguments, function that runs it)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register a subcommand: decorate ``run(args) -> exit status``; ``add_arguments`` is attached after."""
    def wrap(run: Callable[[argparse.Namespace], int]):
        run.help = help  # type: ignore[attr-defined]
        COMMANDS[name] = (getattr(run, "add_arguments", lambda p: None), run)
        return run
    return wrap


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--deterministic`` (shared by ``run`` and ``replicate``)."""
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="training precision: auto (bf16 on GPUs of capability >= 8.0, fp16 with loss scaling "
                        "below, fp32 on the CPU), bf16, fp16 or fp32")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN algorithms (same seed, same GPU, same numbers; slower)")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist-5k", help="mnist-5k (offline), mnist, fashion-mnist or cifar10")
    p.add_argument("--anomaly", type=int, nargs="+", default=[1], help="anomaly class(es)")
    p.add_argument("--shots", type=int, default=20, help="labeled prototypes per normal class (paper: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=None, help="smoke, quick, colab or paper (default: $PDDLITE_PROFILE, else quick)")
    p.add_argument("--method", default="pdd", help="pdd, or a baseline (egbad, ganomaly, mcdd, deepsvdd, pixel-knn, pixel-centroid)")
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
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment import run_task

    options: dict = {}
    if args.method == "pdd":
        options = {"variant": args.variant or DEFAULT_VARIANT, "checkpoint": args.checkpoint,
                   "ablation": not args.no_ablation}
    else:
        for flag, value in (("--variant", args.variant), ("--checkpoint", args.checkpoint)):
            if value is not None:
                raise PDDLiteError(f"{flag} is for PDD only; {args.method} has none (drop {flag})")
    if args.out is not None:  # before the training, not after it
        check_output_file(args.out)
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
    row = run_task(
        dataset=args.dataset, anomaly=args.anomaly if len(args.anomaly) > 1 else args.anomaly[0],
        shots=args.shots, seed=args.seed, profile=args.profile, method=args.method, device=args.device,
        data_dir=args.data_dir, progress=not args.no_progress, split=args.split, precision=args.precision,
        deterministic=args.deterministic, **options,
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
        write_text_atomically(args.out, json.dumps(row, indent=2) + "\n")
    return 0


cmd_run.add_arguments = _add_run_arguments  # type: ignore[attr-defined]
command("run", "train and score PDD (or a baseline) on one leave-one-class-out task")(cmd_run)


def build_parser() -> argparse.ArgumentParser:
    _load_extensions()
    parser = argparse.ArgumentParser(prog="pddlite", description="Prototype Data Description (Ando & Yamamoto)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=run.help, description=run.help)  # type: ignore[attr-defined]
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def _load_extensions() -> None:
    """Import modules that add subcommands (the grid and the report), where present."""
    import importlib

    for module in ("pddlite.grid", "pddlite.report"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PDDLiteError as err:
        print(f"pddlite: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = {"run": "a run with --checkpoint resumes where it stopped",
                "replicate": "run the same command again: finished runs are kept and skipped"}.get(args.command, "")
        print("pddlite: interrupted" + (f" ({what})" if what else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Run as a script this module is __main__, a second copy; the registry lives in pddlite.cli.
    from pddlite.cli import main as package_main

    sys.exit(package_main())

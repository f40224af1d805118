"""Summarise a screening log: mean AUROC / AUPRC per setting over the tasks it has rows for.

    python experiments/summarize.py [--log experiments/results/screen.jsonl] [--scoring kde10 ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--log", default=str(Path(__file__).parent / "results" / "screen.jsonl"))
    p.add_argument("--scoring", nargs="*", default=None)
    p.add_argument("--tuneup", nargs="*", default=None)
    p.add_argument("--pretrain", nargs="*", default=None)
    p.add_argument("--per-task", action="store_true", help="also print each task's AUROC")
    args = p.parse_args()
    cells = defaultdict(list)
    latest = {}  # one row per (task, setting, epoch, scoring): the last one written
    for line in Path(args.log).read_text().splitlines():
        r = json.loads(line)
        if r.get("done"):
            continue
        if r["tuneup"] == "pretrained-v2":  # the pre-trained model rescored with later scorings
            r["tuneup"] = "pretrained"
        latest[(r["dataset"], r["anomaly"], r["seed"], r["pretrain"], r["tuneup"], r["epoch"], r["scoring"])] = r
    for r in latest.values():
        if args.scoring and r["scoring"] not in args.scoring:
            continue
        if args.tuneup and r["tuneup"] not in args.tuneup:
            continue
        if args.pretrain and r["pretrain"] not in args.pretrain:
            continue
        cells[(r["pretrain"], r["tuneup"], r["epoch"], r["scoring"])].append(r)
    print(f"{'pretrain':10} {'tune-up':14} {'ep':>2} {'scoring':16} {'n':>2}  AUROC         AUPRC")
    for key in sorted(cells):
        rows = cells[key]
        a = np.array([r["auroc"] for r in rows])
        b = np.array([r["auprc"] for r in rows])
        line = f"{key[0]:10} {key[1]:14} {key[2]:>2} {key[3]:16} {len(rows):>2}  {a.mean():.3f}±{a.std():.3f}  {b.mean():.3f}±{b.std():.3f}"
        if args.per_task:
            line += "  " + " ".join(f"{r['anomaly']}:{r['auroc']:.2f}" for r in sorted(rows, key=lambda r: (r["anomaly"], r["seed"])))
        print(line)


if __name__ == "__main__":
    main()

"""Copy the measured result rows that the course reads into pddlite's package data.

The notebooks compute every comparison beyond their own run from these rows
(:mod:`pddlite.measured`), so a pip-installed pddlite carries them. One JSON Lines file per
collection; rerun this script after a grid adds or replaces rows here::

    python experiments/ship_rows.py

``tests/test_measured.py`` checks that the shipped files equal what this script builds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHIPPED = HERE.parent / "pddlite" / "measured"

sys.path.insert(0, str(HERE.parent))
from pddlite.grid import load_result_files  # noqa: E402


def _grid_rows(folder: Path, split: str, **extra) -> list[dict]:
    """The rows of one grid folder on one split, in load_result_files' order, with extra fields."""
    return [{**row, **extra} for _, row in load_result_files(folder) if row.get("split") == split]


def collections() -> dict[str, list[dict]]:
    """Collection name -> its rows, built from experiments/results."""
    baselines = []
    for code in ("before", "after"):
        baselines += _grid_rows(RESULTS / "baselines-h200" / code, "test", code=code)
    screen = [json.loads(line) for line in (RESULTS / "screen.jsonl").read_text().splitlines() if line.strip()]
    return {
        "test": _grid_rows(RESULTS / "grid", "test"),
        "validation": [row for row in screen if row.get("split") == "validation" and "scoring" in row],
        "baselines": baselines,
        "reference-gpu": _grid_rows(RESULTS / "grid-h200", "test"),
    }


def render(rows: list[dict]) -> str:
    """JSON Lines, keys in the rows' own order."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def main() -> None:
    for name, rows in collections().items():
        (SHIPPED / f"{name}.jsonl").write_text(render(rows))
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()

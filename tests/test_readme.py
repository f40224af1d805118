"""The README as a front door, and the docs it points to, kept true by the code and the shipped rows.

* The README's test command is the one CI runs (``.ci/run``), word for word, and the README stays
  under 250 lines.
* Its headline table is recomputed from the result rows shipped under ``experiments/results/``,
  through the same functions ``pddlite report`` uses to choose and average rows: a number that
  differs from what the rows give fails here, so the table cannot go stale.
* Every relative link of ``README.md``, ``docs/*.md`` and ``experiments/README.md`` (and the heading a ``#`` names) exists.
* Every notebook of the series has its row in the README, and ``docs/layout.md`` lists every module.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

from pddlite.grid import load_result_files
from pddlite.report import (METHOD_LABELS, VARIANT_ORDER, choose_profile, choose_split, collect,
                            consistent_rows, headline_table, series_label)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
EXPERIMENTS = ROOT / "experiments" / "README.md"
TEST_COMMAND = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && '
                "PDDLITE_PROFILE=smoke pytest --nbval-lax tests notebooks")
#: what the headline table reports, as its text says: mnist-5k's test split in ``quick``
DATASET, SPLIT, PROFILE = "mnist-5k", "test", "quick"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _section(text: str, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    out = []
    for line in lines[start + 1:]:
        if line.startswith("#") and len(line) - len(line.lstrip("#")) <= level:
            break
        out.append(line)
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> list[list[str]]:
    """The body rows of the first Markdown table in ``lines`` (header and rule left out)."""
    rows = [_cells(line) for line in lines if line.startswith("|")]
    return rows[2:]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line) for line in _prose(path.read_text()) if line.startswith("#")}


# --------------------------------------------------------------------------- the front door


def test_the_readme_keeps_the_exact_test_command_that_ci_runs():
    lines = README.read_text().splitlines()
    assert TEST_COMMAND in lines, "the README's test command must stay, word for word, on a line of its own"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == TEST_COMMAND, ".ci/run must run exactly the README's test command"


def test_the_readme_stays_under_250_lines():
    assert len(README.read_text().splitlines()) < 250


@pytest.mark.parametrize("page", [README, *DOCS, EXPERIMENTS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_that_exists(page):
    broken = []
    for line in _prose(page.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:: not a file of this repository
                continue
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in _anchors(where):
                broken.append(f"{target} (no heading #{anchor} in {where.name})")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_notebook_has_its_row_and_colab_badge_in_the_readme():
    rows = _table(_section(README.read_text(), "## The notebooks"))
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    listed = [re.search(r"\(notebooks/([^)]+\.ipynb)\)", row[1]).group(1) for row in rows]
    assert listed == notebooks
    for row, name in zip(rows, notebooks):
        assert row[0] == str(int(name[:2])), f"{name} is numbered {row[0]}"
        assert f"colab.research.google.com/github/pddlite/pddlite/blob/main/notebooks/{name})" in row[2], name


# --------------------------------------------------------------------------- the headline table


def _headline_rows() -> list[list[str]]:
    """The README's headline table: [label, AUROC, AUPRC, runs, link to the rows' folder]."""
    return _table(_section(README.read_text(), "## Headline results"))


@lru_cache(maxsize=None)
def _recomputed(folder: str) -> dict[str, tuple[str, str, str]]:
    """``{label: (AUROC, AUPRC, runs)}`` of ``pddlite report``'s headline table for one folder's rows,
    chosen as the report chooses them (one configuration per series, the test split, ``quick``)."""
    kept, _ = consistent_rows(load_result_files(ROOT / folder))
    rows, _ = choose_profile(choose_split(kept, SPLIT), PROFILE)
    table = _table(headline_table(rows, DATASET))
    return {label: (auroc, auprc, runs) for label, auroc, auprc, runs in table}


def _folder(link_cell: str) -> str:
    found = LINK.search(link_cell)
    assert found, f"the rows column must link the folder of its rows: {link_cell!r}"
    return found.group(1)


def test_the_headline_table_equals_what_the_shipped_rows_give():
    rows = _headline_rows()
    assert rows, "the README has no headline table"
    for label, auroc, auprc, runs, link in rows:
        folder = _folder(link)
        assert folder.startswith("experiments/results/"), folder
        computed = _recomputed(folder)
        assert label in computed, f"{label!r}: no such series in {folder} (it has: {', '.join(computed)})"
        assert (auroc, auprc, runs) == computed[label], f"{label} ({folder})"


def test_the_headline_table_has_every_variant_pixel_check_and_baseline_over_ten_classes_and_three_seeds():
    shown = set()
    for label, _, _, runs, link in _headline_rows():
        rows = [row for _, row in load_result_files(ROOT / _folder(link))]
        series = {series_label(s): s for s in collect(rows, DATASET, "auroc")}
        shown.add(series.get(label))
        assert runs == "30", f"{label}: {runs} runs, but the README says ten classes x three seeds"
    wanted = {f"pdd-{v}" for v in VARIANT_ORDER} | set(METHOD_LABELS)
    assert wanted <= shown, f"missing from the headline table: {sorted(wanted - shown)}"


# --------------------------------------------------------------------------- the layout


def _layout_tree() -> list[str]:
    text = (ROOT / "docs" / "layout.md").read_text()
    block = "\n".join(_section(text, "## The tree"))
    return re.search(r"```\n(pddlite/\n.*?)```", block, re.S).group(1).splitlines()


def test_the_layout_lists_every_module_and_no_other():
    tree = _layout_tree()
    top = [m.group(1) for line in tree if (m := re.match(r"  (\S+\.py)\s", line))]
    start = tree.index(next(line for line in tree if re.match(r"  baselines/\s", line)))
    baselines = []
    for line in tree[start + 1:]:
        m = re.match(r"    (\S+\.py)\s", line)
        if not m:
            break
        baselines.append(m.group(1))
    assert sorted(top) == sorted(p.name for p in (ROOT / "pddlite").glob("*.py"))
    assert sorted(baselines) == sorted(p.name for p in (ROOT / "pddlite" / "baselines").glob("*.py"))


# --------------------------------------------------------------------------- the Python example


def test_the_python_example_runs_as_written_and_predict_agrees_with_the_threshold():
    """The README's first Python block, run as a reader would paste it (smoke profile, mnist-5k
    offline); its names then hold what the text beside it says they hold."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    model, scores, labels = names["model"], names["scores"], names["labels"]
    assert set(labels.tolist()) <= {0, 1}
    assert (labels == (scores > model.threshold_)).all()
    assert len(model.decision_scores_) == len(model.labels_) > 0
    flagged = model.labels_.mean()  # the training images above threshold_: about the contamination
    assert abs(flagged - model.contamination) < 0.02, flagged

"""The notebook series and its Binder environment: structure checks that run in a second.

The notebooks themselves are executed by nbval, in the smoke profile, with the README's command
``PDDLITE_PROFILE=smoke pytest --nbval-lax notebooks/``; this module checks that every notebook is
stored clean and opens the way the series promises.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BINDER = ROOT / "binder"
COLAB = "https://colab.research.google.com/github/pddlite/pddlite/blob/main/notebooks/{}"


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_the_series_is_numbered_0_to_8():
    numbers = [p.name[:3] for p in NOTEBOOKS]
    assert numbers == [f"{i:02d}_" for i in range(9)], [p.name for p in NOTEBOOKS]
    for p in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name), p.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_valid_and_stored_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata, "saved widget state: clear it before committing"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count: clear it"
        assert "attachments" not in cell or not cell.attachments, f"cell {i} has attachments"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_title_badge_and_summary(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown"
    lines = [line for line in first.source.splitlines() if line.strip()]
    number = int(path.name[:2])
    assert lines[0].startswith(f"# {number}. "), lines[0]
    assert "colab-badge.svg" in first.source
    assert f"({COLAB.format(path.name)})" in first.source, "the Colab badge must open this very notebook"
    summary = lines[-1]
    assert summary.startswith("*") and summary.endswith("*") and len(summary) > 40, "a one-line summary in italics"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_guarded_install_cell_first(path):
    code = _code(_read(path))
    installs = [c for c in code if "pip install" in c]
    assert len(installs) == 1, "exactly one install cell"
    assert code[0] == installs[0], "the install cell is the first code cell"
    assert '"google.colab" in sys.modules' in installs[0]
    assert "pddlite[notebooks]" in installs[0]
    guarded = [line for line in installs[0].splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert guarded, "an actual pip install line"
    assert all(line.startswith((" ", "\t")) for line in guarded), "pip install must sit inside the Colab guard"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_setup_cell_after_the_install_cell(path):
    """Device, profile, seed and folders come from pddlite.notebook.setup() in one cell, whose
    PROFILE line is where a learner chooses the profile; no notebook repeats what it does."""
    nb = _read(path)
    code = _code(nb)
    setup = code[1]
    assert "%matplotlib inline" in setup and "from pddlite.notebook import setup" in setup
    assert "PROFILE = None" in setup and "USE_DRIVE = False" in setup
    assert "nb = setup(seed=0, profile=PROFILE, use_drive=USE_DRIVE)" in setup
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Change runtime type" in prose, "the setup's prose tells Colab users how to get a GPU"
    for source in code:
        for repeated in ("resolve_device(", 'os.environ.get("PDDLITE_PROFILE")', "PDDLITE_CHECKPOINTS", "shutil.copy"):
            assert repeated not in source, f"{repeated} belongs to pddlite.notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_inert_output_checks(path):
    """nbval compares outputs only for cells stored with outputs and an execution count. These notebooks
    are stored clean, so a ``# NBVAL_CHECK_OUTPUT`` marker would check nothing: stable numbers are
    asserted in the cell instead."""
    for source in _code(_read(path)):
        assert "NBVAL_CHECK_OUTPUT" not in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_has_no_accidental_code_blocks(path):
    """A prose line indented by four spaces renders as code: only fenced blocks may hold code."""
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and line.startswith("    ") and line.strip():
                raise AssertionError(f"cell {i}: indented line renders as code: {line!r}")


def test_stable_numbers_are_asserted():
    text = "\n".join(_code(_read(NOTEBOOKS[0])))
    assert "assert sizes == (3420, 180, 1000, 100)" in text


def test_no_notebook_treats_a_part_of_pddlite_as_optional():
    # the grid, the report and the baselines always ship: a guard around them is dead code
    for path in NOTEBOOKS:
        text = "\n".join(_code(_read(path)))
        assert 'find_spec("pddlite' not in text, path.name


def test_binder_environment():
    assert (BINDER / "requirements.txt").exists()
    requirements = (BINDER / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert re.search(r"^torch\b", requirements, re.M) and re.search(r"^torchvision\b", requirements, re.M)
    post = (BINDER / "postBuild").read_text().splitlines()
    commands = [line for line in post if line.strip() and not line.startswith("#")]
    assert commands[0] == "set -e", "postBuild must start with set -e"
    assert any("pip install" in line and "-e" in line for line in commands)
    start = (BINDER / "start").read_text()
    assert "PDDLITE_PROFILE" in start and "quick" in start
    assert start.rstrip().endswith('exec "$@"'), "binder/start must hand over to the notebook server"
    for name in ("postBuild", "start"):
        assert (BINDER / name).stat().st_mode & 0o111, f"binder/{name} must be executable"


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    return (cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])
            and cell.metadata.get("jupyter", {}).get("source_hidden") is True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_objective_at_the_top_and_recap_exercises_at_the_end(path):
    """A teacher reads what a notebook teaches first, and ends with a three-line recap and 2-4
    exercises; each exercise has a worked solution in a collapsed code cell that nbval runs."""
    cells = _read(path).cells
    assert cells[1].cell_type == "markdown" and cells[1].source.startswith("**Learning objective.**"), \
        "the cell after the title states the learning objective"
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(heads) == 1, "one '## Exercises' section"
    recap = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Recap")]
    assert len(recap) == 1 and recap[0] > heads[0], "one '## Recap' after the exercises"
    bullets = [line for line in cells[recap[0]].source.splitlines() if line.startswith("- ")]
    assert len(bullets) == 3, "a three-line recap"
    exercises = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
                 and re.match(r"\*\*Exercise \d\.\*\*", c.source)]
    assert 2 <= len(exercises) <= 4, f"2-4 exercises, found {len(exercises)}"
    assert all(heads[0] < i < recap[0] for i in exercises), "exercises sit in their section"
    for i in exercises:
        assert _is_solution(cells[i + 1]), f"cell {i + 1}: a worked solution, tagged 'solution' and collapsed"
    assert all(i - 1 in exercises for i, c in enumerate(cells) if _is_solution(c)), "one solution per exercise"

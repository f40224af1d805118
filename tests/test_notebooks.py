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


INSTALL = ("# On Colab: install pddlite (everything else it needs is already there)\n"
           "import sys\n"
           'if "google.colab" in sys.modules:\n'
           '    %pip install -q "pddlite @ git+https://github.com/pddlite/pddlite"')
SETUP_SENTENCE = "Setup: picks the device and profile and seeds everything; notebook 0 explains the choices."
#: words that say where, when or on which machine something ran: they belong in docs/, not in teaching prose
PROVENANCE = ("H200", "H100", "A100", "measured once", "commit", "idle CPU", "shared with a training job",
              "earlier 3-epoch", "the earlier", "README's measurements", "measured with nbval")


def _prose(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _words(text: str) -> int:
    text = re.sub(r"`[^`]*`|\$[^$]*\$|\(https?://[^)]*\)", " ", text)
    return len(text.split())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_idea_objective_and_runtime(path):
    """Cell 2: the idea in a few sentences, a one-line learning objective and a one-line runtime
    per profile, the Colab profile among them, and nothing else (no provenance)."""
    cell = _read(path).cells[1]
    assert cell.cell_type == "markdown"
    paragraphs = [p for p in cell.source.split("\n\n") if p.strip()]
    assert len(paragraphs) == 3, "idea, objective, runtime: three paragraphs"
    idea, objective, runtime = paragraphs
    assert not idea.startswith("**"), "the idea comes first"
    assert 2 <= len(re.findall(r"[.!?](\s|$)", idea)) <= 5, "the idea in two to four sentences"
    assert objective.startswith("**Learning objective.** ") and "\n" not in objective.strip(), "a one-line objective"
    assert runtime.startswith("**Runtime.** ") and "\n" not in runtime.strip(), "a one-line runtime"
    for profile in ("`smoke`", "`quick`", "`colab`"):
        assert profile in runtime, f"the runtime line lists {profile}"
    assert _words(cell.source) <= 150, f"{_words(cell.source)} words before the setup: teach first"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_install_cell_installs_only_what_colab_lacks(path):
    nb = _read(path)
    code = _code(nb)
    assert nb.cells[2].cell_type == "code" and nb.cells[2].source == INSTALL, "cell 3: the install cell, verbatim"
    installs = [c for c in code if "pip install" in c]
    assert installs == [INSTALL], "exactly one install cell"
    for word in ("jupyter", "ipywidgets", "[notebooks]"):
        assert word not in INSTALL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_setup_sentence_then_the_setup_cell(path):
    """Device, profile, seed and folders come from pddlite.notebook.setup() in one cell, whose
    PROFILE line is where a learner chooses the profile; notebook 0 alone explains it."""
    nb = _read(path)
    sentence = nb.cells[3]
    assert sentence.cell_type == "markdown" and sentence.source.startswith("Setup: ")
    assert "\n" not in sentence.source.strip() and sentence.source.count(". ") == 0, "one sentence"
    if path.name.startswith("00_"):
        assert "Change runtime type" in _prose(nb), "notebook 0 tells Colab users how to get a GPU"
    else:
        assert sentence.source == SETUP_SENTENCE
        assert "Change runtime type" not in _prose(nb), "the setup is explained in notebook 0 only"
    setup = nb.cells[4].source
    assert nb.cells[4].cell_type == "code" and setup == _code(nb)[1]
    assert "%matplotlib inline" in setup and "from pddlite.notebook import setup" in setup
    assert "PROFILE = None" in setup and "USE_DRIVE = False" in setup
    assert "nb = setup(seed=0, profile=PROFILE, use_drive=USE_DRIVE)" in setup
    for source in _code(nb):
        for repeated in ("resolve_device(", 'os.environ.get("PDDLITE_PROFILE")', "PDDLITE_CHECKPOINTS", "shutil.copy"):
            assert repeated not in source, f"{repeated} belongs to pddlite.notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_has_no_provenance(path):
    prose = _prose(_read(path))
    found = [word for word in PROVENANCE if word.lower() in prose.lower()]
    assert not found, f"provenance in teaching prose (it belongs in docs/): {found}"


def _without_code_and_math(text: str) -> str:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\(https?://[^)]*\)", " ", text, flags=re.S)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_result_numbers_typed_in_prose(path):
    """A result a student reads comes from a cell; AUROC-like numbers (0.617, 0.914) in prose are typed in."""
    typed = re.findall(r"(?<![\w.])0\.[1-9]\d{2,}", _without_code_and_math(_prose(_read(path))))
    assert not typed, f"result numbers typed into prose: {typed}; compute them in a cell (pddlite.measured)"


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


def test_the_notebooks_extra_pins_nothing_over_colab_or_binder():
    """Colab and Binder bring their own Jupyter and ipywidgets: the extra must not replace them."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["notebooks"] and all(re.fullmatch(r"[A-Za-z0-9_-]+", dep) for dep in extras["notebooks"]), \
        "no version pins in the notebooks extra"
    assert not any(dep.startswith("jupyter") for dep in extras["notebooks"])


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
    return cell.cell_type == "code" and cell.source.startswith("#@title Solution")


def _exercises(cells) -> list[tuple[int, int]]:
    """(exercise cell, its solution cell) for every '**Exercise N.**' cell."""
    found = []
    for i, c in enumerate(cells):
        if c.cell_type == "markdown" and re.match(r"\*\*Exercise \d[ .(]", c.source):
            after = [j for j in range(i + 1, len(cells)) if cells[j].cell_type == "markdown" or _is_solution(cells[j])]
            found.append((i, after[0] if after and _is_solution(cells[after[0]]) else -1))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_recap_and_exercises_at_the_end(path):
    """A notebook ends with 2-4 exercises, each followed by its worked solution, and a three-line recap."""
    cells = _read(path).cells
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    if not heads:  # the heading may close the cell before the first exercise
        heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "\n## Exercises" in c.source]
    assert len(heads) == 1, "one '## Exercises' section"
    recap = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Recap")]
    assert len(recap) == 1 and recap[0] > heads[0], "one '## Recap' after the exercises"
    bullets = [line for line in cells[recap[0]].source.splitlines() if line.startswith("- ")]
    assert len(bullets) == 3, "a three-line recap"
    exercises = _exercises(cells)
    assert 2 <= len(exercises) <= 4, f"2-4 exercises, found {len(exercises)}"
    for i, solution in exercises:
        assert heads[0] <= i < recap[0], "exercises sit in their section"
        assert solution > i, f"cell {i}: the exercise has a worked solution before the next text"
    assert sorted(j for _, j in exercises) == [i for i, c in enumerate(cells) if _is_solution(c)], \
        "one solution per exercise"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_hidden_in_colab_and_jupyterlab_and_answered_in_words(path):
    cells = _read(path).cells
    for i, c in enumerate(cells):
        hidden = c.metadata.get("jupyter", {}).get("source_hidden") is True
        if _is_solution(c) or hidden or "solution" in c.metadata.get("tags", []):
            assert c.source.startswith("#@title Solution (open after you try)\n"), f"cell {i}: a Colab form title"
            assert c.metadata.get("cellView") == "form", f"cell {i}: Colab hides a form cell's code"
            assert hidden, f"cell {i}: JupyterLab hides source_hidden cells"
            comments = [line for line in c.source.splitlines()[1:] if line.lstrip().startswith("# ")]
            answer = " ".join(line.lstrip()[2:] for line in comments)
            assert len(answer.split()) >= 8, f"cell {i}: the solution ends with its answer written in words (a comment)"


CODING = [p for p in NOTEBOOKS if 1 <= int(p.name[:2]) <= 7]


@pytest.mark.parametrize("path", CODING, ids=lambda p: p.name)
def test_a_coding_exercise_with_a_check(path):
    """Notebooks 1-7: a starter cell marked # TODO, a check cell calling pddlite.exercises.check,
    and a hidden solution that asserts the check passes."""
    cells = _read(path).cells
    todos = [i for i, c in enumerate(cells) if c.cell_type == "code" and "# TODO" in c.source]
    assert todos, "a coding exercise: a starter cell marked # TODO"
    for i in todos:
        following = cells[i + 1:i + 4]
        checks = [c for c in following if c.cell_type == "code" and not _is_solution(c) and "check(" in c.source]
        solutions = [c for c in following if _is_solution(c)]
        assert checks, f"cell {i}: a check cell follows the starter"
        assert solutions and "assert check(" in solutions[0].source, f"cell {i}: the solution asserts its check"
    assert any("pddlite.exercises import check" in c.source for c in cells if c.cell_type == "code")


def test_no_exercise_repeats_another_notebooks():
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        cells = _read(path).cells
        for i, _ in _exercises(cells):
            text = re.sub(r"\*\*Exercise \d[^*]*\*\*|\W+", " ", cells[i].source).strip().lower()
            key = " ".join(text.split()[:12])
            assert key not in seen, f"{path.name} repeats an exercise of {seen[key]}: {key!r}"
            seen[key] = path.name
    worst = [p.name for p in NOTEBOOKS if any("worst false alarms" in _read(p).cells[i].source
                                                 for i, _ in _exercises(_read(p).cells))]
    assert len(worst) <= 1, f"'the worst false alarms' exercise appears in {worst}"


def test_the_differences_box_is_the_same_in_notebooks_0_and_4():
    box = "**Where the paper, the sample notebook and pddlite differ**"
    found = {p.name: [c.source for c in _read(p).cells if c.cell_type == "markdown" and c.source.startswith(box)]
             for p in NOTEBOOKS}
    holders = {name: boxes for name, boxes in found.items() if boxes}
    assert sorted(holders) == ["00_setup_and_task.ipynb", "04_tuneup_and_scoring.ipynb"], sorted(holders)
    assert all(len(boxes) == 1 for boxes in holders.values())
    assert holders["00_setup_and_task.ipynb"] == holders["04_tuneup_and_scoring.ipynb"], "notebook 4 repeats the box"

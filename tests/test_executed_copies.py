"""The executed copies in docs/course/ (benchmarks/execute_course.py) match their notebooks.

Each copy's code cells must equal its source's, in order, so that a copy cannot drift from the
notebook a student runs; and its first cell must say which profile and device produced it. The
mechanism itself is checked on a two-cell notebook, whether or not copies exist yet.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COPIES = sorted((ROOT / "docs" / "course").glob("*.ipynb"))
STAMP = re.compile(r"^\*Executed copy, with outputs: run in the `(smoke|quick|colab|paper)` profile on (.+?) in \d+ min\. ")


def _script():
    spec = importlib.util.spec_from_file_location("execute_course", ROOT / "benchmarks" / "execute_course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def check_copy(copy: Path, source: Path) -> None:
    """A copy has its source's code cells, a stamp first, and outputs."""
    assert source.exists(), f"{copy.name} has no notebook of that name under notebooks/"
    executed, original = nbformat.read(copy, as_version=4), nbformat.read(source, as_version=4)
    assert _code(executed) == _code(original), \
        f"{copy.name} differs from its notebook: rerun python benchmarks/execute_course.py {copy.name[:2]}"
    assert STAMP.match(executed.cells[0].source), "the first cell says which profile and device ran it"
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), "an executed copy has outputs"


def test_every_copy_matches_its_notebook():
    for copy in COPIES:  # none yet is fine: the mechanism is tested below either way
        check_copy(copy, ROOT / "notebooks" / copy.name)


def test_the_mechanism_on_a_tiny_notebook(tmp_path):
    source = tmp_path / "notebooks" / "00_tiny.ipynb"
    source.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 0. Tiny"),
                                         nbformat.v4.new_code_cell("import os\nprint(os.environ['PDDLITE_PROFILE'])\n"
                                                                   "print(os.path.abspath('checkpoints'))"),
                                         nbformat.v4.new_code_cell("2 + 3")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source)
    copy = _script().execute(source, tmp_path / "copies", "smoke", device="a test CPU")
    check_copy(copy, source)
    executed = nbformat.read(copy, as_version=4)
    assert STAMP.match(executed.cells[0].source).groups() == ("smoke", "a test CPU")
    assert executed.cells[2].outputs[0]["text"] == "smoke\ncheckpoints\n", "no local folder in a copy"
    assert executed.cells[3].outputs[0]["data"]["text/plain"] == "5"
    assert nbformat.read(source, as_version=4).cells[1].outputs == [], "the source stays without outputs"

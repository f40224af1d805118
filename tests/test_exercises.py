"""pddlite.exercises.check: one line, a verdict, never an exception for a wrong or missing answer."""

import numpy as np
import pytest
import torch

from pddlite.exercises import check


def test_right_answers_pass(capsys):
    assert check("tensor", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9]))
    assert check("array vs tensor", np.array([[0.5]]), torch.tensor([[0.5]]))
    assert check("number", 0.25, 0.25)
    assert check("label", "normal", "normal")
    out = capsys.readouterr().out.splitlines()
    assert out == ["✓ tensor: right", "✓ array vs tensor: right", "✓ number: right", "✓ label: right"]


def test_unfinished_todo_is_reported_not_raised(capsys):
    def my_eq7():
        ...

    assert check("Eq. 7", my_eq7(), torch.zeros(3)) is False
    assert capsys.readouterr().out == "✗ Eq. 7: not yet — the answer is None: the TODO is not done yet\n"


def test_wrong_shape_and_first_differing_value(capsys):
    assert not check("shape", torch.zeros(2, 3), torch.zeros(3, 2))
    assert "shape (2, 3), expected (3, 2)" in capsys.readouterr().out
    assert not check("value", [0.0, 1.0, 2.5, 3.0], [0.0, 1.0, 2.0, 4.0])
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert "2 of 4 values differ; first at index 2: got 2.5, expected 2" in line


def test_tolerances_decide():
    assert not check("tight", 1.001, 1.0)
    assert check("loose", 1.001, 1.0, rtol=1e-2)
    assert not check("atol", 1e-3, 0.0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("answer", ["text", object(), {"a": 1}])
def test_non_numbers_against_numbers_fail_without_raising(answer, capsys):
    assert check("odd", answer, np.ones(2)) is False
    assert capsys.readouterr().out.startswith("✗ odd: not yet — ")

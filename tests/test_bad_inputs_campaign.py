"""The bad-input campaign (``benchmarks/bad_inputs.py``): every case that trains nothing, each one ends as it should.

The command-line cases are called through ``pddlite.cli.main`` in this process (the campaign runs
them as ``python -m pddlite``); the cases that inject a fault into a process of their own, or start
processes, are left to the campaign. Each case must end ``clean`` (refused in one line that names
the problem) or ``handled`` (legitimate, and right).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _campaign():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "benchmarks" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


campaign = _campaign()


#: each result-row case draws a report (a figure); one of each kind of wrong field is enough here
ROW_SAMPLE = {"auroc as a string", "seed as a float", "variant as a list", "shots as a list", "profile as a mapping",
              "another shots count", "older settings", "finished_at as a number", "a file that is not JSON"}

CASES = [c for c in campaign.all_cases() if not c.trains and not c.needs_a_process
         and (c.door != "result rows" or c.name in ROW_SAMPLE)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_clean_up():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    campaign.SHARED.close()


def test_the_campaign_has_cases_at_every_door():
    every = campaign.all_cases()
    assert len(every) >= 150
    assert {c.door for c in every} == set(campaign.DOORS)
    assert ROW_SAMPLE <= {c.name for c in every if c.door == "result rows"}
    for case in every:  # each case has exactly one oracle
        assert (case.words is None) != (case.check is None), case.name
        assert (case.call is None) != (not case.argv), case.name


@pytest.mark.parametrize("case", CASES, ids=[f"{c.door}: {c.name}" for c in CASES])
def test_each_case_ends_clean_or_handled(case):
    row = campaign.run_case(case, in_process_cli=True)
    assert row["category"] in ("clean", "handled"), f"{row['category']}: {row['detail']}"

"""The one mean and standard deviation of every table and figure."""

import statistics

import pytest

from pddlite.stats import mean_std


def test_mean_std_is_the_sample_standard_deviation():
    assert mean_std([0.5]) == (0.5, 0.0)
    m, s = mean_std([0.1, 0.2, 0.6])
    assert m == pytest.approx(0.3) and s == pytest.approx(statistics.stdev([0.1, 0.2, 0.6]))

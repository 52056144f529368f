"""Pure parts of bench/e2e.py: how a saturation round through the stack is rated."""

from __future__ import annotations

import pytest

from bench.e2e import parse_args, steady_rate


def test_steady_rate_counts_intervals_between_first_and_last_completion() -> None:
    # Fill and drain are left out: 4 completions 0.1 s apart are 3 intervals in 0.3 s,
    # whatever happened before the first one.
    assert steady_rate([5.0, 5.1, 5.2, 5.3]) == pytest.approx(10.0)


def test_steady_rate_does_not_depend_on_arrival_order() -> None:
    assert steady_rate([2.0, 1.0, 1.5]) == pytest.approx(2.0)


@pytest.mark.parametrize("completions", [[], [1.0], [3.0, 3.0]])
def test_steady_rate_refuses_too_few_or_simultaneous_completions(
        completions: list[float]) -> None:
    with pytest.raises(ValueError):
        steady_rate(completions)


def test_batches_option_always_measures_batch_one_and_refuses_nonsense() -> None:
    assert parse_args(["--batches", "16,8"]).batches == [8, 16]  # saturation adds 1
    assert parse_args([]).batches == [1, 8, 16]
    for bad in ("0", "x", ",", "300"):
        with pytest.raises(SystemExit):
            parse_args(["--batches", bad])

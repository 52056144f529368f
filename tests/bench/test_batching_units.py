"""Pure parts of bench/batching.py: which stacks it runs and how it judges them."""

from __future__ import annotations

import pytest

from bench.batching import configs, parse_args, stack_env, verdict
from config.serving import ServingSettings


def test_batch_one_runs_once_and_every_batch_size_with_every_wait() -> None:
    assert configs([8, 1, 4], [0.05, 0.01]) == [
        (1, 0.0), (4, 0.01), (4, 0.05), (8, 0.01), (8, 0.05)]


def test_each_stack_is_the_pinned_one_with_its_own_batching() -> None:
    base = {"PATH": "/bin", "FACEFLEET_BATCH_MAX": "99", "FACEFLEET_WORKER_POOL": "solo"}
    batched = stack_env(8, 0.01, base)
    assert batched["PATH"] == "/bin" and batched["FACEFLEET_WORKER_CPUS"] == "1"
    assert batched["FACEFLEET_BATCH_MAX"] == "8" and "FACEFLEET_WORKER_POOL" not in batched
    serving = ServingSettings.from_env(batched)  # the pool follows the batch: valid
    assert (serving.worker_pool, serving.worker_concurrency) == ("threads", 16)
    plain = ServingSettings.from_env(stack_env(1, 0.0, base))
    assert (plain.batch_max, plain.worker_pool, plain.worker_concurrency) == (1, "threads", 2)


def _row(batch: int, ratio: float, p50: float = 0.02, failed: int = 0) -> dict[str, object]:
    return {"batch_max": batch, "ratio": ratio, "failed": failed,
            "overhead_s": {"p50": p50, "p99": 0.05}}


def test_the_best_batched_configuration_is_judged_against_the_bars() -> None:
    judged = verdict([_row(1, 0.88), _row(4, 1.10), _row(8, 1.21)])
    assert judged["best"]["batch_max"] == 8
    assert judged["passed"] == {"throughput": True, "p50": True, "p99": True}
    assert verdict([_row(8, 1.21, p50=0.09)])["passed"]["p50"] is False
    assert verdict([_row(8, 1.30, failed=1)])["passed"]["throughput"] is False
    assert verdict([_row(1, 2.0)]) == {"best": None, "passed": False}


def test_options_are_checked() -> None:
    assert parse_args(["--quick"]).batches == [1, 8]
    for bad in (["--batches", "0"], ["--waits", "9"], ["--batches", "a"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)

"""A CSE546 burst on the embedded stack (moto, gunicorn web tier, controller, runner with
forked real workers) from an empty fleet: it scales out, answers everything correctly,
never exceeds the maximum and returns to zero (``bench/scaling.py`` is the full run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scaling import burst, distinct_images, embedded_stack, enrol
from bench.workload import load_images, load_labels

MAX = 5


@pytest.mark.slow
def test_burst_scales_out_from_zero_and_back(cse546_dir: Path, tmp_path: Path) -> None:
    images = load_images(cse546_dir / "face_images_1000.zip")[:100]
    labels = load_labels(cse546_dir / "labels_1000.csv")
    with embedded_stack(tmp_path / "stack") as stack:
        enrol(stack, distinct_images(images, labels))
        run = burst(stack, "burst-test", MAX, images, labels, 100, 20, progress=False)
    result = run["result"]
    assert result["failed"] == 0, result
    assert result["correct"] == 100
    # 20 clients queue far more than MAX messages before the first tick: straight to MAX
    assert run["peak_instances"] == MAX and run["never_above_max"]
    assert run["queue_start"] == 0 and run["queue_peak"] > 0 and run["queue_end"] == 0
    # back to zero: no instance pending or running at the end
    last = run["samples"][-1]
    assert last["running"] == 0 and last["pending"] == 0
    assert run["zero_running_after_s"] is not None

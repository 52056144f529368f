"""The scaling benchmark's arithmetic on hand-made samples (pure)."""

from __future__ import annotations

from bench.scaling import analyse, checks, distinct_images


def sample(t: float, running: int, queue: int, pending: int = 0) -> dict[str, float]:
    return {"t": t, "pending": pending, "running": running, "stopping": 0, "stopped": 0,
            "visible": queue, "in_flight": 0}


IDLE = sample(-0.01, 0, 0)
RESULT = {"requests": 3, "failed": 0, "correct": 3}


def test_a_good_burst_passes_every_bar() -> None:
    samples = [sample(0.1, 0, 3), sample(0.6, 2, 3, pending=1), sample(1.0, 3, 2),
               sample(2.0, 3, 0), sample(2.5, 0, 0), sample(3.0, 0, 0)]
    figures = analyse(IDLE, samples, [1.2, 1.5, 2.1], 3)
    assert figures["first_result_s"] == 1.2 and figures["last_result_s"] == 2.1
    assert figures["zero_running_after_s"] == 0.4       # first zero sample after 2.1: 2.5
    assert figures["peak_instances"] == 3 and figures["reached_max"]
    assert (figures["queue_start"], figures["queue_peak"], figures["queue_end"]) == (0, 3, 0)
    assert all(checks(figures, RESULT).values())


def test_each_bar_can_fail() -> None:
    # above max, slow first result, never back to zero, queue not drained
    samples = [sample(0.1, 0, 3), sample(1.0, 4, 2), sample(7.0, 1, 1)]
    figures = analyse(sample(-0.01, 0, 1), samples, [6.0, 6.5], 3)
    failed = {k for k, v in checks(figures, {"requests": 3, "failed": 1, "correct": 1}).items()
              if not v}
    assert failed == {"reached_max", "never_above_max", "queue_0_up_0", "no_failures",
                      "all_correct", "first_result", "scale_in"}


def test_a_dip_to_zero_before_the_last_result_does_not_count() -> None:
    samples = [sample(0.1, 1, 1), sample(0.5, 0, 0), sample(1.0, 1, 1), sample(3.0, 0, 0)]
    assert analyse(IDLE, samples, [0.4, 2.0], 1)["zero_running_after_s"] == 1.0


def test_distinct_images_by_content_grouped_by_label() -> None:
    images = [("test_000.jpg", b"a"), ("test_001.jpg", b"b"), ("test_010.jpg", b"a"),
              ("test_004.jpg", b"c")]
    labels = {"test_000": "Paul", "test_001": "Emily", "test_010": "Paul", "test_004": "Emily"}
    assert distinct_images(images, labels) == {
        "Paul": [("test_000.jpg", b"a")],
        "Emily": [("test_001.jpg", b"b"), ("test_004.jpg", b"c")]}

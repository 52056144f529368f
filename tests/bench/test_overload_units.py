"""The overload benchmark's arithmetic on hand-made requests (pure: no stack)."""

from __future__ import annotations

import math
import random

import pytest

from bench.overload import (
    GOODPUT_BAR,
    Shot,
    arrival_times,
    capacity_figures,
    checks,
    classify,
    counts,
    distinct_photos,
    endpoint,
    normal_latency,
    overload_figures,
    per_second,
    recovery_figures,
)


def shot(phase: str, sent: float, latency: float | None, kind: str = "correct",
         status: int | None = 200, retry_after: str | None = None) -> Shot:
    return Shot(phase, sent, latency, status, kind, retry_after)


# ---- classify ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "kind"), [
    (200, "test_003:Bob", "correct"),
    (200, "test_003:Paul", "wrong"),
    (200, "test_004:Bob", "wrong"),                   # another stem's answer
    (200, "Bob", "wrong"),                            # not <stem>:<label>
    (503, "Error 503: The service is overloaded: a new request would wait about 41 s",
     "overloaded"),
    (503, "Error 503: No result within 90 s (FACEFLEET_MAX_WAIT): the request was not "
          "reached before its deadline and is dropped unrun", "expired"),
    (503, "Error 503: The request was not started before its deadline (the service was "
          "overloaded)", "expired"),
    (503, "Error 503: 150 requests are already waiting for results on this web server",
     "busy"),
    (503, "Error 503: The AWS endpoint x is unreachable", "unavailable"),
    (504, "Error 504: No result within the time limit", "timeout"),
    (502, "Error 502: The recognition task failed", "error"),
    (None, "ConnectionError: refused", "error"),
])
def test_classify_reference_protocol(status: int | None, body: str, kind: str) -> None:
    assert classify(status, body, "Bob", "test_003", "reference")[0] == kind


@pytest.mark.parametrize(("status", "body", "kind"), [
    (200, '{"label": "Bob", "faces": []}', "correct"),
    (200, '{"label": "Unknown"}', "wrong"),
    (200, "not json", "wrong"),
    (503, '{"error": "overloaded", "message": "x"}', "overloaded"),
    (503, '{"error": "expired", "message": "x"}', "expired"),
    (503, '{"error": "unavailable", "message": "150 requests are already waiting"}',
     "busy"),
    (503, '{"error": "unavailable", "message": "AWS unreachable"}', "unavailable"),
    (504, '{"error": "timeout"}', "timeout"),
])
def test_classify_api_protocol_by_error_code(status: int, body: str, kind: str) -> None:
    assert classify(status, body, "Bob", "test_003", "api")[0] == kind


def test_endpoint_names_route_and_field() -> None:
    assert endpoint("http://h:1/", "reference") == ("http://h:1/", "inputFile")
    assert endpoint("http://h:1", "api") == ("http://h:1/api/v1/recognitions", "image")


# ---- arrivals ------------------------------------------------------------------------


def test_fixed_arrivals_are_evenly_spaced_inside_the_window() -> None:
    times = arrival_times(4.0, 10.0, 2.0, poisson=False)
    assert times == pytest.approx([10.0, 10.25, 10.5, 10.75, 11.0, 11.25, 11.5, 11.75])


def test_poisson_arrivals_have_the_rate_on_average_and_stay_in_the_window() -> None:
    times = arrival_times(15.0, 5.0, 200.0, rng=random.Random(1))
    assert all(5.0 <= t < 205.0 for t in times) and times == sorted(times)
    assert len(times) / 200.0 == pytest.approx(15.0, rel=0.05)


def test_no_arrivals_without_rate_or_time() -> None:
    assert arrival_times(0.0, 0.0, 10.0) == [] and arrival_times(3.0, 0.0, 0.0) == []


# ---- capacity and normal latency -------------------------------------------------------


def test_normal_latency_is_twice_p95_or_one_second_more_whichever_is_larger() -> None:
    assert normal_latency(0.3) == pytest.approx(1.3)    # small p95: + 1 s
    assert normal_latency(2.0) == pytest.approx(4.0)    # large p95: × 2
    assert normal_latency(1.0) == pytest.approx(2.0)    # where they meet


def test_capacity_counts_correct_answers_arriving_in_the_window() -> None:
    shots = [shot("warmup", 0.0, 9.5),                 # answered at 9.5: before the window
             shot("warmup", 9.0, 2.0),                 # sent in warm-up, answered inside
             *[shot("capacity", 10.0 + i, 1.0) for i in range(9)],   # answered 11..19
             shot("capacity", 19.5, 1.0),              # answered at 20.5: after it
             shot("capacity", 12.0, 1.0, "wrong")]
    figures = capacity_figures(shots, 10.0, 20.0)
    assert figures["rps"] == pytest.approx(10 / 10.0)
    # Latency: correct answers to requests sent in the capacity phase only.
    assert figures["latency_s"]["n"] == 10
    assert figures["normal_latency_s"] == pytest.approx(2.0)
    assert figures["counts"]["wrong"] == 1 and figures["counts"]["correct"] == 10


def test_capacity_without_answers_has_no_normal_latency() -> None:
    figures = capacity_figures([shot("capacity", 1.0, None, "error", None)], 0.0, 5.0)
    assert figures["rps"] == 0.0 and math.isnan(figures["normal_latency_s"])


# ---- overload --------------------------------------------------------------------------


def overload_run() -> list[Shot]:
    # 10 s of overload from t=100 at capacity 2/s: 30 sent; 16 answered correctly
    # inside the window, 12 refused at the door, 1 expired, 1 answered after the window.
    shots = [shot("overload", 100.0 + i / 3, 1.0) for i in range(16)]            # done ≤ 106
    shots += [shot("overload", 106.0 + i / 3, 0.01, "overloaded", 503, "5")
              for i in range(12)]
    shots += [shot("overload", 109.0, 90.0, "expired", 503, "1"),
              shot("overload", 109.5, 1.0)]                                      # done 110.5
    return shots


def test_goodput_is_correct_answers_arriving_during_the_overload() -> None:
    figures = overload_figures(overload_run(), 100.0, 110.0, capacity=2.0)
    assert figures["requests"] == 30 and figures["offered_rps"] == pytest.approx(3.0)
    assert figures["goodput_rps"] == pytest.approx(1.6)
    assert figures["goodput_ratio"] == pytest.approx(0.8)
    assert figures["shed_fraction"] == pytest.approx(12 / 30)
    assert figures["refused_fraction"] == pytest.approx(13 / 30)
    assert figures["refused_without_retry_after"] == 0
    assert figures["refusal_latency_s"]["p50"] == pytest.approx(0.01)


def test_counts_list_every_kind() -> None:
    by_kind = counts([shot("overload", 0, 1.0), shot("overload", 0, None, "not_sent", None)])
    assert by_kind["correct"] == 1 and by_kind["not_sent"] == 1 and by_kind["timeout"] == 0


# ---- recovery --------------------------------------------------------------------------


def test_recovery_time_is_the_first_send_after_the_last_miss() -> None:
    end = 100.0
    shots = [shot("recovery", end + 1, 20.0),              # slow: behind the backlog
             shot("recovery", end + 5, 0.5, "expired", 503, "1"),
             shot("recovery", end + 12, 0.6),               # in time from here on
             shot("recovery", end + 31, 0.7), shot("recovery", end + 40, 0.4),
             shot("overload", end - 1, 50.0)]               # overload: not judged here
    figures = recovery_figures(shots, end, limit=2.0, within=30.0)
    assert figures["requests"] == 5 and figures["missed"] == 2
    assert figures["recovered_after_s"] == pytest.approx(12.0)
    assert figures["after_bar"] == {"requests": 2, "in_time": 2}
    assert figures["requests_s"][0] == {"sent_after_s": 1.0, "latency_s": 20.0,
                                        "kind": "correct"}


def test_no_miss_is_recovered_at_once_and_a_last_miss_is_never() -> None:
    good = [shot("recovery", 101.0, 0.5), shot("recovery", 140.0, 0.5)]
    assert recovery_figures(good, 100.0, 2.0, 30.0)["recovered_after_s"] == 0.0
    bad = [*good, shot("recovery", 150.0, 3.0)]            # correct, but too slow
    figures = recovery_figures(bad, 100.0, 2.0, 30.0)
    assert figures["recovered_after_s"] is None
    assert figures["after_bar"] == {"requests": 2, "in_time": 1}


# ---- bars --------------------------------------------------------------------------------


def test_a_good_run_passes_every_bar() -> None:
    shots = overload_run()
    rec = [shot("recovery", 111.0 + i, 0.5) for i in range(40)]
    overload = overload_figures(shots, 100.0, 110.0, capacity=2.0)
    recovery = recovery_figures(rec, 110.0, 2.0, 30.0)
    assert overload["goodput_ratio"] >= GOODPUT_BAR
    assert checks(overload, recovery, shots + rec) == {
        "goodput": True, "recovery": True, "retry_after": True, "no_wrong": True}


def test_each_bar_can_fail() -> None:
    shots = [*overload_run()[:10], shot("overload", 105.0, 0.01, "overloaded", 503, None),
             shot("overload", 105.0, 1.0, "wrong")]
    overload = overload_figures(shots, 100.0, 110.0, capacity=2.0)    # 10 correct: 0.5x
    recovery = recovery_figures([shot("recovery", 150.0, 9.0)], 110.0, 2.0, 30.0)
    assert checks(overload, recovery, shots) == {
        "goodput": False, "recovery": False, "retry_after": False, "no_wrong": False}


def test_the_recovery_bar_needs_a_request_to_judge() -> None:
    recovery = recovery_figures([shot("recovery", 111.0, 0.5)], 110.0, 2.0, 30.0)
    overload = overload_figures(overload_run(), 100.0, 110.0, capacity=2.0)
    assert not checks(overload, recovery, [])["recovery"]


# ---- the timeline --------------------------------------------------------------------------


def test_per_second_rows_count_sends_answers_and_latency() -> None:
    shots = [shot("overload", 0.2, 0.5),                      # sent 0, answered 0.7
             shot("overload", 0.4, 1.8),                      # sent 0, answered 2.2
             shot("overload", 1.1, 0.05, "overloaded", 503, "3"),
             shot("overload", 1.5, None, "error", None),      # no answer: failed at 1
             shot("overload", 2.5, 9.0, "timeout", 504)]      # answered after the end
    rows = per_second(shots, 0.0, 3.0)
    assert [r["offered"] for r in rows] == [2, 2, 1]
    assert [r["goodput"] for r in rows] == [1, 0, 1]
    assert [r["refused"] for r in rows] == [0, 1, 0]
    assert [r["failed"] for r in rows] == [0, 1, 0]
    assert rows[0]["p50"] == pytest.approx(1.15) and rows[2]["p99"] == pytest.approx(9.0)
    assert math.isnan(per_second([], 0.0, 1.0)[0]["p50"])


def test_distinct_photos_keeps_one_per_content_under_its_label() -> None:
    images = [("test_0.jpg", b"a"), ("test_1.jpg", b"b"), ("test_10.jpg", b"a"),
              ("test_2.jpg", b"c"), ("stray.jpg", b"d")]
    labels = {"test_0": "Paul", "test_1": "Emily", "test_10": "Paul", "test_2": "Emily"}
    assert distinct_photos(images, labels) == {
        "Paul": [("test_0.jpg", b"a")], "Emily": [("test_1.jpg", b"b"), ("test_2.jpg", b"c")]}

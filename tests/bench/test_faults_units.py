"""The fault benchmark's documented client and its accounting, against a small real
HTTP server that answers as the web tier does under faults."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, jsonify

from bench.client import Attempted, classify, count, is_lost, recognise
from bench.faults import FAULTS, Scenario
from tests.webapp.stack import serve_in_thread


def _done(status: int | None, label: str | None = None, retry_after: bool = False,
          ids: tuple[str, ...] = (), sent: float = 0.0, finished: float = 1.0) -> Attempted:
    return Attempted("a.jpg", "Paul", sent, finished, 1, status, retry_after, label,
                     None, list(ids))


def test_final_answers_are_classified() -> None:
    assert classify(_done(200, "Paul")) == "correct"
    assert classify(_done(200, "Unknown")) == "wrong"
    assert classify(_done(503, retry_after=True)) == "retryable"
    assert classify(_done(503)) == "error"  # a 5xx that does not say when to retry
    assert classify(_done(400)) == "error"
    assert classify(_done(None)) == "unanswered"


def test_lost_means_unanswered_and_nothing_stored() -> None:
    stored = {"r1"}
    assert not is_lost(_done(200, "Paul"), stored.__contains__)
    assert not is_lost(_done(None, ids=("r0", "r1")), stored.__contains__)
    assert is_lost(_done(504, ids=("r2",)), stored.__contains__)
    assert is_lost(_done(None), stored.__contains__)
    counts = count([_done(200, "Paul"), _done(None)], [False, True])
    assert counts["correct"] == 1 and counts["unanswered"] == 1 and counts["lost"] == 1


def test_recovery_ends_with_the_last_slow_or_failed_request_after_the_fault() -> None:
    outcomes = [_done(200, "Paul", sent=5, finished=50),   # before the fault: ignored
                _done(200, "Paul", sent=10, finished=11),
                _done(200, "Paul", sent=12, finished=30),  # slow (18 s > 5 s)
                _done(503, retry_after=True, sent=20, finished=25)]
    scenario = Scenario(FAULTS[1], outcomes, [False] * 4, fault_at=10.0, duration=60.0)
    assert scenario.recovery(normal=5.0) == 20.0
    assert Scenario(FAULTS[0], outcomes, [False] * 4, None, 60.0).recovery(5.0) == 0.0


@pytest.fixture
def flaky() -> Iterator[str]:
    """503 + Retry-After, then 504 + Location, then (polled) 202 and 200."""
    app = Flask("flaky")
    posts, polls = itertools.count(), itertools.count()

    @app.post("/api/v1/recognitions")
    def post() -> object:
        if next(posts) == 0:
            return jsonify(error="overloaded"), 503, {"Retry-After": "0"}
        return jsonify(error="timeout", request_id="r1"), 504, {
            "Location": "/api/v1/recognitions/r1"}

    @app.get("/api/v1/recognitions/r1")
    def poll() -> object:
        if next(polls) == 0:
            return jsonify(request_id="r1", status="pending"), 202, {"Retry-After": "0"}
        return jsonify(request_id="r1", label="Paul")

    app.extensions["facefleet"] = type("Closable", (), {"close": lambda self: None})()
    with serve_in_thread(app) as url:
        yield url


def test_the_documented_client_retries_and_polls(flaky: str) -> None:
    outcome = recognise(requests.Session(), flaky, "a.jpg", b"jpeg", "Paul", budget=30)
    assert classify(outcome) == "correct" and outcome.request_ids == ["r1"]
    assert outcome.attempts == 4  # 503, 504, 202, 200


def test_the_budget_bounds_the_client() -> None:
    # Nothing listens there: connection errors until the budget is spent.
    outcome = recognise(requests.Session(), "http://127.0.0.1:9", "a.jpg", b"x", "Paul",
                        budget=1.5)
    assert classify(outcome) == "unanswered" and outcome.attempts >= 2
    assert outcome.latency < 1.5  # it never sleeps past its budget

"""Visibility extension: held messages stay hidden in short steps; a dead worker's come
back within one timeout; what never started is given back at a warm shutdown."""

from __future__ import annotations

import io
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from PIL import Image

from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.client import RecognitionClient
from tasks.visibility import HeldMessage, Ledger, VisibilityKeeper, batches
from tests.tasks.conftest import RunningWorker, photo
from tests.tasks.test_refusals import _huge_jpeg

# ---------------------------------------------------------------- the ledger (pure)


def _held(*names: str, queue: str = "q") -> list[HeldMessage]:
    return [HeldMessage(queue, name, f"task-{name}") for name in names]


def test_ledger_extends_each_message_every_period_until_it_is_gone() -> None:
    ledger = Ledger(every=10.0, tick=1.0)
    assert ledger.sync(_held("a"), now=0.0) == []  # first seen: due one period less a tick
    assert ledger.sync(_held("a", "b"), now=8.9) == []
    assert [m.receipt for m in ledger.sync(_held("a", "b"), now=9.0)] == ["a"]
    ledger.done(["a"], now=9.0)
    assert [m.receipt for m in ledger.sync(_held("a", "b"), now=17.9)] == ["b"]
    ledger.fail(1)  # "b" failed: still due at the next tick
    assert [m.receipt for m in ledger.sync(_held("a", "b"), now=18.9)] == ["b"]
    ledger.done(["b"], now=18.9)
    assert [m.receipt for m in ledger.sync(_held("a", "b"), now=19.0)] == ["a"]
    ledger.gone(["a"])  # acked meanwhile: never extended again
    assert ledger.sync(_held("b"), now=40.0)[0].receipt == "b"
    assert ledger.sync([], now=60.0) == [] and ledger.due_at == {}
    assert (ledger.extended, ledger.failed) == (2, 1)


def test_batches_are_per_queue_and_at_most_ten() -> None:
    held = _held(*map(str, range(23)), queue="q1") + _held("x", queue="q2")
    sizes = [(queue, len(group)) for queue, group in batches(held)]
    assert sizes == [("q1", 10), ("q1", 10), ("q1", 3), ("q2", 1)]


class _FlakySQS:
    """ChangeMessageVisibilityBatch that works, or fails as an unreachable endpoint."""

    def __init__(self) -> None:
        self.down = False

    def change_message_visibility_batch(self, QueueUrl: str,
                                        Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.down:
            raise EndpointConnectionError(endpoint_url=QueueUrl)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_counts_are_reported_at_once_on_failure_and_regularly_while_nonzero(
        caplog: pytest.LogCaptureFixture) -> None:
    """The keeper's reports (the ``worker-visibility`` events behind the dashboard and
    the Prometheus counters): nothing before anything was counted, failures at once,
    and the counts again every report_every s, so a listener that started late learns
    them; the failure is also said in the log, once per outage."""
    clock = [0.0]
    sqs = _FlakySQS()
    reports: list[dict[str, Any]] = []
    keeper = VisibilityKeeper(sqs, timeout=30, every=10.0,  # type: ignore[arg-type]
                              held=lambda: _held("a"), report=lambda c: reports.append(dict(c)),
                              report_every=60.0, clock=lambda: clock[0])

    def tick_at(now: float) -> None:
        clock[0] = now
        keeper.tick()

    tick_at(0.0)  # first seen: due at 9 s
    assert reports == []
    tick_at(9.0)  # extended: the first count goes out at once
    assert reports == [{"extended": 1, "failed": 0, "held": 1}]
    tick_at(19.0)
    assert len(reports) == 1  # an extension alone waits for report_every
    sqs.down = True
    with caplog.at_level(logging.WARNING, logger="facefleet.visibility"):
        tick_at(29.0)
        assert reports[-1] == {"extended": 2, "failed": 1, "held": 1}  # at once
        tick_at(30.0)  # still due (it failed): tried again each tick, reported each time
        assert reports[-1]["failed"] == 2 and len(reports) == 3
    said = [r.getMessage() for r in caplog.records if "cannot extend" in r.getMessage()]
    assert len(said) == 1, "said once per outage, not per tick"
    assert "cannot extend the visibility of 1 held message" in said[0]
    sqs.down = False
    tick_at(31.0)  # works again: extended, the failures unchanged: no event yet
    assert len(reports) == 3
    tick_at(90.0)  # 60 s after the last report: the counts again, changed or not
    assert reports[-1] == {"extended": 4, "failed": 2, "held": 1}
    tick_at(91.0)
    assert len(reports) == 4


# ---------------------------------------------------------------- real workers

#: A queue timeout far shorter than the slow task below, extended four times as often.
TIMEOUT = 2
SHORT = {"FACEFLEET_VISIBILITY_TIMEOUT": str(TIMEOUT),
         "FACEFLEET_VISIBILITY_EXTEND_EVERY": str(TIMEOUT / 4)}


def _short_queue(settings: Settings) -> Settings:
    settings = replace(settings, max_receives=3)
    provision(settings, ServingSettings(visibility_timeout=TIMEOUT,
                                        visibility_extend_every=TIMEOUT / 4),
              upload_weights=False)
    return settings


def _crowd(source: bytes, side: int) -> bytes:
    """``side`` x ``side`` copies of a portrait on one canvas: a slow task (every face
    is detected and embedded)."""
    face = Image.open(io.BytesIO(source)).convert("RGB")
    canvas = Image.new("RGB", (face.width * side, face.height * side))
    for row in range(side):
        for col in range(side):
            canvas.paste(face, (col * face.width, row * face.height))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85)
    return out.getvalue()


def _received(workers: list[RunningWorker], request_id: str) -> int:
    line = f"Task facefleet.recognize[{request_id}] received"
    return sum(w.log().count(line) for w in workers)


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_task_longer_than_the_timeout_runs_once(settings: Settings, worker_factory,
                                                  celebrities) -> None:
    settings = _short_queue(settings)
    workers = [worker_factory(settings=settings, **SHORT) for _ in range(2)]
    client = RecognitionClient(settings)
    try:
        # 144 faces: each is embedded, so the task outlasts twice the timeout even on a
        # quiet machine (64 faces took 3.9 s once detection ran on a 960 px copy).
        slow = _crowd(photo(celebrities, "val", "madonna")[0], 12)
        started = time.monotonic()
        request_id = client.submit(slow, "slow.jpg")
        result = client.wait(request_id, timeout=120)
        took = time.monotonic() - started
        assert result["request_id"] == request_id
        assert took > 2 * TIMEOUT, f"the task must outlast the timeout to prove it ({took:.1f})"
        # Without extension the idle worker would have received it again after 3 s.
        assert _received(workers, request_id) == 1
    finally:
        client.close()


def test_a_killed_workers_task_completes_elsewhere_within_the_timeout(
        settings: Settings, worker_factory, celebrities) -> None:
    settings = _short_queue(settings)
    workers = [worker_factory(settings=settings, **SHORT) for _ in range(2)]
    client = RecognitionClient(settings)
    try:
        request_id = client.submit(_crowd(photo(celebrities, "val", "madonna")[0], 8),
                                   "held.jpg")
        line = f"request {request_id}: recognizing"
        assert _wait_for(lambda: any(line in w.log() for w in workers), 60)
        held = next(w for w in workers if line in w.log())
        other = next(w for w in workers if w is not held)
        # The whole worker at once (main process and pool), as a terminated instance.
        os.killpg(held.proc.pid, signal.SIGKILL)
        held.proc.wait(10)
        killed = time.monotonic()
        # Back in the queue within the timeout (it was last extended < 0.5 s ago), and
        # taken by the other worker's long poll: the bar is timeout + 5 s.
        assert _wait_for(lambda: line in other.log(), TIMEOUT + 5), \
            f"not picked up again within {TIMEOUT + 5} s of the kill"
        picked_up = time.monotonic() - killed
        result = client.wait(request_id, timeout=60)
        assert result["request_id"] == request_id
        assert picked_up >= TIMEOUT - 1, "not before the timeout: the kill was real"
    finally:
        client.close()


def test_warm_shutdown_gives_back_what_never_started(settings: Settings, worker_factory,
                                                     celebrities) -> None:
    # A long queue timeout: a prefetched message that is not given back stays hidden
    # for 30 s, far past the bound below.
    provision(settings, ServingSettings(), upload_weights=False)
    first = worker_factory(settings=settings, extra_args=("--prefetch-multiplier=2",))
    client = RecognitionClient(settings)
    try:
        slow_id = client.submit(_huge_jpeg(photo(celebrities, "val", "madonna")[0], 24),
                                "slow.jpg")
        assert _wait_for(lambda: f"request {slow_id}: recognizing" in first.log(), 60)
        waiting_id = client.submit(*photo(celebrities, "val", "madonna", 1))
        assert _wait_for(
            lambda: f"Task facefleet.recognize[{waiting_id}] received" in first.log(), 30), \
            "the second task is prefetched while the first runs"
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(60)
        assert client.wait(slow_id, timeout=5)["request_id"] == slow_id, \
            "the running task finished before the warm shutdown ended"
        assert "released 1 prefetched message" in first.log()
        assert f"request {waiting_id}: recognizing" not in first.log()
        # Visible at once, not hidden for the rest of the 30 s timeout.
        depth = client.queue_depth()
        assert (depth.visible, depth.in_flight) == (1, 0)
        second = worker_factory(settings=settings)
        assert client.wait(waiting_id, timeout=60)["request_id"] == waiting_id
        assert f"request {waiting_id}: recognizing" in second.log()
    finally:
        client.close()

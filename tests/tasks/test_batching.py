"""The batcher's rules (pure threads, no model), then a real batching worker on SQS."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from config.serving import ServingSettings
from config.settings import Settings
from tasks.batching import Batcher, Outcome
from tasks.client import RecognitionClient
from tasks.errors import TaskFailed
from tests.tasks.conftest import RunningWorker, photo
from tests.tasks.test_visibility import SHORT, _crowd, _short_queue, _wait_for

#: Long enough that a test passing through a wait would be obvious, never reached.
LONG_WAIT_S = 30.0


class Recorder:
    """A batch function that records each batch and fails on ``b"bad"`` batches."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.threads: set[str] = set()

    def __call__(self, datas: Sequence[bytes]) -> list[str | Exception]:
        self.batches.append(list(datas))
        self.threads.add(threading.current_thread().name)
        if b"crash" in datas:
            raise RuntimeError("the model fell over")
        return [ValueError("bad image") if d == b"bad" else d.decode().upper()
                for d in datas]


def run_tickets(batcher: Batcher[str], datas: Sequence[bytes]) -> list[Outcome[str]]:
    """Every ticket taken before any image is submitted (tasks started together)."""
    taken = threading.Barrier(len(datas))

    def one(data: bytes) -> Outcome[str]:
        with batcher.ticket() as ticket:
            taken.wait(10)
            return ticket.recognize(data)

    with ThreadPoolExecutor(len(datas)) as pool:
        return list(pool.map(one, datas))


def test_a_lone_request_runs_at_once() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=8, max_wait_s=LONG_WAIT_S)
    with batcher.ticket() as ticket:
        outcome = ticket.recognize(b"a")
    assert outcome.value == "A" and outcome.batch == 1
    assert outcome.waited < LONG_WAIT_S / 2  # nobody else held a ticket: no wait
    assert run.batches == [[b"a"]]


def test_tasks_held_together_are_recognised_together_up_to_the_maximum() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=4, max_wait_s=LONG_WAIT_S)
    outcomes = run_tickets(batcher, [f"img{i}".encode() for i in range(6)])
    assert [o.value for o in outcomes] == [f"IMG{i}" for i in range(6)]
    assert sorted(len(b) for b in run.batches) == [2, 4]
    assert sorted(o.batch for o in outcomes) == [2, 2, 4, 4, 4, 4]
    assert run.threads == {"batcher-0"}


def test_a_bad_image_fails_alone_and_a_crashing_batch_is_rerun_one_by_one() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=4, max_wait_s=LONG_WAIT_S)
    outcomes = run_tickets(batcher, [b"a", b"bad", b"c"])
    assert outcomes[0].value == "A" and outcomes[2].value == "C"
    assert isinstance(outcomes[1].value, ValueError)
    assert len(run.batches) == 1  # its own failure, in its own slot of the batch

    run.batches.clear()
    outcomes = run_tickets(batcher, [b"x", b"crash", b"y"])
    assert outcomes[0].value == "X" and outcomes[2].value == "Y"
    assert isinstance(outcomes[1].value, RuntimeError)
    assert sorted(map(len, run.batches)) == [1, 1, 1, 3]  # once together, then alone


def test_a_task_that_fails_before_its_image_is_not_waited_for() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=4, max_wait_s=LONG_WAIT_S)
    holding = threading.Event()
    release = threading.Event()

    def failing_fetch() -> None:
        with pytest.raises(OSError), batcher.ticket():
            holding.set()
            release.wait(10)
            raise OSError("the image vanished")

    other = threading.Thread(target=failing_fetch)
    other.start()
    assert holding.wait(10)
    result: list[Outcome[str]] = []
    submitter = threading.Thread(
        target=lambda: result.append(_recognize(batcher, b"a")))
    submitter.start()
    release.set()  # the other task gives up: the waiting image must go now
    submitter.join(LONG_WAIT_S / 2)
    other.join(10)
    assert result and result[0].value == "A" and result[0].batch == 1


def _recognize(batcher: Batcher[str], data: bytes) -> Outcome[str]:
    with batcher.ticket() as ticket:
        return ticket.recognize(data)


def test_batch_of_one_runs_in_the_calling_thread() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=1, max_wait_s=LONG_WAIT_S)
    outcomes = run_tickets(batcher, [b"a", b"b", b"bad"])
    assert [o.batch for o in outcomes] == [1, 1, 1]
    assert isinstance(outcomes[2].value, ValueError)
    assert not any(name.startswith("batcher-") for name in run.threads)


def test_settings_turn_on_the_threads_pool_and_refuse_a_pool_that_cannot_batch() -> None:
    serving = ServingSettings.from_env({"FACEFLEET_BATCH_MAX": "8"})
    assert (serving.worker_pool, serving.worker_concurrency) == ("threads", 16)
    with pytest.raises(Exception, match="FACEFLEET_WORKER_POOL=threads"):
        ServingSettings.from_env({"FACEFLEET_BATCH_MAX": "8", "FACEFLEET_WORKER_POOL": "solo"})
    with pytest.raises(Exception, match="at least 8"):
        ServingSettings.from_env({"FACEFLEET_BATCH_MAX": "8",
                                  "FACEFLEET_WORKER_CONCURRENCY": "4"})


# ---- a real worker: threads pool, batches of up to 4, on moto's SQS and S3 --------------

def test_a_batching_worker_gives_each_task_its_own_result(
        provisioned: Settings, worker_factory: Callable[..., RunningWorker],
        celebrities: Any) -> None:
    batching = {"pool": "threads", "concurrency": 8, "FACEFLEET_BATCH_MAX": "4",
                "FACEFLEET_BATCH_WAIT": "0.5"}
    client = RecognitionClient(provisioned)
    try:
        enroller = worker_factory(**batching)
        for name in ("madonna", "elton_john"):
            client.enroll(name, [photo(celebrities, "train", name, i) for i in range(3)],
                          timeout=60)
        enroller.stop()
        # Queued while no worker runs, so the next one receives them together.
        people = ["madonna", "elton_john", "madonna", "elton_john", "ben_afflek",
                  "madonna", "elton_john"]
        ids = [client.submit(*photo(celebrities, "val", name, i % 2))
               for i, name in enumerate(people)]
        bad = client.submit(b"this is text, not a JPEG", "notes.jpg")
        worker_factory(**batching)
        results = [client.wait(request_id, timeout=90) for request_id in ids]
        with pytest.raises(TaskFailed) as failure:
            client.wait(bad, timeout=90)
    finally:
        client.close()
    assert failure.value.code == "not_an_image"  # failed alone: the others answered
    assert [r["request_id"] for r in results] == ids
    expected = [name if name != "ben_afflek" else "Unknown" for name in people]
    assert [r["label"] for r in results] == expected
    assert max(r["batch"] for r in results) > 1, [r["batch"] for r in results]
    assert all(r["batch"] <= 4 and r["timings"]["batch_wait"] >= 0 for r in results)


def test_a_batching_worker_killed_mid_batch_loses_nothing(
        settings: Settings, worker_factory: Callable[..., RunningWorker],
        celebrities: Any) -> None:
    settings = _short_queue(settings)
    client = RecognitionClient(settings)
    try:
        slow = _crowd(photo(celebrities, "val", "madonna")[0], 6)  # seconds each
        ids = [client.submit(slow, f"crowd{i}.jpg") for i in range(4)]
        first = worker_factory(settings=settings, pool="threads", concurrency=8,
                               FACEFLEET_BATCH_MAX="4", FACEFLEET_BATCH_WAIT="1", **SHORT)
        lines = [f"request {request_id}: recognizing" for request_id in ids]
        assert _wait_for(lambda: all(line in first.log() for line in lines), 60)
        time.sleep(0.5)  # their images fetched: one batch of four under way
        # The whole worker at once, as a terminated instance: acks_late, nothing acked.
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        second = worker_factory(settings=settings, **SHORT)
        results = [client.wait(request_id, timeout=120) for request_id in ids]
    finally:
        client.close()
    assert [r["request_id"] for r in results] == ids
    assert all(line in second.log() for line in lines), "each ran again on the second"
    assert all(r["faces"] for r in results)

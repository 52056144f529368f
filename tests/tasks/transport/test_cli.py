"""Celery's monitoring CLI and Flower against two real workers over SQS+SNS (moto).

The tests run in order on one module-scoped fleet: the shutdown test stops w2, and
the last test stops w1 and checks that nothing was left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from deploy.embedded_aws import free_port
from tasks.transport.registry import close_all_keepers
from tests.tasks.transport.conftest import APP, HOST, REPO, Fleet, stop, wait_for

W1, W2 = f"w1@{HOST}", f"w2@{HOST}"


def inspect_json(fleet: Fleet, *args: str) -> dict[str, Any]:
    result = fleet.celery("inspect", *args, "--json", "--timeout", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", ["ping", "active", "stats", "registered", "active_queues"])
def test_inspect_replies_from_both_workers(fleet: Fleet, command: str) -> None:
    replies = inspect_json(fleet, command)
    assert set(replies) == {W1, W2}
    if command == "ping":
        assert all(reply == {"ok": "pong"} for reply in replies.values())
    elif command == "registered":
        assert all("mon.add" in reply for reply in replies.values())
    elif command == "stats":
        assert all(reply["pool"]["max-concurrency"] == 1 for reply in replies.values())
    elif command == "active_queues":
        assert {q["name"] for q in replies[W1]} == {fleet.queues[0], fleet.queues[1]}
        assert {q["name"] for q in replies[W2]} == {fleet.queues[0], fleet.queues[2]}
    else:
        assert replies == {W1: [], W2: []}


def test_inspect_active_shows_a_running_task(fleet: Fleet) -> None:
    fleet.app.send_task("mon.sleep", (4,), queue=fleet.queues[1])
    active = wait_for(lambda: inspect_json(fleet, "active", "-d", W1)[W1], 20,
                      "the sleeping task to show up as active")
    assert active[0]["name"] == "mon.sleep"
    assert active[0]["hostname"] == W1


def test_status_counts_both_nodes(fleet: Fleet) -> None:
    result = fleet.celery("status")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 nodes online." in result.stdout
    assert W1 in result.stdout and W2 in result.stdout


def pool_processes(fleet: Fleet, worker: str) -> int:
    return len(inspect_json(fleet, "stats", "-d", worker)[worker]["pool"]["processes"])


def test_pool_grow_and_shrink(fleet: Fleet) -> None:
    assert pool_processes(fleet, W1) == 1
    grown = fleet.celery("control", "pool_grow", "1", "-d", W1)
    assert "pool will grow" in grown.stdout, grown.stdout + grown.stderr[-2000:]
    wait_for(lambda: pool_processes(fleet, W1) == 2, 30, "w1's pool to grow to 2")
    assert pool_processes(fleet, W2) == 1
    shrunk = fleet.celery("control", "pool_shrink", "1", "-d", W1)
    assert "pool will shrink" in shrunk.stdout, shrunk.stdout + shrunk.stderr[-2000:]
    wait_for(lambda: pool_processes(fleet, W1) == 1, 30, "w1's pool to shrink to 1")


def test_add_consumer_reaches_only_the_named_worker(fleet: Fleet) -> None:
    extra = fleet.queues[3]
    result = fleet.celery("control", "add_consumer", extra, "-d", W2)
    assert f"add consumer {extra}" in result.stdout, result.stdout + result.stderr[-2000:]
    queues = inspect_json(fleet, "active_queues")
    assert extra in {q["name"] for q in queues[W2]}
    assert extra not in {q["name"] for q in queues[W1]}
    # The new consumer really consumes: a task sent there is taken off the queue.
    fleet.app.send_task("mon.add", (2, 2), queue=extra)
    sqs = fleet.client("sqs")
    url = sqs.get_queue_url(QueueName=extra)["QueueUrl"]

    def drained() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return attrs["ApproximateNumberOfMessages"] == "0" and \
            attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    wait_for(drained, 30, "w2 to consume the task sent to the added queue")


def test_events_dump_shows_tasks_of_both_workers(fleet: Fleet) -> None:
    dump = fleet.spawn("events", "--dump", log="events.log")
    try:
        # Heartbeats from both workers prove the listener's SNS subscription is live.
        wait_for(lambda: W1 in fleet.log("events") and W2 in fleet.log("events"), 60,
                 "heartbeats from both workers in `celery events --dump`")
        fleet.app.send_task("mon.add", (1, 2), queue=fleet.queues[1])
        fleet.app.send_task("mon.add", (3, 4), queue=fleet.queues[2])
        def succeeded() -> list[str] | None:
            lines = [line for line in fleet.log("events").splitlines()
                     if "task succeeded: mon.add" in line]
            return lines if len(lines) >= 2 else None

        lines = wait_for(succeeded, 30, "task-succeeded events from both workers")
        assert any(line.startswith(W1) and "result=3" in line for line in lines)
        assert any(line.startswith(W2) and "result=7" in line for line in lines)
    finally:
        stop(dump, signal.SIGINT)
    # Its listener queue and subscription went with it (the workers' stay).
    wait_for(lambda: len(fleet.monitor_queues("ls")) == 2, 10,
             "the event listener's queue to be deleted")
    assert all("pidbox" in name for name in fleet.monitor_queues("ls"))
    assert fleet.subscribed_queues() == fleet.monitor_queues("ls")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def test_flower_workers_api(fleet: Fleet) -> None:
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", APP, "flower", f"--port={port}",
         "--address=127.0.0.1", "--inspect_timeout=3000"],
        cwd=REPO, env=fleet.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def workers() -> dict[str, Any] | None:
        try:
            found = get_json(f"{base}/api/workers?refresh=1")
        except (urllib.error.URLError, OSError):
            return None
        return found if {W1, W2} <= set(found) else None

    try:
        found = wait_for(workers, 90, "Flower to list both workers", every=1)
        assert {"stats", "registered", "active_queues"} <= set(found[W1])
        assert "mon.add" in found[W2]["registered"]
        lengths = get_json(f"{base}/api/queues/length")["active_queues"]
        assert {row["name"] for row in lengths} >= {fleet.queues[0], fleet.queues[1]}
        with urllib.request.urlopen(f"{base}/broker", timeout=30) as page:
            assert page.status == 200
    finally:
        stop(flower, signal.SIGINT)


def test_shutdown_reaches_only_the_named_worker(fleet: Fleet) -> None:
    result = fleet.celery("control", "shutdown", "-d", W2)
    # A worker exits without replying to `shutdown` (on every broker), so the CLI says
    # "No nodes replied" (status 69); what counts is who stopped.
    assert result.returncode in (0, 69), result.stderr[-2000:]
    fleet.workers["w2"].wait(60)
    assert fleet.workers["w1"].poll() is None
    assert fleet.ping(timeout=2) == {W1}
    # w2's pidbox queue and its subscription were removed on the way out.
    queues = fleet.monitor_queues("ls")
    assert len(queues) == 1 and "w1_mon" in queues[0]
    assert fleet.subscribed_queues() == queues


def test_nothing_left_after_the_fleet_stops(fleet: Fleet) -> None:
    stop(fleet.workers["w1"])
    assert fleet.workers["w1"].returncode == 0
    assert fleet.monitor_queues("ls") == []
    # This test process's own pooled reply queues go at exit; do that now.
    assert fleet.monitor_queues("rp"), "the in-process pings should have pooled reply queues"
    close_all_keepers()
    assert fleet.monitor_queues() == []
    assert fleet.subscribed_queues() == []

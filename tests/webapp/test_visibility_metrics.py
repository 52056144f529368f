"""The workers' visibility-extension counts on the web tier's ``/metrics``.

A worker that cannot extend the SQS visibility of what it holds (the endpoint down)
says so in its log and in a metric: its ``worker-visibility`` events reach the web
process's event listener, and ``/metrics`` exports them as
``facefleet_worker_visibility_{extensions,failures}_total{worker}``. First the
collector alone, fed events shaped by Celery itself; then the real thing: a Celery
worker whose AWS calls go through the fault proxy, gunicorn, moto's server, and
``ChangeMessageVisibilityBatch`` failing halfway.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from celery.events import Event
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.aws import QueueDepth
from config.serving import ServingSettings
from config.settings import Settings
from deploy.embedded_aws import stop_process
from deploy.faultproxy import FaultControl, FaultProxy
from deploy.provision import provision
from recognition.weights.sdist import celebrity_dataset
from tasks.client import RecognitionClient
from tests.tasks.conftest import RunningWorker, start_worker
from tests.tasks.transport.conftest import wait_for
from tests.webapp.stack import start_gunicorn
from webapp.dashboard.monitor import RECEIVE_WAIT_S, EventsMonitor
from webapp.dashboard.stats import EventAggregate
from webapp.metrics import WebMetrics, WorkerVisibilityCollector

EXTENSIONS = "facefleet_worker_visibility_extensions_total"
FAILURES = "facefleet_worker_visibility_failures_total"
LISTENER_UP = "facefleet_events_listener_up"

# ---------------------------------------------------------------- the collector


#: Celery's own event receiver (no connection: it only reads message bodies here).
RECEIVER = Celery(set_as_current=False).events.Receiver(None)


def received(kind: str, hostname: str, **fields: Any) -> dict[str, Any]:
    """An event as the dashboard's listener gets it: built as a worker's Dispatcher
    builds it (celery.events.Event), read as its EventReceiver reads it (clock
    adjustment, ``local_received``)."""
    body = Event(kind, hostname=hostname, utcoffset=0, pid=4242, clock=1, **fields)
    _, event = RECEIVER.event_from_message(body)
    return dict(event)


def no_queue() -> QueueDepth:
    raise RuntimeError("no queue in this test")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_collector_exports_the_counts_of_workers_that_reported() -> None:
    aggregate = EventAggregate()
    monitor = EventsMonitor(lambda: None, aggregate)  # never started: state "off"
    for event in (
            received("worker-heartbeat", "quiet@h", freq=2.0, active=0, processed=3),
            received("worker-heartbeat", "busy@h", freq=2.0, active=1, processed=9),
            received("worker-visibility", "busy@h", extended=12, failed=0, held=1),
            received("task-received", "busy@h", uuid="t1", name="facefleet.recognize"),
            received("worker-visibility", "busy@h", extended=15, failed=3, held=2),
            received("worker-visibility", "down@h", extended=0, failed=7, held=1)):
        monitor.aggregate.add(event)  # what the listener thread does with each event
    metrics = WebMetrics(no_queue)
    metrics.watch_workers(monitor)
    text = generate_latest(metrics.registry).decode()
    got = samples(text)

    assert got[(EXTENSIONS, (("worker", "busy@h"),))] == 15  # the latest cumulative count
    assert got[(FAILURES, (("worker", "busy@h"),))] == 3
    assert got[(EXTENSIONS, (("worker", "down@h"),))] == 0
    assert got[(FAILURES, (("worker", "down@h"),))] == 7
    assert not any(("worker", "quiet@h") in labels for _, labels in got), \
        "a worker that never reported has no series (not a made-up 0)"
    assert got[(LISTENER_UP, ())] == 0  # not listening: an empty series means nothing
    assert f"# TYPE {EXTENSIONS} counter" in text and f"# TYPE {FAILURES} counter" in text
    assert got[("facefleet_queue_depth_up", ())] == 0  # the other collectors still run


def test_collector_is_silent_when_dashboard_events_are_off() -> None:
    monitor = EventsMonitor(lambda: None, EventAggregate(), enabled=False)
    assert list(WorkerVisibilityCollector(monitor).collect()) == []


# ---------------------------------------------------------------- the real thing

#: Extension every 0.5 s (first try ~0.4 s after a message is seen), and a queue timeout
#: long enough that a failing extension does not let the held message run twice.
TIMEOUT = 20
EVERY = 0.5
#: The web tier's idle stop: shorter than the test, so only the scrapes keep its
#: listener alive.
IDLE_STOP = 5
#: The worker's S3 reads delayed (a GET of the image, a HEAD of the gallery), so that a
#: task holds its message for a few extension periods on any machine.
SLOW_S3 = {"kind": "latency", "p": 1, "service": "s3", "operations": ["GetObject"],
           "delay_ms": 1500}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = requests.get(url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return samples(r.text)


def counts(url: str, worker: str) -> tuple[float, float] | None:
    """(extensions, failures) of ``worker`` on /metrics, or None before it reported."""
    got = scrape(url)
    labels = (("worker", worker),)
    if (EXTENSIONS, labels) not in got:
        return None
    return got[(EXTENSIONS, labels)], got[(FAILURES, labels)]


def hostname(worker: RunningWorker) -> str:
    """The Celery node name ``worker`` was started with (``-n name@%h``)."""
    args = list(worker.proc.args)  # type: ignore[arg-type]
    return str(args[args.index("-n") + 1]).replace("%h", socket.gethostname())


@contextmanager
def prometheus(url: str, every: float = 1.0) -> Iterator[None]:
    """Scrape ``url``'s /metrics every ``every`` s in a thread while the block runs, as
    Prometheus would; the test's own waits (on tasks, on values) never leave a gap."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            with contextlib.suppress(requests.RequestException):
                requests.get(url + "/metrics", timeout=30).close()

    thread = threading.Thread(target=run, name="prometheus", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(35)


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, seed=5) as running:
        yield running


def test_metrics_show_a_worker_failing_to_extend(settings: Settings, proxy: FaultProxy,
                                                 tmp_path: Path) -> None:
    provision(settings, ServingSettings(visibility_timeout=TIMEOUT,
                                        visibility_extend_every=EVERY),
              upload_weights=False)
    # The worker talks to moto through the proxy; the web tier straight to moto.
    worker = start_worker(replace(settings, aws_endpoint=proxy.url), tmp_path,
                          FACEFLEET_VISIBILITY_TIMEOUT=str(TIMEOUT),
                          FACEFLEET_VISIBILITY_EXTEND_EVERY=str(EVERY))
    web = None
    client = RecognitionClient(settings)
    scraper = contextlib.ExitStack()
    try:
        web, url = start_gunicorn(settings, tmp_path / "gunicorn.log",
                                  {"FACEFLEET_DASHBOARD_IDLE_STOP": str(IDLE_STOP)})
        name = hostname(worker)
        scraper.enter_context(prometheus(url))
        # Nothing but scrapes from here: the first starts the listener.
        wait_for(lambda: scrape(url).get((LISTENER_UP, ())) == 1, 90,
                 "the event listener started by /metrics scrapes")
        listening = requests.get(url + "/api/v1/dashboard", timeout=30).json()["monitor"]
        assert counts(url, name) is None  # it has extended nothing yet

        # Every task holds its message for seconds, however fast the worker computes:
        # its S3 reads (the image, the gallery's stamp) are delayed at the proxy.
        control = FaultControl(proxy.url)
        control.set([SLOW_S3])
        photo = sorted((celebrity_dataset(settings.cache_dir) / "val" / "madonna").iterdir())[0]
        first = client.submit(photo.read_bytes(), "held.jpg")
        extended, failed = wait_for(lambda: (c := counts(url, name)) and c[0] > 0 and c, 60,
                                    "the worker's extensions on /metrics")
        assert failed == 0

        # The endpoint refuses every extension from now on (a 500 each time).
        control.set([SLOW_S3, {"kind": "error", "p": 1, "service": "sqs",
                               "operations": ["ChangeMessageVisibility"]}])
        client.wait(first, timeout=60)
        second = client.submit(photo.read_bytes(), "refused.jpg")
        extended_then, failed = wait_for(
            lambda: (c := counts(url, name)) and c[1] > 0 and c, 60,
            "the worker's failed extensions on /metrics")
        assert extended_then >= extended  # a counter: it never goes down
        assert "cannot extend the visibility" in worker.log()  # and said in its log
        assert proxy.state.to_json()["counters"]["sqs"]["errored"] >= failed
        client.wait(second, timeout=60)

        # The same listener all along, kept by scrapes alone past its idle stop (checked
        # before each long poll of at most RECEIVE_WAIT_S): scrape on until that is sure.
        while time.time() - listening["listening_since"] < IDLE_STOP + RECEIVE_WAIT_S + 1:
            assert scrape(url)[(LISTENER_UP, ())] == 1
            time.sleep(0.5)
        now = requests.get(url + "/api/v1/dashboard", timeout=30).json()["monitor"]
        assert (now["node_id"], now["listening_since"], now["state"]) == \
            (listening["node_id"], listening["listening_since"], "listening")
    finally:
        scraper.close()
        client.close()
        worker.stop()
        if web is not None:
            stop_process(web, timeout=40)

"""The dashboard end to end: real HTTP to gunicorn (and the app in-process), moto's
server, two real Celery workers running real ``recognize`` tasks, Celery events over
SQS+SNS, and the page in Debian's headless chromium (screenshot in results/)."""

from __future__ import annotations

import io
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from PIL import Image
from playwright.sync_api import Browser

from autoscaler.loop import Controller
from autoscaler.memory import MemoryFleet
from autoscaler.state import StatePublisher
from config import aws
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth
from config.dashboard import DashboardSettings
from config.settings import Settings
from deploy.embedded_aws import stop_process
from tasks.transport.naming import sanitize
from tests.tasks.transport.conftest import wait_for
from tests.webapp.fixtures import RESULTS
from tests.webapp.stack import WebStack, start_gunicorn
from webapp import create_app

WORKERS = {f"web{n}@{socket.gethostname()}" for n in range(2)}


def blank_png() -> bytes:
    """A picture with no face: a real (short) recognize task ending in NoFace."""
    buf = io.BytesIO()
    Image.new("RGB", (96, 80), (120, 180, 240)).save(buf, "PNG")
    return buf.getvalue()


def dashboard(url: str) -> dict[str, Any]:
    r = requests.get(url + "/api/v1/dashboard", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def online(body: dict[str, Any]) -> set[str]:
    return {w["hostname"] for w in body["events"]["workers"] if w["state"] == "online"}


def recognize(url: str, count: int) -> list[str]:
    """``count`` concurrent recognitions through the API; their request ids."""
    image = blank_png()

    def one(i: int) -> str:
        r = requests.post(url + "/api/v1/recognitions",
                          files={"image": (f"sky{i}.png", image)}, timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["request_id"])

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def listing(url: str, ids: list[str]) -> dict[str, Any] | None:
    """The dashboard's JSON once its recent tasks include every one of ``ids``."""
    body = dashboard(url)
    seen = {t["uuid"] for t in body["events"]["recent"]}
    return body if seen >= set(ids) else None


def run_until_both_workers_served(url: str) -> list[str]:
    """Batches of concurrent tasks until the dashboard saw each worker finish one."""
    ids: list[str] = []
    served: set[str] = set()
    for _ in range(5):
        ids += recognize(url, 8)
        body = wait_for(partial(listing, url, list(ids)), 30,
                        "the dashboard to list every finished task")
        served = {t["hostname"] for t in body["events"]["recent"] if t["uuid"] in ids}
        if served >= WORKERS:
            return ids
    raise AssertionError(f"only {sorted(served)} ran tasks in 5 batches")


def listener_queues(settings: Settings, node_id: str) -> list[str]:
    """Names of the SQS listener queues of the dashboard listener ``node_id``."""
    sqs = aws.client(settings, "sqs")
    prefix = f"ffmon-ls-celeryev-{sanitize(node_id)}"
    return [u.rsplit("/", 1)[-1] for u in
            sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])]


def subscribed(settings: Settings, node_id: str) -> list[str]:
    """SNS subscriptions whose endpoint is a listener queue of ``node_id``."""
    sns = aws.client(settings, "sns")
    token = sanitize(node_id)
    found = []
    for topic in sns.list_topics().get("Topics", []):
        subs = sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
        found += [s["Endpoint"] for s in subs if token in s["Endpoint"]]
    return found


def publish_controller_state(settings: Settings) -> None:
    """A real controller (the autoscaler's policy and planner on its in-memory fleet)
    publishing through its own StatePublisher into ``settings``' output bucket: idle, a
    backlog that scales out, the first instances running, more booting."""
    clock = [time.time() - 20]
    fleet = MemoryFleet(15, clock=lambda: clock[0], instant=False)
    loads = iter([QueueDepth(0, 0), QueueDepth(6, 2), QueueDepth(6, 2), QueueDepth(40, 4),
                  QueueDepth(40, 4)])
    publisher = StatePublisher(aws.client(settings, "s3"),
                               settings.output_bucket, settings.fleet_state_key)
    controller = Controller(AutoscalerSettings(max_instances=15, tick_s=1.0), fleet,
                            lambda: next(loads), publisher, clock=lambda: clock[0])
    for tick in range(5):
        controller.tick()
        if tick == 2:
            fleet.settle()  # the first instances finished booting
        clock[0] += 5


@pytest.fixture
def local_app(web_stack: WebStack) -> Iterator[Callable[..., Flask]]:
    """The web app in-process on the stack's queue, with its own output bucket."""
    settings = replace(web_stack.settings, output_bucket=f"dash-out-{uuid.uuid4().hex[:8]}")
    aws.client(settings, "s3").create_bucket(Bucket=settings.output_bucket)
    apps: list[Flask] = []

    def make(**dashboard_settings: Any) -> Flask:
        app = create_app({"FACEFLEET_SETTINGS": settings, "TESTING": True,
                          "FACEFLEET_DASHBOARD": DashboardSettings(**dashboard_settings)})
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            assert app.extensions["facefleet_dashboard"].monitor.stop(timeout=20)
            app.extensions["facefleet"].close()


def test_json_aggregates_real_tasks_from_two_workers(web_stack: WebStack) -> None:
    first = dashboard(web_stack.url)
    assert first["monitor"]["state"] in {"starting", "listening"}
    assert first["monitor"]["node_id"].startswith("dashboard-")
    # wakeup: both workers answer with a heartbeat as soon as the listener is up.
    body = wait_for(lambda: (b := dashboard(web_stack.url)) and online(b) >= WORKERS and b,
                    30, "both workers online on the dashboard")
    assert body["monitor"]["state"] == "listening"
    before = body["events"]["tasks"]["succeeded"]

    ids = run_until_both_workers_served(web_stack.url)
    body = dashboard(web_stack.url)
    events = body["events"]
    assert events["tasks"]["succeeded"] - before >= len(ids)
    assert events["tasks"]["window"]["succeeded"] >= len(ids)
    ours = [t for t in events["recent"] if t["uuid"] in ids]
    assert len(ours) == len(ids)
    for task in ours:
        assert task["state"] == "succeeded" and task["name"] == "facefleet.recognize"
        assert task["hostname"] in WORKERS
        # received → succeeded spans the task body the worker timed.
        assert task["latency_s"] >= task["runtime_s"] - 0.005 > 0
    assert 0 < events["runtime_s"]["p50"] <= events["latency_s"]["p95"]
    assert events["latency_s"]["n"] >= len(ids)
    assert sum(events["throughput"]["succeeded"]) >= len(ids)
    workers = {w["hostname"]: w for w in events["workers"]}
    assert all(workers[h]["succeeded"] >= 1 and workers[h]["heartbeat_age_s"] is not None
               for h in WORKERS)
    queue = body["fleet"]["queue"]
    assert queue["ok"] and queue["name"] == web_stack.settings.queue
    assert isinstance(queue["visible"], int) and isinstance(queue["in_flight"], int)
    assert body["fleet"]["autoscaler"]["published"] is False
    assert body["fleet"]["actual"] is None


def test_published_controller_state_reaches_the_dashboard(local_app: Any) -> None:
    app = local_app(events=False)
    client = app.test_client()
    settings = app.extensions["facefleet"].settings
    unpublished = client.get("/api/v1/dashboard").get_json()
    assert unpublished["fleet"]["autoscaler"]["published"] is False
    publish_controller_state(settings)
    fleet = client.get("/api/v1/dashboard").get_json()["fleet"]
    assert fleet["autoscaler"]["published"] is True and fleet["autoscaler"]["stale"] is False
    assert fleet["max"] == 15 and fleet["desired"] >= 1
    assert fleet["actual"] == sum(n for s, n in fleet["by_state"].items()
                                  if s in ("pending", "running"))
    assert fleet["by_state"].get("running", 0) >= 1 and fleet["by_state"].get("pending", 0) >= 1
    assert len(fleet["instances"]) == sum(fleet["by_state"].values())
    decisions = fleet["decisions"]
    assert len(decisions) >= 2 and decisions[0]["time"] > decisions[-1]["time"]
    assert decisions[-1]["desired"] == 0 and decisions[0]["desired"] == fleet["desired"]


def test_events_flag_off_makes_no_listener(local_app: Any) -> None:
    app = local_app(events=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    page = client.get("/dashboard")
    assert page.status_code == 200 and b"FACEFLEET_DASHBOARD_EVENTS is false" in page.data
    body = client.get("/api/v1/dashboard").get_json()
    assert body["events"] is None
    assert body["monitor"]["state"] == "disabled"
    assert body["monitor"]["off_reason"] == "FACEFLEET_DASHBOARD_EVENTS is false"
    assert app.extensions["facefleet_dashboard"].monitor._thread is None


def listening_via(client: Any) -> dict[str, Any] | None:
    """The listener's status once it listens, asked the way an open page asks: each
    request counts as a viewer, so a slow start cannot run out the idle stop meanwhile."""
    monitor: dict[str, Any] = client.get("/api/v1/dashboard").get_json()["monitor"]
    return monitor if monitor["state"] == "listening" else None


def test_listener_starts_lazily_stops_when_idle_and_restarts(local_app: Any) -> None:
    # The idle stop counts from the last dashboard request, not from when the listener
    # came up: with a 2 s idle stop, a start slower than 2 s (late in a CI run, moto
    # holding every earlier test's queues) went listening → idle between two polls of
    # status(), and the test never saw it listen. Polling like an open page avoids that.
    app = local_app(idle_stop_s=5.0, poll_s=1.0)
    monitor = app.extensions["facefleet_dashboard"].monitor
    monitor.receive_wait_s = 1.0
    client = app.test_client()
    settings = app.extensions["facefleet"].settings
    assert client.get("/healthz").status_code == 200
    assert monitor.status()["state"] == "off"  # other routes do not start it

    # Generous: starting means creating a queue and an SNS subscription on a moto
    # server that, late in a CI run, holds every earlier test's queues; the speed is
    # bench.dashboard's, not this test's.
    node = wait_for(lambda: listening_via(client), 90, "the listener")["node_id"]
    assert len(listener_queues(settings, node)) == 1 and subscribed(settings, node)
    wait_for(lambda: online(client.get("/api/v1/dashboard").get_json()) >= WORKERS, 30,
             "both workers' heartbeats in-process")

    wait_for(lambda: monitor.status()["state"] == "idle", 30, "the idle stop")
    wait_for(lambda: not listener_queues(settings, node), 15, "the listener queue removed")
    assert subscribed(settings, node) == []

    again = wait_for(lambda: listening_via(client), 90, "the listener again")
    assert again["node_id"] != node
    assert monitor.stop(timeout=20)
    assert monitor.status()["state"] == "stopped"
    assert listener_queues(settings, again["node_id"]) == []


def test_gunicorn_shutdown_removes_the_listener_queue(web_stack: WebStack,
                                                      tmp_path: Path) -> None:
    proc, url = start_gunicorn(web_stack.settings, tmp_path / "gunicorn.log")
    try:
        node = dashboard(url)["monitor"]["node_id"]
        wait_for(lambda: dashboard(url)["monitor"]["state"] == "listening", 30,
                 "the listener in gunicorn")
        assert len(listener_queues(web_stack.settings, node)) == 1
        assert subscribed(web_stack.settings, node)
    finally:
        stop_process(proc, timeout=40)
    assert proc.returncode == 0, (tmp_path / "gunicorn.log").read_text()[-2000:]
    assert listener_queues(web_stack.settings, node) == []
    assert subscribed(web_stack.settings, node) == []


def test_page_shows_workers_tasks_and_fleet_live(browser: Browser, web_stack: WebStack
                                                 ) -> None:
    settings = web_stack.settings
    key = settings.fleet_state_key
    s3 = aws.client(settings, "s3")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(web_stack.url + "/dashboard")
        page.wait_for_function("Number(document.getElementById('dashboard').dataset.updates) >= 1",
                               timeout=30_000)
        publish_controller_state(settings)
        ids = run_until_both_workers_served(web_stack.url)
        page.wait_for_selector("#workers tbody tr[data-state=online] >> nth=1", timeout=30_000)
        hosts = {page.locator("#workers tbody tr").nth(i).get_attribute("data-hostname")
                 for i in range(page.locator("#workers tbody tr").count())}
        assert hosts >= WORKERS
        # The page refreshes itself: its update counter grows without a reload.
        count = int(page.locator("#dashboard").get_attribute("data-updates") or 0)
        page.wait_for_function(
            f"Number(document.getElementById('dashboard').dataset.updates) >= {count + 3}",
            timeout=15_000)
        done = page.locator("#tasks-done").text_content() or ""
        assert int(done.split("/")[0]) >= len(ids), done
        assert page.locator("#recent tbody tr").count() >= 8
        assert page.locator("#instance-states li[data-state=running]").count() == 1
        assert page.locator("#decisions tbody tr").count() >= 2
        desired_actual = page.locator("#instances-desired-actual").text_content() or ""
        assert "–" not in desired_actual, desired_actual
        for chart in ("queue", "instances", "throughput", "latency"):
            points = page.locator(f"#chart-{chart}").get_attribute("data-points")
            assert int(points or 0) > 0, chart
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / "dashboard.png"), full_page=True)
    finally:
        page.close()
        s3.delete_object(Bucket=settings.output_bucket, Key=key)
    assert errors == []

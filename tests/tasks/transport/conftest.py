"""Fixtures: real `celery` worker subprocesses on the session's moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from celery import Celery

from tests.tasks.transport.app import make_app, queue_names

REPO = Path(__file__).resolve().parents[3]
APP = "tests.tasks.transport.app"
HOST = "mon"


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Send ``sig`` to ``proc`` (by PID) and wait; kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass
class Fleet:
    """Names, environment and processes of one monitoring test setup."""

    endpoint: str
    env: dict[str, str]
    queues: tuple[str, str, str, str]
    prefix: str
    logs: Path
    app: Celery
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def celery(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``celery -A <test app> ARGS`` and return its result."""
        return subprocess.run([sys.executable, "-m", "celery", "-A", APP, *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        """Start ``celery -A <test app> ARGS`` in the background, output in ``log``."""
        with open(self.logs / log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "celery", "-A", APP, *args],
                                    cwd=REPO, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, name: str, own_queue: str) -> subprocess.Popen[bytes]:
        proc = self.spawn("worker", "-n", f"{name}@{HOST}", "-Q", f"{self.queues[0]},{own_queue}",
                          "-c", "1", "-P", "prefork", "--loglevel=INFO", log=f"{name}.log")
        self.workers[name] = proc
        return proc

    def ping(self, timeout: float = 1.0) -> set[str]:
        """Names of the workers answering an in-process ``ping``."""
        replies = self.app.control.ping(timeout=timeout)
        return {name for reply in replies for name in reply}

    def monitor_queues(self, kind: str = "") -> list[str]:
        """Names of this fleet's monitoring queues (``ls``: listeners, ``rp``: replies)."""
        urls = self.client("sqs").list_queues(
            QueueNamePrefix=self.prefix + kind).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def subscribed_queues(self) -> list[str]:
        """Names of this fleet's queues subscribed to any SNS topic."""
        sns = self.client("sns")
        names = []
        for topic in sns.list_topics().get("Topics", []):
            subs = sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
            names += [s["Endpoint"].rsplit(":", 1)[-1] for s in subs]
        return sorted(n for n in names if n.startswith(self.prefix))

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_fleet(moto_endpoint: str, logs: Path) -> Fleet:
    """Unique names on the moto server, the queues created, no process started yet."""
    suffix = uuid.uuid4().hex[:6]
    base = f"mon-{suffix}"
    prefix = f"ffm{suffix}-"
    env = dict(os.environ, FACEFLEET_AWS_ENDPOINT=moto_endpoint, FACEFLEET_QUEUE=base,
               FACEFLEET_MONITOR_QUEUE_PREFIX=prefix, PYTHONPATH=str(REPO),
               FLOWER_UNAUTHENTICATED_API="true", PYTHONWARNINGS="ignore")
    fleet = Fleet(moto_endpoint, env, queue_names(base), prefix, logs, make_app(env))
    sqs = fleet.client("sqs")
    for name in fleet.queues:
        sqs.create_queue(QueueName=name)
    return fleet


@pytest.fixture(scope="module")
def fleet(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two real workers, ``w1@mon`` and ``w2@mon``, answering remote control."""
    fleet = make_fleet(moto_endpoint, tmp_path_factory.mktemp("monitoring"))
    try:
        fleet.start_worker("w1", fleet.queues[1])
        fleet.start_worker("w2", fleet.queues[2])
        wait_for(lambda: fleet.ping() >= {f"w1@{HOST}", f"w2@{HOST}"}, 90,
                 "both workers to answer ping")
        yield fleet
    finally:
        for proc in fleet.workers.values():
            stop(proc)

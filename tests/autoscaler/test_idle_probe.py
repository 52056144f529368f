"""The activity probe against two real Celery workers over SQS+SNS on moto's server:
the one holding a task is reported busy, the other idle, and the plan stops the idle
one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.fleet import Instance
from autoscaler.idle import Activity, CeleryActivityProbe
from autoscaler.plan import plan
from config.autoscaler import AutoscalerSettings
from tests.tasks.transport.conftest import HOST, Fleet, make_fleet, stop, wait_for

NAMES = ("app-tier-instance-1", "app-tier-instance-2")


@pytest.fixture
def two_workers(moto_endpoint: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = make_fleet(moto_endpoint, tmp_path)
    try:
        fleet.start_worker(NAMES[0], fleet.queues[1])
        fleet.start_worker(NAMES[1], fleet.queues[2])
        wait_for(lambda: fleet.ping() >= {f"{n}@{HOST}" for n in NAMES}, 90,
                 "both workers to answer ping")
        yield fleet
    finally:
        for proc in fleet.workers.values():
            stop(proc)


def test_probe_tells_the_busy_worker_from_the_idle_one(two_workers: Fleet) -> None:
    fleet = two_workers
    instances = [Instance(f"i-{n}", name, n, "running", 0.0) for n, name in
                 enumerate(NAMES, start=1)]
    probe = CeleryActivityProbe(fleet.app, timeout=3.0, hostname=HOST)
    assert probe(instances) == Activity(idle=frozenset(NAMES))

    # worker 1 (prefork: its main process still answers) holds a task long enough to be
    # seen, short enough for the warm shutdown at the end
    fleet.app.send_task("mon.sleep", args=[8], queue=fleet.queues[1])
    activity = wait_for(lambda: (a := probe(instances)) and a.busy and a, 60,
                        "worker 1 to report its task")
    assert activity == Activity(idle=frozenset({NAMES[1]}), busy=frozenset({NAMES[0]}))
    settings = AutoscalerSettings(max_instances=2, warm_pool_size=2)
    assert plan(1, instances, 100.0, settings, activity.idle, activity.busy).stop == ("i-2",)

    # replies of workers that are not our instances are ignored
    other = CeleryActivityProbe(fleet.app, timeout=1.0, hostname=HOST)
    assert other([Instance("i-9", "app-tier-instance-9", 9, "running", 0.0)]) == Activity()

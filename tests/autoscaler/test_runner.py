"""The embedded runner's process lifecycle, with a trivial worker command.

The worker script records its start and a SIGTERM (the warm shutdown) in files, so the
tests see which instance got which process and how it ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.ec2 import Ec2Fleet
from autoscaler.memory import MemoryFleet
from autoscaler.runner.launchers import CommandLauncher
from autoscaler.runner.sync import Runner
from config import aws
from config.autoscaler import AutoscalerSettings

WORKER = '''
import os, signal, sys, time
name, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def term(*_):
    with open(os.path.join(folder, name + ".term"), "a") as f:
        f.write(str(os.getpid()) + "\\n")
    if mode == "stubborn":
        return
    time.sleep(0.2)  # finish the task in hand
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
with open(os.path.join(folder, name + ".start"), "a") as f:
    f.write(str(os.getpid()) + "\\n")
if mode == "crash":
    sys.exit(3)
while True:
    time.sleep(0.05)
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def make_runner(script: Path, tmp_path: Path) -> Iterator[Callable[..., tuple[Runner,
                                                                              MemoryFleet]]]:
    made: list[Runner] = []

    def make(mode: str = "normal", stop_timeout: float = 5.0) -> tuple[Runner, MemoryFleet]:
        fleet = MemoryFleet(5)
        launcher = CommandLauncher(
            lambda name: [sys.executable, str(script), name, str(tmp_path), mode], {})
        runner = Runner(fleet.list, launcher, stop_timeout)
        made.append(runner)
        return runner, fleet

    yield make
    for runner in made:
        runner.shutdown(timeout=5)


def test_workers_follow_instance_states(make_runner, tmp_path: Path) -> None:
    runner, fleet = make_runner()
    a, b, c = fleet.launch(3)
    runner.sync()
    assert sorted(w.instance.name for w in runner.workers.values()) == [a.name, b.name, c.name]
    assert wait_for(lambda: all(lines(tmp_path / f"{i.name}.start") for i in (a, b, c)))
    pid_b = int(lines(tmp_path / f"{b.name}.start")[0])
    fleet.stop([b.id])
    fleet.terminate([c.id])
    runner.sync()
    assert set(runner.workers) == {a.id}
    assert wait_for(lambda: not alive(pid_b) and runner.sync() is None and not runner.draining)
    assert lines(tmp_path / f"{b.name}.term") == [str(pid_b)]  # warm shutdown, not a kill
    assert lines(tmp_path / f"{c.name}.term")
    fleet.start([b.id])
    runner.sync()
    assert wait_for(lambda: len(lines(tmp_path / f"{b.name}.start")) == 2)
    runner.shutdown(timeout=5)
    assert not runner.workers and len(lines(tmp_path / f"{a.name}.term")) == 1


def test_stubborn_worker_is_killed_after_the_timeout(make_runner, tmp_path: Path) -> None:
    runner, fleet = make_runner("stubborn", stop_timeout=0.5)
    (inst,) = fleet.launch(1)
    runner.sync()
    assert wait_for(lambda: lines(tmp_path / f"{inst.name}.start"))
    pid = int(lines(tmp_path / f"{inst.name}.start")[0])
    fleet.stop([inst.id])
    runner.sync()
    assert wait_for(lambda: lines(tmp_path / f"{inst.name}.term"))
    assert alive(pid)
    assert wait_for(lambda: runner.sync() is None and not runner.draining, timeout=5)
    assert not alive(pid)


def test_crashed_worker_is_restarted_with_backoff(make_runner, tmp_path: Path) -> None:
    runner, fleet = make_runner("crash")
    (inst,) = fleet.launch(1)
    runner.sync()
    assert wait_for(lambda: runner.sync() is None and not runner.workers, timeout=5)
    runner.sync()
    assert not runner.workers  # inside the backoff
    assert wait_for(lambda: runner.sync() is None and len(
        lines(tmp_path / f"{inst.name}.start")) >= 2, timeout=5)


def test_leaving_workers_are_drained_before_sigterm(script: Path, tmp_path: Path) -> None:
    """One drain call names every leaving worker; SIGTERM only once the drain is over."""
    fleet = MemoryFleet(5)
    launcher = CommandLauncher(
        lambda name: [sys.executable, str(script), name, str(tmp_path), "normal"], {})
    drained: list[list[str]] = []
    runner = Runner(fleet.list, launcher, 5.0, drain=lambda names: drained.append(names) or True,
                    drain_s=1.0)
    try:
        a, b, c = fleet.launch(3)
        runner.sync()
        assert wait_for(lambda: all(lines(tmp_path / f"{i.name}.start") for i in (a, b, c)))
        fleet.stop([a.id, b.id])
        ended = time.monotonic()
        runner.sync()
        assert [sorted(n) for n in drained] == [sorted([a.name, b.name])]
        runner.sync()
        assert not lines(tmp_path / f"{a.name}.term")  # still draining
        assert wait_for(lambda: runner.sync() is None and not runner.draining, timeout=10)
        assert time.monotonic() - ended >= 1.0
        assert lines(tmp_path / f"{a.name}.term") and lines(tmp_path / f"{b.name}.term")
        assert not lines(tmp_path / f"{c.name}.term")
    finally:
        runner.shutdown(timeout=5)
    assert drained[-1] == [c.name] and lines(tmp_path / f"{c.name}.term")


def test_a_failed_drain_means_sigterm_at_once(script: Path, tmp_path: Path) -> None:
    fleet = MemoryFleet(2)
    launcher = CommandLauncher(
        lambda name: [sys.executable, str(script), name, str(tmp_path), "normal"], {})
    runner = Runner(fleet.list, launcher, 5.0, drain=lambda names: False, drain_s=30.0)
    (a,) = fleet.launch(1)
    runner.sync()
    assert wait_for(lambda: lines(tmp_path / f"{a.name}.start"))
    fleet.stop([a.id])
    runner.sync()
    assert wait_for(lambda: runner.sync() is None and not runner.draining, timeout=5)
    runner.shutdown(timeout=5)


def test_failed_listing_keeps_workers(make_runner) -> None:
    runner, fleet = make_runner()
    fleet.launch(2)
    runner.sync()
    pids = {w.handle.pid for w in runner.workers.values()}
    fleet.fail_next = "list"
    runner.sync()
    assert {w.handle.pid for w in runner.workers.values()} == pids
    assert all(alive(p) for p in pids)


def test_runner_process_on_moto_is_restart_safe(settings: Any, script: Path,
                                                tmp_path: Path) -> None:
    """``python -m autoscaler.runner`` against moto: killed with SIGKILL, its workers get
    a warm shutdown (no orphans); restarted, it starts them again from EC2's state."""
    role = f"runner-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FACEFLEET_AWS_ENDPOINT": settings.aws_endpoint,
           "FACEFLEET_ROLE": role, "FACEFLEET_RUNNER_FORK": "false",
           "FACEFLEET_RUNNER_POLL_SECONDS": "0.1", "FACEFLEET_RUNNER_DRAIN_SECONDS": "0.5",
           "FACEFLEET_WORKER_COMMAND": f"{sys.executable} {script} {{name}} {tmp_path} normal"}
    ec2 = aws.client(settings, "ec2")
    fleet = Ec2Fleet(ec2, AutoscalerSettings(role=role, max_instances=3, warm_pool_size=3))
    a, b = fleet.launch(2)

    def start_runner() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "autoscaler.runner"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = start_runner()
    try:
        assert wait_for(lambda: lines(tmp_path / f"{a.name}.start") and lines(
            tmp_path / f"{b.name}.start"), timeout=30)
        first = [int(lines(tmp_path / f"{i.name}.start")[0]) for i in (a, b)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_for(lambda: not any(alive(p) for p in first))
        assert lines(tmp_path / f"{a.name}.term") == [str(first[0])]
        proc = start_runner()
        assert wait_for(lambda: len(lines(tmp_path / f"{a.name}.start")) == 2, timeout=30)
        fleet.stop([a.id])
        assert wait_for(lambda: len(lines(tmp_path / f"{a.name}.term")) == 2)
        assert len(lines(tmp_path / f"{b.name}.term")) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert len(lines(tmp_path / f"{b.name}.term")) == 2  # the runner's own shutdown is warm


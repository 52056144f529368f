"""No orphans: every service of the embedded stack dies with the stack process, however
it is stopped (Ctrl-C after ``| tee`` died, SIGKILL), and ``status``/``down`` work on
a foreground stack as on a detached one.

A light stack: the autoscaler (moto, gunicorn, runner, controller) with no instance
running, and a runner that preloads no model (``FACEFLEET_RUNNER_FORK=false``), so
it is up in seconds. Every process here is a real one, ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.embedded_aws import free_port
from deploy.lifetime import is_running, start_time
from tests.deploy.test_stack import _stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)

#: Seconds the services of a SIGKILLed stack may take to follow it (their SIGTERM
#: shutdowns: gunicorn's arbiters, the runner, the controller).
FOLLOW_S = 20.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a light stack on free ports, its state under ``tmp_path``."""
    return {**os.environ,
            "FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "FACEFLEET_WEB_BIND": f"127.0.0.1:{free_port()}",
            "FACEFLEET_STACK_DIR": str(tmp_path / "stack"),
            "FACEFLEET_AUTOSCALE": "true",
            "FACEFLEET_RUNNER_FORK": "false",
            "FACEFLEET_MAX_INSTANCES": "1",
            "FACEFLEET_WEB_WORKERS": "1"}


def _state_file(env: dict[str, str]) -> Path:
    return Path(env["FACEFLEET_STACK_DIR"]) / "state.json"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (gunicorn's workers, the runner's workers)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = [int(c) for c in children.read_text().split()]
        except OSError:
            continue
        for child in pids:
            found += [child, *_descendants(child)]
    return found


def _services(state: dict[str, Any]) -> list[tuple[int, int | None]]:
    """(PID, start time) of each recorded service and of everything below it."""
    roots = [p["pid"] for p in state["processes"]]
    return [(pid, start_time(pid)) for root in roots for pid in [root, *_descendants(root)]]


def _still_running(procs: list[tuple[int, int | None]], within: float) -> list[int]:
    """The PIDs of ``procs`` still running (the same processes) after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        left = [pid for pid, started in procs if started and is_running(pid, started)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@dataclass
class Started:
    """What a test started: stack processes (and tee), and the services seen under them."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    services: list[tuple[int, int | None]] = field(default_factory=list)


@pytest.fixture
def started() -> Iterator[Started]:
    """Whatever a failed test left running is SIGKILLed, by PID: the stack processes,
    then any of their services still there (had their parent-death signal failed)."""
    record = Started()
    yield record
    for proc in record.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    for pid in _still_running(record.services, within=FOLLOW_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _run(env: dict[str, str], started: Started, **popen: Any) -> subprocess.Popen[bytes]:
    """``python -m deploy.stack run`` in a process group of its own, as a shell's job."""
    proc = subprocess.Popen([sys.executable, "-m", "deploy.stack", "run"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, process_group=0, **popen)
    started.procs.append(proc)
    return proc


def _wait_up(env: dict[str, str], stack: subprocess.Popen[bytes], started: Started,
             timeout: float = 120) -> dict[str, Any]:
    """The state file of ``stack`` once it says it is up; its services go to ``started``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert stack.poll() is None, f"the stack exited ({stack.returncode}) while starting"
        try:
            state: dict[str, Any] = json.loads(_state_file(env).read_text())
        except FileNotFoundError:
            state = {}
        if state.get("phase") == "up" and state["stack"]["pid"] == stack.pid:
            started.services += _services(state)
            return state
        time.sleep(0.2)
    raise AssertionError(f"the stack was not up within {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hangup"])
def test_stop_after_tee_died_stops_everything(
        env: dict[str, str], started: Started, tmp_path: Path, sig: signal.Signals) -> None:
    """``make run 2>&1 | tee run.log``, then Ctrl-C (or the terminal closes): tee dies
    first, the stack's next print hits a closed pipe, and the stack still stops every
    service and removes its state file."""
    read, write = os.pipe()
    stack = _run(env, started, stdout=write, stderr=write)
    # tee in the stack's process group, as the shell puts a pipeline's commands.
    tee = subprocess.Popen(["tee", str(tmp_path / "run.log")], stdin=read,
                           stdout=subprocess.DEVNULL, process_group=stack.pid)
    started.procs.append(tee)
    os.close(read)
    os.close(write)
    state = _wait_up(env, stack, started)
    assert {p["name"] for p in state["processes"]} == {"moto", "web", "runner", "controller"}

    tee.kill()  # the reader goes first
    tee.wait(timeout=10)
    os.killpg(stack.pid, sig)  # as the terminal does: to the whole foreground group
    # 0: no BrokenPipeError escaped, not even from the interpreter's last flush.
    assert stack.wait(timeout=90) == 0
    assert _still_running(started.services, within=0) == []
    assert not _state_file(env).exists()
    assert "facefleet is up" in (tmp_path / "run.log").read_text()


def test_stop_signal_while_starting_stops_what_started(
        env: dict[str, str], started: Started) -> None:
    """``down`` (SIGTERM) while the stack starts: it stops the parts started so far."""
    stack = _run(env, started, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _descendants(stack.pid):  # moto's server is the first part
        assert time.monotonic() < deadline and stack.poll() is None
        time.sleep(0.05)
    state = json.loads(_state_file(env).read_text())
    assert state["phase"] == "starting" and state["stack"]["pid"] == stack.pid
    parts = [(pid, start_time(pid)) for pid in _descendants(stack.pid)]
    started.services += parts

    down = _stack("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert stack.wait(timeout=60) == 0
    assert _still_running(parts, within=0) == []
    assert not _state_file(env).exists()


def test_sigkilled_stack_takes_its_services_along(
        env: dict[str, str], started: Started) -> None:
    """SIGKILL runs no handler: the services go by their parent-death signal, and
    ``down`` then reports the stale state and removes it. (While it is up: the runner,
    whose forks are the simulated instances, runs FACEFLEET_WORKER_NICE below the
    services that stand in for AWS and the web tier's host.)"""
    stack = _run(env, started, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = _wait_up(env, stack, started)
    pids = {p["name"]: p["pid"] for p in state["processes"]}
    base = os.getpriority(os.PRIO_PROCESS, stack.pid)
    assert os.getpriority(os.PRIO_PROCESS, pids["runner"]) == min(19, base + 10)
    assert os.getpriority(os.PRIO_PROCESS, pids["web"]) == base
    assert os.getpriority(os.PRIO_PROCESS, pids["moto"]) == base

    os.kill(stack.pid, signal.SIGKILL)
    stack.wait(timeout=10)
    assert _still_running(started.services, within=FOLLOW_S) == []

    down = _stack("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert f"the stack process (pid {stack.pid}) is gone" in down.stdout
    assert "stale" in down.stdout and "none of its processes is left" in down.stdout
    assert not _state_file(env).exists()


def test_status_and_down_work_on_a_foreground_stack(
        env: dict[str, str], started: Started, tmp_path: Path) -> None:
    """``make run`` in one terminal, ``make status`` and ``make down`` in another."""
    out = tmp_path / "run.log"
    with out.open("wb") as log:
        stack = _run(env, started, stdout=log, stderr=subprocess.STDOUT)
    _wait_up(env, stack, started)

    status = _stack("status", env, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    described = json.loads(status.stdout)
    assert described["up"] and not described["stale"] and not described["detached"]
    assert described["stack"]["pid"] == stack.pid and described["stack"]["alive"]

    down = _stack("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert f"stopping the stack process (pid {stack.pid})" in down.stdout
    assert stack.wait(timeout=90) == 0
    assert _still_running(started.services, within=0) == []
    assert not _state_file(env).exists()
    assert "stopping facefleet" in out.read_text()
    after = _stack("status", env, timeout=120)
    assert after.returncode == 1 and json.loads(after.stdout)["up"] is False


def test_down_on_stale_state_stops_only_what_it_recorded(tmp_path: Path) -> None:
    """The stack process is gone; of two processes recorded, one still is what was
    recorded (stopped), the other has the same PID but another start time: a PID
    reused by a stranger, left alone."""
    gone = subprocess.Popen(["sleep", "60"])
    gone_started = start_time(gone.pid)
    gone.kill()
    gone.wait()
    ours = subprocess.Popen(["sleep", "60"])
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        state_dir = tmp_path / "stack"
        state_dir.mkdir()

        def record(name: str, pid: int, started: int | None) -> dict[str, Any]:
            return {"name": name, "pid": pid, "log": "", "log_start": 0, "started": started}

        stranger_started = start_time(stranger.pid)
        assert stranger_started is not None
        (state_dir / "state.json").write_text(json.dumps({
            "phase": "up", "stack": record("stack", gone.pid, gone_started),
            "processes": [record("moto", ours.pid, start_time(ours.pid)),
                          record("web", stranger.pid, stranger_started - 1)]}))
        down = _stack("down", {**os.environ, "FACEFLEET_STACK_DIR": str(state_dir)})
        assert down.returncode == 0, down.stderr
        assert f"the stack process (pid {gone.pid}) is gone" in down.stdout
        assert f"stopping what it left running: moto (pid {ours.pid})" in down.stdout
        assert "web" not in down.stdout.split("left running:")[1]
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None
        assert not (state_dir / "state.json").exists()
    finally:
        for proc in (ours, stranger):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_a_killed_service_is_restarted_and_recorded(
        env: dict[str, str], started: Started) -> None:
    """A killed controller, runner or web tier is a fault to ride out: the stack starts
    it again (as systemd's Restart=always on an instance), records the new PID and keeps
    running; a killed moto server (all state in memory) stops the stack instead."""
    stack = _run(env, started, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = _wait_up(env, stack, started)
    old = {p["name"]: p["pid"] for p in state["processes"]}
    for name in ("controller", "web"):
        os.kill(old[name], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = {p["name"]: p["pid"] for p in json.loads(_state_file(env).read_text())[
            "processes"]}
        if now["controller"] != old["controller"] and now["web"] != old["web"]:
            break
        assert time.monotonic() < deadline, "not restarted within 30 s"
        time.sleep(0.2)
    status = _stack("status", env, timeout=120)
    assert status.returncode == 0 and json.loads(status.stdout)["up"], status.stdout
    started.services += _services(json.loads(_state_file(env).read_text()))
    assert stack.poll() is None

    os.kill(now["moto"], signal.SIGKILL)
    assert stack.wait(timeout=90) == 1
    assert _still_running(started.services, within=FOLLOW_S) == []
    assert not _state_file(env).exists()

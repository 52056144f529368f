"""The controller loop on the in-memory fleet with a fake clock and scripted loads."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from autoscaler.errors import MetricsError
from autoscaler.loop import Controller
from autoscaler.memory import MemoryFleet
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth

S = AutoscalerSettings(max_instances=15, warm_pool_size=15, idle_grace_s=1.0,
                       scale_in_window_s=1.0, tick_s=0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loads:
    """Scripted queue loads; an Exception entry is a failed read."""

    def __init__(self) -> None:
        self.next: QueueDepth | Exception = QueueDepth(0, 0)

    def __call__(self) -> QueueDepth:
        if isinstance(self.next, Exception):
            raise self.next
        return self.next


class Published:
    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []

    def publish(self, state: dict[str, Any]) -> None:
        self.states.append(json.loads(json.dumps(state)))


@pytest.fixture
def rig() -> tuple[Controller, MemoryFleet, Loads, Clock, Published]:
    clock = Clock()
    fleet = MemoryFleet(15, clock=clock)
    loads = Loads()
    pub = Published()
    return Controller(S, fleet, loads, pub, clock=clock), fleet, loads, clock, pub  # type: ignore[arg-type]


def active(fleet: MemoryFleet) -> int:
    return sum(i.active for i in fleet.list())


def test_burst_scales_out_then_stops_into_warm_pool_and_restarts_from_it(rig) -> None:
    ctl, fleet, loads, clock, pub = rig
    loads.next = QueueDepth(100, 0)
    rec = ctl.tick()
    assert rec.desired == 15 and active(fleet) == 15
    assert fleet.calls == [("launch", 15)]
    loads.next = QueueDepth(80, 15)
    for _ in range(4):
        clock.now += 0.5
        ctl.tick()
        assert active(fleet) == 15
    loads.next = QueueDepth(0, 0)
    clock.now += 0.5
    ctl.tick()  # grace starts
    assert active(fleet) == 15
    clock.now += 1.0
    rec = ctl.tick()
    assert rec.desired == 0 and active(fleet) == 0
    assert sum(i.state == "stopped" for i in fleet.list()) == 15
    # the next burst starts the warm pool, launches nothing
    loads.next = QueueDepth(3, 0)
    clock.now += 10
    ctl.tick()
    assert active(fleet) == 3 and fleet.calls[-1][0] == "start"
    assert [i.name for i in fleet.list() if i.active] == [
        "app-tier-instance-1", "app-tier-instance-2", "app-tier-instance-3"]
    state = pub.states[-1]
    assert state["desired"] == 3 and state["max"] == 15 and state["counts"]["running"] == 3
    assert state["decisions"][-1]["action"] == "scale-out"
    assert {"id", "name", "state", "since"} <= set(state["instances"][0])


def test_failed_metric_read_holds_size(rig, caplog: pytest.LogCaptureFixture) -> None:
    ctl, fleet, loads, clock, _ = rig
    loads.next = QueueDepth(6, 0)
    ctl.tick()
    loads.next = MetricsError("throttled")
    for _ in range(10):
        clock.now += 0.5
        with caplog.at_level(logging.WARNING, "facefleet.autoscaler"):
            rec = ctl.tick()
        assert active(fleet) == 6 and "hold" in rec.reason
    assert "throttled" in caplog.text


def test_fleet_errors_are_logged_and_retried(rig) -> None:
    ctl, fleet, loads, clock, _ = rig
    loads.next = QueueDepth(4, 0)
    fleet.fail_next = "launch"
    rec = ctl.tick()
    assert rec.errors and active(fleet) == 0
    clock.now += 0.5
    ctl.tick()
    assert active(fleet) == 4
    fleet.fail_next = "list"
    clock.now += 0.5
    rec = ctl.tick()
    assert rec.reason == "fleet unknown: skip" and active(fleet) == 4


def test_one_structured_line_per_changed_tick(rig, caplog: pytest.LogCaptureFixture) -> None:
    ctl, _, loads, clock, _ = rig
    loads.next = QueueDepth(2, 0)
    with caplog.at_level(logging.INFO, "facefleet.autoscaler"):
        ctl.tick()  # scale-out
        for _ in range(3):  # then the same inputs and decision: one line, then DEBUG only
            clock.now += 0.5
            ctl.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    entry = json.loads(lines[0].removeprefix("tick "))
    assert entry["action"] == "scale-out" and entry["desired"] == 2
    assert entry["load"] == {"visible": 2, "in_flight": 0, "delayed": 0}
    assert {"current", "booting", "desired", "reason"} <= set(entry)


def test_restart_converges_without_exceeding_max(rig) -> None:
    ctl, fleet, loads, clock, pub = rig
    loads.next = QueueDepth(9, 0)
    ctl.tick()
    # a new controller (fresh history) over the same fleet: no double launch
    fresh = Controller(S, fleet, loads, pub, clock=clock)
    loads.next = QueueDepth(40, 0)
    clock.now += 0.5
    fresh.tick()
    fresh.tick()
    assert active(fleet) == 15 and len(fleet.list()) == 15
    # restarted with an idle queue: holds for the grace, then stops everything
    loads.next = QueueDepth(0, 0)
    again = Controller(S, fleet, loads, pub, clock=clock)
    again.tick()
    assert active(fleet) == 15
    clock.now += 1.0
    again.tick()
    assert active(fleet) == 0


def test_run_ticks_until_stopped() -> None:
    fleet = MemoryFleet(15)
    ctl = Controller(AutoscalerSettings(tick_s=0.05), fleet, lambda: QueueDepth(1, 0))
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        assert _wait(lambda: len(ctl.decisions) >= 3)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and active(fleet) == 1


def _wait(cond, timeout: float = 5.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False

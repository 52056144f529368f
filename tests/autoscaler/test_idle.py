"""Choosing scale-in victims from what the workers hold (pure), and the controller asking
only when the choice matters."""

from __future__ import annotations

import threading
from typing import Any

from autoscaler.fleet import Instance
from autoscaler.idle import Activity, CeleryActivityProbe, activity_from_replies
from autoscaler.loop import Controller
from autoscaler.memory import MemoryFleet
from autoscaler.plan import plan, scale_in_order
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth

S = AutoscalerSettings(max_instances=6, warm_pool_size=6, idle_grace_s=1.0,
                       scale_in_window_s=0.0, tick_s=0.5)


def inst(slot: int, state: str = "running") -> Instance:
    return Instance(f"i-{slot}", f"app-tier-instance-{slot}", slot, state, 0.0)


def names(*slots: int) -> frozenset[str]:
    return frozenset(f"app-tier-instance-{s}" for s in slots)


def test_replies_fold_into_idle_and_busy_for_our_instances_only() -> None:
    replies: dict[str, Any] = {
        "app-tier-instance-1@host": [],
        "app-tier-instance-2@host": [{"id": "t1"}],
        "app-tier-instance-9@host": [],           # not one of ours
        "app-tier-instance-3@other": None,         # malformed: not proof of idleness
    }
    act = activity_from_replies(replies, [inst(1), inst(2), inst(3)])
    assert act == Activity(idle=names(1), busy=names(2, 3))


def test_two_workers_of_one_instance_busy_wins() -> None:
    # instance 4 restarted while its previous worker still finishes a task
    replies = {"app-tier-instance-4@a": [], "app-tier-instance-4@b": [{"id": "t"}]}
    assert activity_from_replies(replies, [inst(4)]) == Activity(busy=names(4))


def test_order_is_idle_then_silent_then_busy_highest_slot_first() -> None:
    fleet = [inst(s) for s in range(1, 7)]
    order = scale_in_order(fleet, idle=names(2, 5), busy=names(6, 1))
    assert [i.slot for i in order] == [5, 2, 4, 3, 6, 1]


def test_a_busy_worker_is_never_stopped_while_an_idle_one_exists() -> None:
    fleet = [inst(s) for s in range(1, 7)]
    for idle_slot in range(1, 7):
        busy = names(*(s for s in range(1, 7) if s != idle_slot))
        a = plan(5, fleet, 100, S, idle=names(idle_slot), busy=busy)
        assert a.stop == (f"i-{idle_slot}",)
    # more to stop than idle workers: the idle ones, then silent ones, busy last
    a = plan(2, fleet, 100, S, idle=names(1), busy=names(5, 6))
    assert a.stop == ("i-1", "i-4", "i-3", "i-2")


def test_without_activity_the_highest_slots_go() -> None:
    fleet = [inst(s) for s in range(1, 5)]
    assert plan(2, fleet, 100, S).stop == ("i-4", "i-3")


class Probe:
    """Records what the controller asked; answers with a fixed Activity."""

    def __init__(self, answer: Activity | None) -> None:
        self.answer = answer
        self.calls: list[list[str]] = []

    def __call__(self, instances: list[Instance]) -> Activity | None:
        self.calls.append([i.name for i in instances if i.state == "running"])
        return self.answer


def test_controller_asks_only_for_a_partial_scale_in() -> None:
    now = [1000.0]
    fleet = MemoryFleet(6, clock=lambda: now[0])
    load = [QueueDepth(6, 0)]
    probe = Probe(Activity(idle=names(2), busy=names(1, 3, 4, 5, 6)))
    ctl = Controller(S, fleet, lambda: load[0], clock=lambda: now[0], idle_probe=probe)
    ctl.tick()                      # scale-out to 6: nothing to choose
    assert sum(i.active for i in fleet.list()) == 6 and probe.calls == []
    now[0] += 0.5
    load[0] = QueueDepth(0, 5)       # 5 in flight: one instance may go
    record = ctl.tick()
    assert len(probe.calls) == 1 and record.acts["stop"] == [
        i.id for i in fleet.list() if i.name == "app-tier-instance-2"]
    assert record.acts["workers"] == {"idle": ["app-tier-instance-2"],
                                      "busy": sorted(names(1, 3, 4, 5, 6))}
    now[0] += 5
    load[0] = QueueDepth(0, 0)       # seen empty: the grace starts
    ctl.tick()
    now[0] += 1
    ctl.tick()                       # seen empty for the grace: all go, no question asked
    assert len(probe.calls) == 1
    assert sum(i.active for i in fleet.list()) == 0


class FailingControl:
    def inspect(self, **kwargs: Any) -> Any:
        raise ConnectionError("endpoint down")


class FakeApp:
    control = FailingControl()


def test_probe_failure_means_unknown_and_no_running_means_nothing_to_ask() -> None:
    probe = CeleryActivityProbe(FakeApp(), timeout=0.1, hostname="h")
    assert probe([inst(1)]) is None
    assert probe([inst(1, "pending")]) == Activity()


class ScriptedControl:
    """inspect().active() answers from a script; ping() blocks until released."""

    def __init__(self, answers: list[dict[str, Any] | None]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()

    def ping(self, timeout: float) -> list[Any]:
        self.release.wait(10)
        return []

    def inspect(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        answer = self.answers.pop(0)
        return type("Inspect", (), {"active": lambda _self: answer})()


def test_probe_is_silent_while_warming_then_retries_a_lost_broadcast_once() -> None:
    control = ScriptedControl([{}, {"app-tier-instance-1@h": []}])
    app = type("App", (), {"control": control})()
    probe = CeleryActivityProbe(app, timeout=0.1, hostname="h")
    probe.warm()
    assert probe([inst(1)]) is None and not control.calls  # warming: no stall, no call
    control.release.set()
    assert probe._warm is not None
    probe._warm.join(5)
    assert probe([inst(1)]) == Activity(idle=names(1))
    assert [c["destination"] for c in control.calls] == [["app-tier-instance-1@h"]] * 2
    assert control.calls[0]["limit"] == 1

"""Planning actions from a desired count: warm pool first, safe victims, bounds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.fleet import Instance
from autoscaler.plan import plan
from config.autoscaler import AutoscalerSettings

S = AutoscalerSettings(max_instances=5, warm_pool_size=5, boot_timeout_s=30,
                       start_timeout_s=10)


def inst(slot: int, state: str = "running", since: float = 0.0, origin: str = "launch"
         ) -> Instance:
    return Instance(f"i-{slot}", f"app-tier-instance-{slot}", slot, state, since, origin)


def test_scale_out_starts_warm_pool_before_launching() -> None:
    fleet = [inst(1), inst(2, "stopped"), inst(4, "stopped")]
    a = plan(5, fleet, 100, S)
    assert a.start == ("i-2", "i-4") and a.launch == 2 and not a.stop


def test_scale_out_only_what_is_missing() -> None:
    a = plan(3, [inst(1), inst(2, "pending", 99)], 100, S)
    assert a.launch == 1 and not a.start


def test_scale_in_stops_highest_slots_and_prefers_idle() -> None:
    fleet = [inst(i) for i in range(1, 6)]
    assert plan(3, fleet, 100, S).stop == ("i-5", "i-4")
    assert plan(3, fleet, 100, S, idle=frozenset({"app-tier-instance-1"})).stop == (
        "i-1", "i-5")


def test_scale_in_never_stops_pending_or_young_instances() -> None:
    s = replace(S, min_run_s=60)
    fleet = [inst(1, since=0), inst(2, since=90), inst(3, "pending", 95)]
    a = plan(0, fleet, 100, s)
    assert a.stop == ("i-1",) and "younger" in a.notes[0]


def test_victims_beyond_warm_pool_are_terminated() -> None:
    s = replace(S, warm_pool_size=1)
    fleet = [inst(1), inst(2), inst(3), inst(4, "stopped")]
    a = plan(1, fleet, 100, s)
    assert a.stop == () and a.terminate == ("i-3", "i-2")
    s = replace(S, warm_pool_size=2)
    a = plan(1, fleet, 100, s)
    assert a.stop == ("i-3",) and a.terminate == ("i-2",)


def test_surplus_warm_pool_is_terminated() -> None:
    s = replace(S, warm_pool_size=1)
    a = plan(0, [inst(1, "stopped"), inst(2, "stopped"), inst(3, "stopped")], 100, s)
    assert a.terminate == ("i-2", "i-3")


@pytest.mark.parametrize(("origin", "since", "stuck"), [
    ("launch", 60, True), ("launch", 80, False), ("start", 85, True), ("start", 95, False)])
def test_stuck_pending_instances_are_replaced(origin: str, since: float, stuck: bool) -> None:
    a = plan(1, [inst(1, "pending", since, origin)], 100, S)
    assert (a.terminate == ("i-1",) and a.launch == 1) if stuck else a.empty


def test_nothing_to_do_is_empty() -> None:
    assert plan(2, [inst(1), inst(2), inst(3, "stopped")], 100, S).empty

"""The pure policy: table of observations → desired count and reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.fleet import FleetCounts
from autoscaler.policy import PAUSE_FACTOR, Decision, History, Observation, decide, recommend
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth

S = AutoscalerSettings(max_instances=15, idle_grace_s=1.0, scale_in_window_s=2.0)


def obs(now: float, load: tuple[int, int] | None, running: int = 0, pending: int = 0,
        stopped: int = 0) -> Observation:
    return Observation(now, None if load is None else QueueDepth(*load),
                       FleetCounts(running, pending, stopped, 0))


@pytest.mark.parametrize(("o", "history", "settings", "desired", "reason"), [
    # scale-out from zero, immediately, to ceil(load / per-instance)
    (obs(10, (1, 0)), History(), S, 1, "scale-out"),
    (obs(10, (7, 3)), History(), S, 10, "scale-out"),
    (obs(10, (100, 0)), History(), S, 15, "capped at max"),
    (obs(10, (9, 0)), History(), replace(S, backlog_per_instance=4), 3, "scale-out"),
    # pending instances count as capacity: no repeated scale-out while they boot
    (obs(10, (5, 0), pending=5), History(), S, 5, "at recommendation"),
    (obs(10, (8, 0), running=2, pending=3), History(), S, 8, "scale-out"),
    # all booting and load fell: they are kept (in-flight/grace rules)
    (obs(10, (0, 0), pending=4), History(last_busy=9.5), S, 4, "grace"),
    # a failed read holds the current size, never reads as zero
    (obs(10, None, running=6), History(last_busy=0), S, 6, "unknown: hold"),
    (obs(10, None), History(), S, 0, "unknown: hold"),
    # to zero only after the idle grace, counted from the first empty reading
    (obs(10, (0, 0), running=15), History(last_busy=9.5, empty_since=9.5), S, 15, "grace"),
    (obs(10, (0, 0), running=15), History(last_busy=8.5, empty_since=9.0), S, 0, "to min"),
    (obs(10, (0, 0), running=3), History(last_busy=8.5, empty_since=9.0),
     replace(S, min_instances=2), 2, "to min"),
    # one empty reading is no idle time, however long ago work was last seen: the
    # queue may have emptied just before it (a trickle between two requests)
    (obs(10, (0, 0), running=15), History(last_busy=9.0), S, 15, "idle 0.0s"),
    # a first observation of an idle queue starts the grace now (restart-safe)
    (obs(10, (0, 0), running=5), History(), S, 5, "grace"),
    # scale-in never below in-flight work
    (obs(10, (0, 6), running=15), History(((5.0, 15),), 9.9), S, 6, "scale-in"),
    # ... counted in instances: a batching worker holds several messages at once
    (obs(10, (0, 6), running=15), History(((5.0, 15),), 9.9),
     replace(S, tasks_per_instance=4, backlog_per_instance=4), 2, "scale-in"),
    # stabilisation: the window's highest recommendation holds
    (obs(10, (0, 6), running=15), History(((9.0, 12),), 9.9), S, 12, "scale-in"),
    (obs(10, (0, 6), running=15), History(((9.0, 15),), 9.9), S, 15, "held"),
    # min instances respected while busy
    (obs(10, (0, 1), running=4), History(last_busy=9.9), replace(S, min_instances=3), 3,
     "scale-in"),
    # edge: max 1
    (obs(10, (50, 0)), History(), replace(S, max_instances=1, warm_pool_size=1), 1,
     "capped"),
    # more active than max (max lowered under a running fleet): trimmed
    (obs(10, (20, 0), running=15), History(), replace(S, max_instances=10,
                                                      warm_pool_size=10), 10, "trim"),
])
def test_decide(o: Observation, history: History, settings: AutoscalerSettings, desired: int,
                reason: str) -> None:
    d = decide(o, history, settings)
    assert d.desired == desired, d.reason
    assert reason in d.reason
    assert settings.min_instances <= d.desired <= settings.max_instances


def test_window_forgets_old_recommendations() -> None:
    old = History(((7.0, 15), (8.5, 10)), last_busy=9.9)
    d = decide(obs(10, (0, 2), running=15), old, S)
    assert d.desired == 10  # 15 is older than the 2 s window, 10 is inside it
    assert [t for t, _ in d.history.recommendations] == [8.5, 10]


def test_burst_then_drain_sequence() -> None:
    """Walk a burst: out to max at once, hold while busy, zero after the grace."""
    h = History()
    current = 0
    seen: list[Decision] = []
    trace = [(0.0, (100, 0)), (0.5, (85, 15)), (1.0, (40, 15)), (1.5, (0, 15)),
             (2.0, (0, 4)), (3.6, (0, 4)), (4.0, (0, 0)), (4.7, (0, 0)), (5.0, (0, 0))]
    for now, load in trace:
        d = decide(obs(now, load, running=current), h, S)
        h, current = d.history, d.desired
        seen.append(d)
    assert [d.desired for d in seen] == [15, 15, 15, 15, 15, 4, 4, 4, 0]
    assert seen[0].action == "scale-out" and seen[-1].action == "scale-in"


def walk(trace: list[tuple[float, tuple[int, int]]], current: int = 0) -> list[Decision]:
    h = History()
    seen: list[Decision] = []
    for now, load in trace:
        d = decide(obs(now, load, running=current), h, replace(S, idle_grace_s=0.5))
        h, current = d.history, d.desired
        seen.append(d)
    return seen


def test_a_trickle_with_pauses_keeps_its_fleet_between_requests() -> None:
    # A request every ~1.5 s, the queue empty in between: pauses of 1.5 s are remembered
    # and the grace grows to PAUSE_FACTOR × 1.5 s, so the fleet is not sent to zero after
    # each request.
    trace = []
    for i in range(6):
        start = 1.5 * i
        trace += [(start, (1, 0)), (start + 0.5, (0, 0)), (start + 1.0, (0, 0))]
    seen = walk(trace)
    assert all(d.desired >= 1 for d in seen[3:]), [d.reason for d in seen]
    grace = PAUSE_FACTOR * 1.5
    assert seen[-1].history.idle_grace(trace[-1][0], replace(S, idle_grace_s=0.5)) == grace
    # ... and when it stops for good, it still goes to zero after that grace, counted
    # from the first empty reading.
    first_empty = trace[-1][0] - 0.5
    end = walk([*trace, (first_empty + grace - 0.5, (0, 0)), (first_empty + grace, (0, 0))])
    assert end[-2].desired >= 1 and end[-1].desired == 0


def test_a_long_idle_period_is_not_a_pause() -> None:
    # Two bursts 20 s apart: the second one still goes to zero the plain grace after it.
    seen = walk([(0.0, (5, 0)), (0.5, (0, 0)), (20.0, (5, 0)), (20.5, (0, 0)),
                 (21.0, (0, 0))])
    assert seen[-1].desired == 0, seen[-1].reason


def test_recommend_bounds() -> None:
    assert recommend(0, S) == 0
    assert recommend(10**9, S) == 15
    assert recommend(0, replace(S, min_instances=2)) == 2

"""Pure parts of the dashboard: the Celery-event aggregate, the fleet summary, the
settings, and the monitor's lifecycle rules (no broker involved)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from config.dashboard import DashboardSettings
from config.env import ConfigError
from webapp.dashboard.fleet import by_state, recent_decisions, summarize_fleet
from webapp.dashboard.monitor import EventsMonitor
from webapp.dashboard.stats import EventAggregate, percentile, summary

T0 = 1_700_000_000.0


def ev(kind: str, at: float, delay: float = 0.3, **fields: Any) -> dict[str, Any]:
    """An event as EventReceiver hands it out: sent at ``at``, received ``delay`` later."""
    return {"type": kind, "timestamp": at, "local_received": at + delay, **fields}


def run_task(agg: EventAggregate, uuid: str, host: str, received: float, done: float,
             runtime: float, kind: str = "task-succeeded") -> None:
    agg.add(ev("task-received", received, uuid=uuid, hostname=host, name="facefleet.recognize"))
    agg.add(ev(kind, done, uuid=uuid, hostname=host, runtime=runtime))


def test_percentile_interpolates_and_refuses_empty() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)
    assert summary([]) is None
    stats = summary([0.4, 0.1, 0.2])
    assert stats is not None and stats["n"] == 3 and stats["max"] == 0.4 and stats["p50"] == 0.2


def test_latency_runtime_delay_and_rate() -> None:
    agg = EventAggregate(window_s=60, rate_window_s=10)
    # 20 tasks over 10 s, latency 0.5 s, runtime 0.2 s, events 0.3 s late.
    for i in range(20):  # finishing at T0+1.0, T0+1.5, ... T0+10.5
        start = T0 + 0.5 + i * 0.5
        run_task(agg, f"t{i}", "w1@h" if i % 2 else "w2@h", start, start + 0.5, 0.2)
    snap = agg.snapshot(T0 + 11.0)
    assert snap["tasks"]["succeeded"] == 20 and snap["tasks"]["received"] == 20
    # The 10 whole seconds before the current one (T0+11) hold all 20 completions.
    assert snap["tasks"]["per_second"] == pytest.approx(2.0)
    assert snap["latency_s"]["p50"] == pytest.approx(0.5)
    assert snap["runtime_s"]["p95"] == pytest.approx(0.2)
    assert snap["event_delay_s"]["p50"] == pytest.approx(0.3)
    assert sum(snap["throughput"]["succeeded"]) == 20
    assert len(snap["throughput"]["succeeded"]) == 120
    hosts = {w["hostname"]: w for w in snap["workers"]}
    assert hosts["w1@h"]["succeeded"] == 10 and hosts["w2@h"]["succeeded"] == 10
    assert snap["recent"][0]["uuid"] == "t19" and snap["recent"][0]["latency_s"] == 0.5
    # A minute later the window is empty but the totals remain.
    later = agg.snapshot(T0 + 200)
    assert later["latency_s"] is None and later["tasks"]["per_second"] == 0
    assert later["tasks"]["succeeded"] == 20 and sum(later["throughput"]["succeeded"]) == 0


def test_task_seen_only_finishing_has_runtime_not_latency() -> None:
    agg = EventAggregate()
    agg.add(ev("task-succeeded", T0, uuid="x", hostname="w@h", runtime=0.4))
    snap = agg.snapshot(T0 + 1)
    assert snap["latency_s"] is None
    assert snap["runtime_s"]["p50"] == 0.4
    assert snap["recent"][0]["name"] is None


def test_failures_are_counted_apart_and_keep_their_exception() -> None:
    agg = EventAggregate()
    run_task(agg, "ok", "w@h", T0, T0 + 0.2, 0.1)
    agg.add(ev("task-received", T0, uuid="bad", hostname="w@h"))
    agg.add(ev("task-failed", T0 + 0.3, uuid="bad", hostname="w@h", exception="BadImage()"))
    snap = agg.snapshot(T0 + 2)
    assert snap["tasks"]["succeeded"] == 1 and snap["tasks"]["failed"] == 1
    assert snap["tasks"]["window"] == {"succeeded": 1, "failed": 1}
    assert snap["latency_s"]["n"] == 1  # latency is of succeeded tasks only
    assert snap["recent"][0]["exception"] == "BadImage()"
    assert snap["workers"][0]["failed"] == 1


def test_worker_online_lost_offline_and_forgotten() -> None:
    agg = EventAggregate(forget_after_s=600)
    agg.add(ev("worker-online", T0, hostname="w@h", freq=2.0))
    agg.add(ev("worker-heartbeat", T0 + 2, hostname="w@h", freq=2.0, active=1, processed=7,
               loadavg=[0.5, 0.4, 0.3], sw_ver="5.6"))
    beat = T0 + 2.3
    state = agg.snapshot(beat + 1)["workers"][0]
    assert state["state"] == "online" and state["active"] == 1 and state["processed"] == 7
    assert state["heartbeat_age_s"] == pytest.approx(1.0) and state["loadavg"] == [0.5, 0.4, 0.3]
    assert agg.snapshot(beat + 1)["tasks"]["in_progress"] == 1
    assert agg.snapshot(beat + 4.5)["workers"][0]["state"] == "lost"  # > 2 × 2 s
    assert agg.snapshot(beat + 4.5)["workers_online"] == 0
    agg.add(ev("worker-heartbeat", T0 + 10, hostname="w@h", freq=2.0))
    assert agg.snapshot(T0 + 11)["workers"][0]["state"] == "online"
    agg.add(ev("worker-offline", T0 + 12, hostname="w@h"))
    assert agg.snapshot(T0 + 12.5)["workers"][0]["state"] == "offline"
    assert agg.snapshot(T0 + 12 + 601)["workers"] == []


def test_visibility_counts_are_shown_and_are_no_heartbeat() -> None:
    agg = EventAggregate()
    agg.add(ev("worker-heartbeat", T0, hostname="w@h", freq=2.0))
    agg.add(ev("worker-visibility", T0 + 1, hostname="w@h", extended=40, failed=3, held=1))
    agg.add(ev("worker-visibility", T0 + 2, hostname="w@h", extended="x", failed=True))
    worker = agg.snapshot(T0 + 2)["workers"][0]
    assert (worker["visibility_extended"], worker["visibility_failed"]) == (40, 3)
    # The heartbeat arrived at T0 + 0.3; the visibility events later are not one.
    assert worker["heartbeat_age_s"] == pytest.approx(1.7)


def test_memory_is_bounded() -> None:
    agg = EventAggregate(max_pending=5, max_samples=8, max_recent=3, history_s=10)
    for i in range(20):
        agg.add(ev("task-received", T0 + i, uuid=f"r{i}", hostname="w@h"))
    assert len(agg._pending) == 5
    for i in range(20):
        agg.add(ev("task-succeeded", T0 + 100 + i, uuid=f"s{i}", hostname="w@h", runtime=0.1))
    snap = agg.snapshot(T0 + 121)
    assert len(agg._samples) == 8 and len(snap["recent"]) == 3
    assert min(agg._per_second) > T0 + 121 - 10
    assert snap["tasks"]["succeeded"] == 20


@pytest.mark.parametrize("event", [
    {"timestamp": T0, "local_received": T0},
    {"type": "task-succeeded", "timestamp": T0},
    {"type": "task-succeeded", "timestamp": "soon", "local_received": T0, "uuid": "x"},
    {"type": "worker-heartbeat", "timestamp": T0, "local_received": T0, "hostname": 3},
])
def test_malformed_events_change_no_statistic(event: dict[str, Any]) -> None:
    agg = EventAggregate()
    agg.add(event)
    snap = agg.snapshot(T0 + 1)
    assert snap["tasks"]["succeeded"] == 0 and snap["workers"] == []


def test_instances_by_state_and_actual() -> None:
    instances = [{"state": "running"}, {"state": "stopped"}, {"state": "pending"},
                 {"state": "running"}, {"state": "weird"}, "junk"]
    assert list(by_state(instances).items()) == [
        ("pending", 1), ("running", 2), ("stopped", 1), ("unknown", 1), ("weird", 1)]
    fleet = summarize_fleet({"ok": True, "visible": 3, "in_flight": 1}, {
        "desired": 4, "max": 15, "instances": instances[:5], "decisions": [],
        "autoscaler": {"published": True, "stale": False}})
    assert fleet["actual"] == 3 and fleet["desired"] == 4 and fleet["max"] == 15
    unpublished = summarize_fleet({"ok": False, "message": "down"}, {
        "desired": None, "max": None, "instances": [], "decisions": [],
        "autoscaler": {"published": False, "reason": "none yet"}})
    assert unpublished["actual"] is None and unpublished["by_state"] == {}


def test_decisions_collapse_repeats_newest_first() -> None:
    load = {"visible": 0, "in_flight": 0, "delayed": 0}
    busy = {"visible": 9, "in_flight": 1, "delayed": 0}
    log = [{"time": T0 + i, "load": load, "current": 0, "booting": 0, "desired": 0,
            "action": "hold", "reason": "idle"} for i in range(5)]
    log.append({"time": T0 + 5, "load": busy, "current": 0, "booting": 0, "desired": 5,
                "action": "scale-out", "reason": "backlog"})
    log += [{**log[-1], "time": T0 + 6 + i} for i in range(3)]
    rows = recent_decisions(log, limit=5)
    assert [r["action"] for r in rows] == ["scale-out", "hold"]
    assert rows[0]["repeat"] == 4 and rows[0]["first_time"] == T0 + 5
    assert rows[0]["time"] == T0 + 8
    assert rows[1]["repeat"] == 5
    assert recent_decisions(log, limit=1) == rows[:1]
    assert recent_decisions(["junk", None]) == []


def test_settings_defaults_and_refusals() -> None:
    settings = DashboardSettings.from_env({})
    assert settings.events and settings.poll_s == 1.0 and settings.idle_stop_s == 300
    assert not DashboardSettings.from_env({"FACEFLEET_DASHBOARD_EVENTS": "false"}).events
    with pytest.raises(ConfigError, match="FACEFLEET_DASHBOARD_EVENTS"):
        DashboardSettings.from_env({"FACEFLEET_DASHBOARD_EVENTS": "maybe"})
    with pytest.raises(ConfigError, match="twice"):
        DashboardSettings.from_env({"FACEFLEET_DASHBOARD_IDLE_STOP": "1",
                                    "FACEFLEET_DASHBOARD_POLL": "1"})
    with pytest.raises(ConfigError, match="FACEFLEET_DASHBOARD_POLL"):
        DashboardSettings.from_env({"FACEFLEET_DASHBOARD_POLL": "0.01"})


def test_disabled_monitor_never_starts() -> None:
    def factory() -> Any:
        raise AssertionError("a disabled monitor must not build a Celery app")

    monitor = EventsMonitor(factory, EventAggregate(), enabled=False)
    monitor.touch()
    assert monitor.status()["state"] == "disabled"
    assert monitor._thread is None
    assert monitor.stop() is True


def test_monitor_reports_a_broken_broker_and_stops() -> None:
    def factory() -> Any:
        raise ConnectionError("endpoint refused")

    monitor = EventsMonitor(factory, EventAggregate(), receive_wait_s=0.2)
    assert monitor.status()["state"] == "off"
    monitor.touch()
    deadline = time.monotonic() + 10
    while monitor.status()["state"] != "reconnecting" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = monitor.status()
    assert status["state"] == "reconnecting"
    assert "endpoint refused" in status["error"]
    assert monitor.stop(timeout=5) is True
    assert monitor.status()["state"] == "stopped"

"""Pure, bounded, in-memory aggregate of Celery events for the dashboard (no I/O).

Fed one event dict at a time (as ``celery.events.EventReceiver`` hands them out, with
``timestamp`` already localised and ``local_received`` added) and asked for a JSON-ready
:meth:`EventAggregate.snapshot` at a given time. Not thread-safe: the monitor holds a
lock around both calls.

What it derives, and from which clock:

- **tasks per second**: task-succeeded/-failed per second of the *worker's* finish
  timestamp (smooth even though events arrive in 0.5 s batches); the rate averages the
  last ``rate_window_s`` whole seconds before the current one, which is still filling.
- **latency** (task-received → task-succeeded) and **runtime** (the worker's own
  measure of the task body), percentiles over tasks that finished in the last
  ``window_s`` seconds. Both ends of the latency come from the same worker's clock, so
  clock skew between hosts does not enter it. A task received before the dashboard
  started listening has a runtime but no latency.
- **event delay**: dashboard receipt − worker finish timestamp, per finished task.
- **workers**: last heartbeat and last event as received here (the dashboard's
  clock, so skewed worker clocks cannot make a live worker look dead); a worker is
  ``online`` while its last event is younger than twice its heartbeat interval
  (Celery's own expiry rule), ``offline`` after it said so, ``lost`` otherwise.

Memory is bounded: at most ``max_pending`` received-but-unfinished tasks,
``max_samples`` finished ones, ``history_s`` seconds of counts and ``max_recent`` recent
tasks; offline workers are forgotten after ``forget_after_s``.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Celery's default heartbeat interval (s), used until a worker reports its own.
DEFAULT_HEARTBEAT = 2.0
#: A worker counts as alive this many heartbeat intervals after its last event
#: (Celery's HEARTBEAT_EXPIRE_WINDOW of 200 %).
EXPIRE_FACTOR = 2.0

FINISHED = {"task-succeeded": "succeeded", "task-failed": "failed"}


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of the sorted ``ordered`` by linear interpolation."""
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float] | None:
    """n, mean, p50, p95, p99, max of ``values`` (seconds); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(ordered), "mean": sum(ordered) / len(ordered),
            "p50": percentile(ordered, 50), "p95": percentile(ordered, 95),
            "p99": percentile(ordered, 99), "max": ordered[-1]}


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (events come from other processes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class WorkerRecord:
    """What the dashboard knows of one worker (``hostname`` as Celery names it)."""

    hostname: str
    last_event: float
    last_heartbeat: float | None = None
    freq: float = DEFAULT_HEARTBEAT
    offline: bool = False
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ver: str | None = None
    succeeded: int = 0
    failed: int = 0
    #: Cumulative counts from the worker's ``worker-visibility`` events
    #: (tasks/visibility.py): message extensions done, and failed (endpoint trouble).
    visibility_extended: int | None = None
    visibility_failed: int | None = None

    def state(self, now: float) -> str:
        """``online``, ``offline`` (it said goodbye) or ``lost`` (heartbeats stopped)."""
        if self.offline:
            return "offline"
        if now - self.last_event <= EXPIRE_FACTOR * self.freq:
            return "online"
        return "lost"

    def to_dict(self, now: float) -> dict[str, Any]:
        """JSON form at time ``now``."""
        return {
            "hostname": self.hostname, "state": self.state(now),
            "online": self.state(now) == "online",
            "last_heartbeat": self.last_heartbeat,
            "heartbeat_age_s": None if self.last_heartbeat is None
            else max(0.0, now - self.last_heartbeat),
            "last_event_age_s": max(0.0, now - self.last_event),
            "freq_s": self.freq, "active": self.active, "processed": self.processed,
            "loadavg": self.loadavg, "version": self.sw_ver,
            "succeeded": self.succeeded, "failed": self.failed,
            "visibility_extended": self.visibility_extended,
            "visibility_failed": self.visibility_failed,
        }


@dataclass(frozen=True)
class Finished:
    """One finished task, as kept for the window statistics."""

    finished: float
    state: str
    latency: float | None
    runtime: float | None
    delay: float | None


@dataclass
class EventAggregate:
    """Counts, percentiles and workers from a stream of Celery events."""

    window_s: float = 60.0
    rate_window_s: float = 10.0
    history_s: float = 120.0
    forget_after_s: float = 600.0
    max_pending: int = 10_000
    max_samples: int = 10_000
    max_recent: int = 50
    events: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    last_event_at: float | None = None
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    _pending: OrderedDict[str, tuple[float, str]] = field(default_factory=OrderedDict)
    _samples: deque[Finished] = field(init=False)
    _recent: deque[dict[str, Any]] = field(init=False)
    _per_second: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._samples = deque(maxlen=self.max_samples)
        self._recent = deque(maxlen=self.max_recent)

    # -- input -----------------------------------------------------------------------
    def add(self, event: Mapping[str, Any]) -> None:
        """Account for one event; malformed ones are counted and otherwise ignored."""
        kind = event.get("type")
        received_at = _number(event.get("local_received"))
        stamp = _number(event.get("timestamp"))
        host = event.get("hostname")
        if not isinstance(kind, str) or received_at is None:
            return
        self.events += 1
        self.last_event_at = received_at
        worker = self._worker(host, received_at) if isinstance(host, str) else None
        if kind.startswith("worker-") and worker is not None:
            self._worker_event(worker, kind, event, received_at)
        elif kind == "task-received":
            self.received += 1
            uuid = event.get("uuid")
            if isinstance(uuid, str) and stamp is not None:
                self._pending[uuid] = (stamp, str(event.get("name") or ""))
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)
        elif kind in FINISHED and stamp is not None:
            self._finished(FINISHED[kind], event, stamp, received_at, worker)

    def _worker(self, host: str, received_at: float) -> WorkerRecord:
        worker = self.workers.get(host)
        if worker is None:
            worker = self.workers[host] = WorkerRecord(host, received_at)
        worker.last_event = received_at
        return worker

    @staticmethod
    def _worker_event(worker: WorkerRecord, kind: str, event: Mapping[str, Any],
                      received_at: float) -> None:
        if kind == "worker-offline":
            worker.offline = True
            return
        if kind == "worker-visibility":  # counts, not a heartbeat
            for name in ("extended", "failed"):
                value = event.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    setattr(worker, f"visibility_{name}", value)
            return
        worker.offline = False
        worker.last_heartbeat = received_at
        freq = _number(event.get("freq"))
        if freq is not None and freq > 0:
            worker.freq = freq
        for name in ("active", "processed"):
            value = event.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(worker, name, value)
        load = event.get("loadavg")
        if isinstance(load, list | tuple):
            worker.loadavg = [v for v in (_number(x) for x in load) if v is not None]
        if isinstance(event.get("sw_ver"), str):
            worker.sw_ver = event["sw_ver"]

    def _finished(self, state: str, event: Mapping[str, Any], stamp: float,
                  received_at: float, worker: WorkerRecord | None) -> None:
        uuid = event.get("uuid")
        start = self._pending.pop(uuid, None) if isinstance(uuid, str) else None
        latency = max(0.0, stamp - start[0]) if start is not None else None
        runtime = _number(event.get("runtime"))
        delay = received_at - stamp
        if state == "succeeded":
            self.succeeded += 1
        else:
            self.failed += 1
        if worker is not None:
            setattr(worker, state, getattr(worker, state) + 1)
        self._samples.append(Finished(stamp, state, latency, runtime, delay))
        bucket = self._per_second.setdefault(int(stamp), [0, 0])
        bucket[0 if state == "succeeded" else 1] += 1
        self._recent.append({
            "uuid": uuid, "name": start[1] if start else None, "state": state,
            "hostname": worker.hostname if worker else None, "finished_at": stamp,
            "seen_at": received_at, "latency_s": latency, "runtime_s": runtime,
            "exception": event.get("exception") if state == "failed" else None,
        })

    # -- output ----------------------------------------------------------------------
    def prune(self, now: float) -> None:
        """Drop counts older than the history and workers offline for too long."""
        oldest = int(now - self.history_s)
        for second in [s for s in self._per_second if s <= oldest]:
            del self._per_second[second]
        for host in [h for h, w in self.workers.items()
                     if now - w.last_event > self.forget_after_s and w.state(now) != "online"]:
            del self.workers[host]

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything the dashboard shows, as JSON-ready data, at time ``now``."""
        self.prune(now)
        current = int(now)
        rate_seconds = max(1, int(self.rate_window_s))
        done_recently = sum(sum(self._per_second.get(s, (0, 0)))
                            for s in range(current - rate_seconds, current))
        window = [f for f in self._samples if f.finished > now - self.window_s]
        first = current - int(self.history_s) + 1
        seconds = range(first, current + 1)
        workers = sorted(self.workers.values(), key=lambda w: w.hostname)
        online = [w for w in workers if w.state(now) == "online"]
        return {
            "now": now, "window_s": self.window_s, "rate_window_s": float(rate_seconds),
            "events": self.events, "last_event_age_s":
                None if self.last_event_at is None else max(0.0, now - self.last_event_at),
            "tasks": {
                "received": self.received, "succeeded": self.succeeded,
                "failed": self.failed, "per_second": done_recently / rate_seconds,
                "in_progress": sum(w.active or 0 for w in online),
                "window": {"succeeded": sum(f.state == "succeeded" for f in window),
                           "failed": sum(f.state == "failed" for f in window)},
            },
            "latency_s": summary([f.latency for f in window
                                  if f.latency is not None and f.state == "succeeded"]),
            "runtime_s": summary([f.runtime for f in window if f.runtime is not None]),
            "event_delay_s": summary([f.delay for f in window if f.delay is not None]),
            "throughput": {
                "start": first, "step": 1,
                "succeeded": [self._per_second.get(s, (0, 0))[0] for s in seconds],
                "failed": [self._per_second.get(s, (0, 0))[1] for s in seconds],
            },
            "workers": [w.to_dict(now) for w in workers],
            "workers_online": len(online),
            "recent": list(reversed(self._recent)),
        }

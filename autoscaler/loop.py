"""The controller: each tick read → decide → act → log one line → publish state.

It keeps no state that matters across restarts: the fleet is read from EC2 every tick
and the policy's history only delays a scale-in. Killed at any moment and restarted,
it re-reads the fleet and converges; launches are bounded by slots (see ec2.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoscaler.errors import FleetError, MetricsError, StateError
from autoscaler.fleet import Fleet, Instance, count
from autoscaler.idle import Activity
from autoscaler.plan import Actions, plan
from autoscaler.policy import Decision, History, Observation, decide
from autoscaler.state import StatePublisher, build_state
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth

log = logging.getLogger("facefleet.autoscaler")


@dataclass(frozen=True)
class TickRecord:
    """What one tick saw, decided and did (one line of the decision log)."""

    time: float
    load: QueueDepth | None
    current: int
    booting: int
    stopped: int
    desired: int
    action: str
    reason: str
    acts: dict[str, Any]
    errors: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"time": round(self.time, 3),
                "load": self.load.to_dict() if self.load else None,
                "current": self.current, "booting": self.booting, "stopped": self.stopped,
                "desired": self.desired, "action": self.action, "reason": self.reason,
                "acts": self.acts, "errors": list(self.errors)}


class Controller:
    """Drives ``fleet`` from the queue load read by ``read_load``."""

    def __init__(self, settings: AutoscalerSettings, fleet: Fleet,
                 read_load: Callable[[], QueueDepth],
                 publisher: StatePublisher | None = None,
                 clock: Callable[[], float] = time.time,
                 idle_probe: Callable[[list[Instance]], Activity | None] | None = None,
                 ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.read_load = read_load
        self.publisher = publisher
        self.clock = clock
        self.idle_probe = idle_probe
        self.history = History()
        self.decisions: deque[dict[str, Any]] = deque(maxlen=settings.decision_history)
        self._last_key: tuple[Any, ...] = ()

    def _act(self, actions: Actions) -> list[str]:
        """Apply actions; terminations and starts first (they free or fill capacity)."""
        errors = []
        steps: list[tuple[str, Callable[[], object]]] = [
            ("terminate", lambda: self.fleet.terminate(actions.terminate)),
            ("start", lambda: self.fleet.start(actions.start)),
            ("launch", lambda: self.fleet.launch(actions.launch)),
            ("stop", lambda: self.fleet.stop(actions.stop)),
        ]
        for name, step in steps:
            if name == "launch" and not actions.launch:
                continue
            if name != "launch" and not getattr(actions, name):
                continue
            try:
                step()
            except FleetError as err:
                errors.append(f"{name}: {err}")
        return errors

    def tick(self) -> TickRecord:
        """One control step; never raises for AWS errors (they are logged and retried)."""
        now = self.clock()
        try:
            instances = self.fleet.list()
        except FleetError as err:
            # Without the fleet's state nothing is safe to do: skip this tick.
            record = TickRecord(now, None, -1, -1, -1, -1, "hold", "fleet unknown: skip",
                                {}, (str(err),))
            self._finish(record, [])
            return record
        errors: list[str] = []
        try:
            load: QueueDepth | None = self.read_load()
        except MetricsError as err:
            load = None
            errors.append(str(err))
        counts = count(instances)
        decision: Decision = decide(Observation(now, load, counts), self.history,
                                    self.settings)
        self.history = decision.history
        # Ask the workers only when some, not all, running instances must go: the one
        # case where the choice matters (scaling to zero stops every one of them).
        activity = None
        if self.idle_probe is not None and 0 < decision.desired < counts.active:
            activity = self.idle_probe(instances)
        actions = plan(decision.desired, instances, now, self.settings,
                       activity.idle if activity else None,
                       activity.busy if activity else None)
        errors += self._act(actions)
        acts: dict[str, Any] = {k: v for k, v in actions.to_dict().items() if v}
        if activity is not None:
            acts["workers"] = activity.to_dict()
        record = TickRecord(now, load, counts.active, counts.pending, counts.stopped,
                            decision.desired, decision.action, decision.reason, acts,
                            tuple(errors))
        if not actions.empty:  # publish what the fleet looks like after acting
            try:
                instances = self.fleet.list()
            except FleetError as err:
                log.debug("fleet re-read failed: %s", err)
        self._finish(record, instances, actions)
        return record

    def _finish(self, record: TickRecord, instances: list[Instance],
                actions: Actions | None = None) -> None:
        entry = record.to_dict()
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        # Every tick logs one line; a tick identical to the previous one (same load,
        # fleet, decision) goes to DEBUG so an idle controller does not flood the log.
        key = (entry["load"], record.current, record.booting, record.desired, record.reason)
        if record.errors:
            log.warning("tick %s", line)
        elif key != self._last_key or (actions is not None and not actions.empty):
            log.info("tick %s", line)
        else:
            log.debug("tick %s", line)
        self._last_key = key
        self.decisions.append(entry)
        if self.publisher is None:
            return
        state = build_state(self.settings, record.time, record.desired, entry["load"],
                            instances, self.decisions)
        try:
            self.publisher.publish(state)
        except StateError as err:
            log.warning("state not published: %s", err)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_s`` seconds until ``stop`` is set."""
        period = self.settings.tick_s
        next_at = time.monotonic()
        while not stop.is_set():
            self.tick()
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow tick: don't try to catch up with a burst of ticks
                next_at = time.monotonic()
                delay = 0
            stop.wait(delay)

"""Policies compared by the simulator.

- ``ours``: the controller's own ``decide`` + ``plan`` (AWS profile settings): scale
  out at once to ceil(load / per-instance), pending counts as capacity, scale in only
  when work is done, stop into a warm pool, start warm instances first.
- ``ours-cold``: the same without a warm pool (terminate, always launch cold), to show
  what the policy alone is worth.
- ``original``: the CSE546 system: one instance per visible message up to max, never
  partial scale-in, terminate everything once queue and in-flight are empty.
- ``keda``: KEDA's SQS scaler + HPA: ceil((visible + in flight) / target), a 300 s
  scale-down stabilisation window, to zero after a 300 s cooldown; HPA sync 15 s.
- ``target-tracking``: EC2 Auto Scaling target tracking on backlog per instance
  (visible / in-service) from 1-minute CloudWatch data: scale out after 3 breaching
  minutes to ceil(capacity × metric / target), scale in after 15.
All baselines terminate on scale-in and launch cold (their systems have no warm pool).
The target-based baselines get the same backlog-per-instance target as ours, so the
differences come from their mechanics (windows, alarms, warm pool), not the target.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from autoscaler.fleet import Instance, count
from autoscaler.plan import Actions, plan
from autoscaler.policy import History, Observation, decide
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth


def aws_settings(max_instances: int = 15) -> AutoscalerSettings:
    """The controller's AWS-profile settings (what ``ours`` runs)."""
    s = AutoscalerSettings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws", "FACEFLEET_AMI": "ami-x",
                                     "FACEFLEET_MAX_INSTANCES": str(max_instances)})
    return s


class Ours:
    """The controller's decide + plan."""

    def __init__(self, settings: AutoscalerSettings, name: str = "ours") -> None:
        self.settings = settings
        self.name = name
        self.tick_s = settings.tick_s
        self.history = History()

    def step(self, now: float, load: QueueDepth, instances: list[Instance]) -> Actions:
        """decide, then plan."""
        d = decide(Observation(now, load, count(instances)), self.history, self.settings)
        self.history = d.history
        return plan(d.desired, instances, now, self.settings)


def ours_cold(settings: AutoscalerSettings) -> Ours:
    """Ours without a warm pool."""
    return Ours(replace(settings, warm_pool_size=0), "ours-cold")


def _terminate_plan(desired: int, instances: list[Instance]) -> Actions:
    """Baselines: launch cold for a shortfall; terminate idle-first, newest-first."""
    active = [i for i in instances if i.active]
    if desired > len(active):
        return Actions(launch=desired - len(active))
    victims = sorted(active, key=lambda i: (i.state == "running", -i.since))
    return Actions(terminate=tuple(i.id for i in victims[:len(active) - desired]))


class Original:
    """One instance per visible message up to max; terminate all when empty."""

    name = "original"

    def __init__(self, max_instances: int, tick_s: float = 5.0) -> None:
        self.max = max_instances
        self.tick_s = tick_s

    def step(self, now: float, load: QueueDepth, instances: list[Instance]) -> Actions:
        """The original controller's rule."""
        active = sum(i.active for i in instances)
        if load.visible == 0 and load.in_flight == 0:
            return _terminate_plan(0, instances)
        return _terminate_plan(max(active, min(self.max, load.visible)), instances)


class Keda:
    """KEDA SQS scaler + HPA defaults, with the same per-instance target as ours."""

    name = "keda"

    def __init__(self, max_instances: int, target: float = 1.0, tick_s: float = 15.0,
                 window_s: float = 300.0, cooldown_s: float = 300.0) -> None:
        self.max, self.target, self.tick_s = max_instances, target, tick_s
        self.window_s, self.cooldown_s = window_s, cooldown_s
        self.recs: deque[tuple[float, int]] = deque()
        self.last_active = -math.inf

    def step(self, now: float, load: QueueDepth, instances: list[Instance]) -> Actions:
        """HPA external metric + stabilisation; KEDA's cooldown to zero."""
        total = load.visible + load.in_flight
        active = sum(i.active for i in instances)
        if total > 0:
            self.last_active = now
        rec = min(self.max, math.ceil(total / self.target))
        self.recs.append((now, rec))
        while self.recs and self.recs[0][0] < now - self.window_s:
            self.recs.popleft()
        if total == 0 and now - self.last_active >= self.cooldown_s:
            return _terminate_plan(0, instances)
        desired = rec if rec >= active else max(1, max(r for _, r in self.recs))
        return _terminate_plan(min(desired, self.max), instances)


class TargetTracking:
    """EC2 Auto Scaling target tracking on backlog per in-service instance."""

    name = "target-tracking"

    def __init__(self, max_instances: int, target: float = 1.0, tick_s: float = 60.0,
                 out_points: int = 3, in_points: int = 15) -> None:
        self.max, self.target, self.tick_s = max_instances, target, tick_s
        self.out_points, self.in_points = out_points, in_points
        self.high = 0
        self.low = 0
        self.capacity = 0

    def step(self, now: float, load: QueueDepth, instances: list[Instance]) -> Actions:
        """One CloudWatch datapoint per minute; alarms after consecutive breaches."""
        in_service = sum(i.state == "running" for i in instances)
        metric = load.visible / in_service if in_service else float(load.visible)
        self.high = self.high + 1 if metric > self.target else 0
        self.low = self.low + 1 if metric < 0.9 * self.target else 0
        cap = max(self.capacity, sum(i.active for i in instances))
        if self.high >= self.out_points:
            self.capacity = min(self.max, max(cap + 1, math.ceil(max(cap, 1) * metric /
                                                                 self.target)))
            self.high = 0
        elif self.low >= self.in_points and cap > 0:
            busy_floor = math.ceil(load.in_flight / 1)
            self.capacity = max(busy_floor, math.ceil(cap * metric / self.target))
            self.low = 0
        return _terminate_plan(self.capacity, instances)


def all_policies(max_instances: int,
                 settings: AutoscalerSettings | None = None) -> dict[str, Callable[[], Any]]:
    """Factories of every policy, by name."""
    s = settings or aws_settings(max_instances)
    target = s.backlog_per_instance
    return {
        "ours": lambda: Ours(s),
        "ours-cold": lambda: ours_cold(s),
        "original": lambda: Original(max_instances),
        "keda": lambda: Keda(max_instances, target),
        "target-tracking": lambda: TargetTracking(max_instances, target),
    }

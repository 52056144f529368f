"""The scaling policy: a pure function from an observation and a small history to a
desired instance count with a reason (like HPA's replica calculator followed by
``convertDesiredReplicasWithRules``). No boto3 and no clock: ``now`` comes in.

Rules, in order:
1. The load could not be read → hold the current size (never read a failure as zero).
2. Recommendation = ceil(load / backlog_per_instance), load = visible + in flight
   (+ delayed if configured), bounded to min..max.
3. Scale-out is immediate, to the recommendation. Pending (booting) instances count
   as capacity, so a scale-out is not repeated while they boot.
4. Scale-in only when work is done: the queue and in-flight count have been empty for
   ``idle_grace_s`` → min; otherwise the highest recommendation of the last
   ``scale_in_window_s`` (stabilisation), never below the instances the in-flight
   messages need (``tasks_per_instance`` each: one for a solo worker, the pool's
   concurrency for a batching one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoscaler.fleet import FleetCounts
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth


@dataclass(frozen=True)
class Observation:
    """What the controller saw at ``now`` (epoch seconds). ``load`` is None when the
    queue could not be read."""

    now: float
    load: QueueDepth | None
    fleet: FleetCounts


@dataclass(frozen=True)
class History:
    """The policy's memory: recent recommendations (time, count) inside the scale-in
    window, and the last time any work was seen."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_busy: float | None = None


@dataclass(frozen=True)
class Decision:
    """A desired count, why, and the history to pass to the next call."""

    desired: int
    reason: str
    recommendation: int
    load: int | None
    current: int
    history: History = field(default_factory=History)

    @property
    def action(self) -> str:
        """``scale-out``, ``scale-in`` or ``hold``."""
        if self.desired > self.current:
            return "scale-out"
        if self.desired < self.current:
            return "scale-in"
        return "hold"


def recommend(load: int, settings: AutoscalerSettings) -> int:
    """ceil(load / backlog_per_instance) bounded to min..max (HPA's external per-pod
    target: ``ceil(total / targetPerPod)``)."""
    raw = math.ceil(load / settings.backlog_per_instance) if load > 0 else 0
    return max(settings.min_instances, min(settings.max_instances, raw))


def decide(obs: Observation, history: History, settings: AutoscalerSettings) -> Decision:
    """Return the desired count for ``obs`` (see the module docstring for the rules)."""
    current = obs.fleet.active
    bounded_current = max(settings.min_instances, min(settings.max_instances, current))
    if obs.load is None:
        return Decision(bounded_current, "queue load unknown: hold", bounded_current, None,
                        current, history)

    load = obs.load.total(settings.count_delayed)
    rec = recommend(load, settings)
    last_busy = obs.now if load > 0 or history.last_busy is None else history.last_busy
    window_start = obs.now - settings.scale_in_window_s
    recs = tuple((t, r) for t, r in history.recommendations if t >= window_start)
    recs += ((obs.now, rec),)
    new_history = History(recs, last_busy)

    def decision(desired: int, reason: str) -> Decision:
        return Decision(desired, reason, rec, load, current, new_history)

    if rec > current:
        capped = " (capped at max)" if rec == settings.max_instances and load > rec * \
            settings.backlog_per_instance else ""
        return decision(rec, f"scale-out: load {load} needs {rec}{capped}")
    if current > settings.max_instances:
        return decision(settings.max_instances, "above max: trim to max")
    if rec == current:
        return decision(current, "at recommendation")
    # rec < current: scale in only when the work allows it.
    if load == 0:
        idle_for = obs.now - last_busy
        if idle_for >= settings.idle_grace_s:
            return decision(settings.min_instances,
                            f"idle {idle_for:.1f}s ≥ grace {settings.idle_grace_s:g}s: to min")
        return decision(current, f"idle {idle_for:.1f}s < grace {settings.idle_grace_s:g}s: hold")
    stabilised = max(r for _, r in recs)
    busy = min(math.ceil(obs.load.in_flight / settings.tasks_per_instance),
               settings.max_instances)
    desired = min(current, max(stabilised, busy, settings.min_instances))
    if desired == current:
        return decision(current, f"scale-in held: window max {stabilised}, in flight {busy}")
    return decision(desired, f"scale-in: load {load}, window max {stabilised}, "
                             f"in flight {busy}")

"""The scaling policy: a pure function from an observation and a small history to a
desired instance count with a reason (like HPA's replica calculator followed by
``convertDesiredReplicasWithRules``). No boto3 and no clock: ``now`` comes in.

Rules, in order:
1. The load could not be read → hold the current size (never read a failure as zero).
2. Recommendation = ceil(load / backlog_per_instance), load = visible + in flight
   (+ delayed if configured), bounded to min..max.
3. Scale-out is immediate, to the recommendation. Pending (booting) instances count
   as capacity, so a scale-out is not repeated while they boot.
4. Scale-in only when work is done: the queue and in-flight count have been seen
   empty for the idle grace (from the first empty reading) → min; otherwise the
   highest recommendation of the last ``scale_in_window_s`` (stabilisation), never
   below the instances the in-flight messages need (``tasks_per_instance`` each: one
   for a solo worker, the pool's concurrency for a batching one).

The idle grace is ``idle_grace_s``, or :data:`PAUSE_FACTOR` times the longest pause
(up to :data:`PAUSE_MAX_S`) between two observations with work in the last
:data:`PAUSE_MEMORY_S`, if that is longer. A steady trickle whose queue reads empty for
a second between requests is not "work done": with a fixed 0.5 s grace the embedded
fleet went to zero between the requests of a half-capacity trickle and every next
request paid a cold start (bench.overload's recovery phase), and under a closed loop
of 8 clients it churned 15 → 0 → 11 workers a minute. A burst followed by silence has
no such pauses and still goes to zero ``idle_grace_s`` after the queue is first seen
empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoscaler.fleet import FleetCounts
from config.autoscaler import AutoscalerSettings
from config.aws import QueueDepth

#: A pause in the work longer than this is an idle period, not a gap in steady load.
PAUSE_MAX_S = 5.0
#: How long a pause is remembered.
PAUSE_MEMORY_S = 30.0
#: The idle grace covers this many times the longest remembered pause. Pauses are seen
#: at the controller's tick, so under a trickle of short tasks the longest one seen
#: understates the gaps to come: at half capacity, with answers in 0.2 s, pauses of up
#: to 1.0 s were seen and then the queue read empty for 2.5 s between two requests,
#: against a grace of 2 × 1.0 s; the fleet went to zero and the next requests waited
#: 2-6 s (bench.overload's recovery phase). A burst without pauses is not affected.
PAUSE_FACTOR = 4.0


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
    #: Recent pauses in the work: (when the work came back, how long it had paused).
    pauses: tuple[tuple[float, float], ...] = ()
    #: The last time the queue and in-flight count were seen empty.
    last_empty: float | None = None
    #: The first reading of the current run of empty readings (None while busy).
    empty_since: float | None = None

    def idle_grace(self, now: float, settings: AutoscalerSettings) -> float:
        """The grace before an empty queue means "to the minimum" (module docstring)."""
        recent = [length for when, length in self.pauses if when >= now - PAUSE_MEMORY_S]
        return max(settings.idle_grace_s, PAUSE_FACTOR * max(recent, default=0.0))


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
    pauses = tuple(p for p in history.pauses if p[0] >= obs.now - PAUSE_MEMORY_S)
    if (load > 0 and history.last_busy is not None and history.last_empty is not None
            and history.last_empty > history.last_busy):
        # Work again after an empty reading: remember the pause, unless it was long
        # enough to be an idle period of its own.
        pause = obs.now - history.last_busy
        if pause <= PAUSE_MAX_S:
            pauses += ((obs.now, pause),)
    last_empty = obs.now if load == 0 else history.last_empty
    empty_since = None if load > 0 else (
        obs.now if history.empty_since is None else history.empty_since)
    window_start = obs.now - settings.scale_in_window_s
    recs = tuple((t, r) for t, r in history.recommendations if t >= window_start)
    recs += ((obs.now, rec),)
    new_history = History(recs, last_busy, pauses, last_empty, empty_since)

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
        # Empty for as long as it has been *seen* empty: since the first empty reading,
        # not since the last busy one. Counted from the busy one, a single empty reading
        # was a whole tick of idleness, and with the embedded tick and grace (0.5 s
        # each) one reading between two requests sent 15 workers to zero right after
        # an overload's backlog drained (bench.overload, recovery missed at 45 s).
        idle_for = obs.now - (obs.now if empty_since is None else empty_since)
        grace = new_history.idle_grace(obs.now, settings)
        if idle_for >= grace:
            return decision(settings.min_instances,
                            f"idle {idle_for:.1f}s ≥ grace {grace:.1f}s: to min")
        return decision(current, f"idle {idle_for:.1f}s < grace {grace:.1f}s: hold")
    stabilised = max(r for _, r in recs)
    busy = min(math.ceil(obs.load.in_flight / settings.tasks_per_instance),
               settings.max_instances)
    desired = min(current, max(stabilised, busy, settings.min_instances))
    if desired == current:
        return decision(current, f"scale-in held: window max {stabilised}, in flight {busy}")
    return decision(desired, f"scale-in: load {load}, window max {stabilised}, "
                             f"in flight {busy}")

"""Turn a desired count into fleet actions (pure: instances and ``now`` in, actions out).

- Scale-out starts stopped instances of the warm pool first (seconds instead of a full
  boot), lowest slot first, and launches new ones only for the rest.
- Scale-in picks running instances (never pending ones: EC2 cannot stop them): those
  whose worker is known idle first, then those whose worker did not say, and one known
  to hold a task only when nothing else is left; within each group the highest slot
  first (see ``autoscaler.idle``). An instance that came up less than
  ``min_run_s`` ago is kept (EC2 bills a minimum per start, stopping it saves nothing).
  Victims are stopped while the warm pool has room, terminated beyond it. Stopping is a
  warm shutdown for the worker (SIGTERM: the current task finishes).
- Instances stuck pending past their boot/start timeout are terminated, and stopped
  instances beyond the warm pool size are terminated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.fleet import Instance
from config.autoscaler import AutoscalerSettings


@dataclass(frozen=True)
class Actions:
    """What to do this tick; ``launch`` is a count, the rest are instance ids."""

    start: tuple[str, ...] = ()
    launch: int = 0
    stop: tuple[str, ...] = ()
    terminate: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """True when there is nothing to do."""
        return not (self.start or self.launch or self.stop or self.terminate)

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"start": list(self.start), "launch": self.launch, "stop": list(self.stop),
                "terminate": list(self.terminate), "notes": list(self.notes)}


def _stuck(inst: Instance, now: float, settings: AutoscalerSettings) -> bool:
    limit = settings.start_timeout_s if inst.origin == "start" else settings.boot_timeout_s
    return inst.state == "pending" and now - inst.since > limit


def scale_in_order(candidates: Sequence[Instance], idle: frozenset[str] = frozenset(),
                   busy: frozenset[str] = frozenset()) -> list[Instance]:
    """``candidates`` in the order they should be stopped: known idle, unknown, known busy;
    highest slot first within each group (the newest capacity goes first, as slots fill
    from the bottom)."""
    def rank(inst: Instance) -> tuple[int, int]:
        group = 0 if inst.name in idle and inst.name not in busy else \
            2 if inst.name in busy else 1
        return group, -inst.slot

    return sorted(candidates, key=rank)


def plan(desired: int, instances: Sequence[Instance], now: float,
         settings: AutoscalerSettings, idle: frozenset[str] | None = None,
         busy: frozenset[str] | None = None) -> Actions:
    """Actions that move ``instances`` toward ``desired`` active ones.

    ``idle`` and ``busy`` optionally name instances whose worker is known to hold no
    task, or at least one (see ``autoscaler.idle``).
    """
    notes: list[str] = []
    stuck = [i for i in instances if _stuck(i, now, settings)]
    terminate = [i.id for i in stuck]
    if stuck:
        notes.append(f"replacing {len(stuck)} stuck pending instance(s)")
    stuck_ids = set(terminate)
    active = [i for i in instances if i.active and i.id not in stuck_ids]
    stopped = sorted((i for i in instances if i.state == "stopped"), key=lambda i: i.slot)
    stopping = sum(i.state == "stopping" for i in instances)

    start: list[str] = []
    stop: list[str] = []
    launch = 0
    if desired > len(active):
        need = desired - len(active)
        start = [i.id for i in stopped[:need]]
        stopped = stopped[len(start):]
        launch = need - len(start)
    elif desired < len(active):
        excess = len(active) - desired
        candidates = [i for i in active if i.state == "running"
                      and now - i.since >= settings.min_run_s]
        kept_young = sum(1 for i in active if i.state == "running"
                         and now - i.since < settings.min_run_s)
        if kept_young:
            notes.append(f"keeping {kept_young} instance(s) younger than "
                         f"{settings.min_run_s:g}s (already billed)")
        victims = scale_in_order(candidates, idle or frozenset(), busy or frozenset())[:excess]
        room = max(0, settings.warm_pool_size - len(stopped) - stopping)
        stop = [i.id for i in victims[:room]]
        terminate += [i.id for i in victims[room:]]
    surplus = len(stopped) - settings.warm_pool_size
    if surplus > 0:
        terminate += [i.id for i in stopped[-surplus:]]
        notes.append(f"warm pool above {settings.warm_pool_size}: terminating {surplus}")
    return Actions(tuple(start), launch, tuple(stop), tuple(terminate), tuple(notes))

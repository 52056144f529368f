"""The fleet interface: what the controller can see and do with worker instances.

One small Protocol (like kombu's virtual transport) with an EC2 back end
(``autoscaler.ec2``) and an in-memory one (``autoscaler.memory``) for unit tests and
the simulator. Instances live in numbered *slots* 1..max; the ``Name`` tag is
``<prefix><slot>``. A slot holds at most one live instance, so counting slots bounds
the fleet by construction.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# EC2 instance states, grouped by what they mean for capacity.
ACTIVE_STATES = frozenset({"pending", "running"})      # capacity (booting or serving)
WARM_STATES = frozenset({"stopped"})                    # warm pool: startable
LEAVING_STATES = frozenset({"stopping", "shutting-down"})
GONE_STATES = frozenset({"terminated"})
SLOT_STATES = ACTIVE_STATES | WARM_STATES | LEAVING_STATES  # states that occupy a slot


@dataclass(frozen=True)
class Instance:
    """One worker instance as the fleet sees it.

    ``since`` is the epoch second of its last launch or start (EC2's LaunchTime);
    ``origin`` is ``"launch"`` or ``"start"`` (how it last came up).
    """

    id: str
    name: str
    slot: int
    state: str
    since: float
    origin: str = "launch"

    @property
    def active(self) -> bool:
        """Pending or running: counts as capacity."""
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"id": self.id, "name": self.name, "slot": self.slot, "state": self.state,
                "since": self.since, "origin": self.origin}


@dataclass(frozen=True)
class FleetCounts:
    """Instances by what they mean to the controller."""

    running: int
    pending: int
    stopped: int
    leaving: int

    @property
    def active(self) -> int:
        """Pending + running: the fleet's size for every bound."""
        return self.running + self.pending


def count(instances: Iterable[Instance]) -> FleetCounts:
    """Group instances by state (terminated ones are ignored)."""
    states = [i.state for i in instances]
    return FleetCounts(
        running=states.count("running"),
        pending=states.count("pending"),
        stopped=sum(s in WARM_STATES for s in states),
        leaving=sum(s in LEAVING_STATES for s in states),
    )


def free_slots(instances: Iterable[Instance], max_instances: int) -> list[int]:
    """Slots 1..max that no live instance occupies, lowest first."""
    taken = {i.slot for i in instances if i.state in SLOT_STATES}
    return [s for s in range(1, max_instances + 1) if s not in taken]


class Fleet(Protocol):
    """Worker instances of one role. Every method is safe to retry."""

    def list(self) -> list[Instance]:
        """Our instances that are not terminated, by slot."""
        ...

    def launch(self, n: int) -> builtins.list[Instance]:
        """Run up to ``n`` new instances in the lowest free slots, never exceeding the
        maximum number of slots; returns the instances launched (possibly fewer)."""
        ...

    def start(self, ids: Sequence[str]) -> None:
        """Start stopped instances (the warm pool)."""
        ...

    def stop(self, ids: Sequence[str]) -> None:
        """Stop instances (the OS shuts down: the worker gets SIGTERM, a warm shutdown)."""
        ...

    def terminate(self, ids: Sequence[str]) -> None:
        """Terminate instances for good."""
        ...

"""In-memory fleet: the Fleet Protocol without EC2, for unit tests of the controller.

Launched and started instances are ``pending`` until ``settle()`` (or at once with
``instant=True``); stopping and terminating are immediate. Thread-safe.
"""

from __future__ import annotations

import builtins
import itertools
import threading
import time
from collections.abc import Callable, Sequence

from autoscaler.errors import FleetError
from autoscaler.fleet import Instance, free_slots


class MemoryFleet:
    """A fleet of ``max_instances`` slots held in a dict."""

    def __init__(self, max_instances: int, name_prefix: str = "app-tier-instance-",
                 clock: Callable[[], float] = time.time, instant: bool = True) -> None:
        self.max_instances = max_instances
        self.name_prefix = name_prefix
        self.clock = clock
        self.instant = instant
        self.instances: dict[str, Instance] = {}
        self.calls: list[tuple[str, tuple[str, ...] | int]] = []
        self.fail_next: str | None = None  # name of a method whose next call fails
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _check_fail(self, method: str) -> None:
        if self.fail_next == method:
            self.fail_next = None
            raise FleetError(f"injected failure in {method}")

    def _set(self, ids: Sequence[str], state: str, origin: str | None = None) -> None:
        for i in ids:
            inst = self.instances.get(i)
            if inst is None:
                raise FleetError(f"no instance {i}")
            since = self.clock() if origin else inst.since
            self.instances[i] = Instance(inst.id, inst.name, inst.slot, state, since,
                                         origin or inst.origin)

    def list(self) -> list[Instance]:
        """Instances that are not terminated, by slot."""
        with self._lock:
            self._check_fail("list")
            live = [i for i in self.instances.values() if i.state != "terminated"]
            return sorted(live, key=lambda i: i.slot)

    def launch(self, n: int) -> builtins.list[Instance]:
        """Launch up to ``n`` instances in the lowest free slots."""
        with self._lock:
            self._check_fail("launch")
            self.calls.append(("launch", n))
            slots = free_slots(self.instances.values(), self.max_instances)[:max(n, 0)]
            state = "running" if self.instant else "pending"
            made = []
            for slot in slots:
                inst = Instance(f"i-{next(self._ids):017x}", f"{self.name_prefix}{slot}", slot,
                                state, self.clock(), "launch")
                self.instances[inst.id] = inst
                made.append(inst)
            return made

    def start(self, ids: Sequence[str]) -> None:
        """Start stopped instances."""
        with self._lock:
            self._check_fail("start")
            self.calls.append(("start", tuple(ids)))
            self._set(ids, "running" if self.instant else "pending", origin="start")

    def stop(self, ids: Sequence[str]) -> None:
        """Stop instances."""
        with self._lock:
            self._check_fail("stop")
            self.calls.append(("stop", tuple(ids)))
            self._set(ids, "stopped")

    def terminate(self, ids: Sequence[str]) -> None:
        """Terminate instances."""
        with self._lock:
            self._check_fail("terminate")
            self.calls.append(("terminate", tuple(ids)))
            self._set(ids, "terminated")

    def settle(self) -> None:
        """Move every pending instance to running (the boot finished)."""
        with self._lock:
            for inst in list(self.instances.values()):
                if inst.state == "pending":
                    self._set([inst.id], "running")

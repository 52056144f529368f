"""Which workers hold a task: the input of the scale-in choice (docs/autoscaler.md).

An instance is stopped only when its worker holds no task, or after a warm shutdown
that lets the task in hand finish. So when some instances must go, the controller asks
the workers (``celery inspect active`` over the SQS+SNS monitoring transport) and
:func:`autoscaler.plan.plan` stops the idle ones first, then the ones that did not
answer, and a busy one only when nothing else is left (its worker then gets a warm
shutdown; SQS redelivery is the backstop).

A solo-pool worker answers remote-control requests only between tasks, so a worker in
the middle of a task usually does not reply at all: silence ranks after idle, never
before it. The reply → activity step is pure (:func:`activity_from_replies`); the
Celery call sits in :class:`CeleryActivityProbe`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.fleet import Instance

log = logging.getLogger("facefleet.autoscaler")


@dataclass(frozen=True)
class Activity:
    """Instance names whose worker answered with no task (``idle``) or with at least one
    (``busy``); instances in neither did not answer in time."""

    idle: frozenset[str] = frozenset()
    busy: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form (sorted names)."""
        return {"idle": sorted(self.idle), "busy": sorted(self.busy)}


def instance_of(hostname: str) -> str:
    """The instance name in a worker hostname ``<instance name>@<host>``."""
    return hostname.split("@", 1)[0]


def activity_from_replies(replies: Mapping[str, Any], instances: Iterable[Instance]
                          ) -> Activity:
    """Fold ``inspect().active()`` replies (hostname → list of tasks) into an Activity for
    ``instances``. Replies from workers of other instances are ignored; when two workers
    answer for one instance (a restarted instance while its old worker still drains),
    busy wins.
    """
    names = {i.name for i in instances}
    idle: set[str] = set()
    busy: set[str] = set()
    for hostname, tasks in replies.items():
        name = instance_of(str(hostname))
        if name not in names:
            continue
        # A malformed reply is not proof of idleness: only an empty list is.
        if isinstance(tasks, list) and not tasks:
            idle.add(name)
        else:
            busy.add(name)
    return Activity(frozenset(idle - busy), frozenset(busy))


class CeleryActivityProbe:
    """Asks the workers of running instances what they hold (one ``inspect active``).

    ``hostname`` is the ``%h`` part of the workers' names when it is known (embedded
    mode: they run on this machine): the request is then addressed to exactly those
    workers and returns as soon as all of them answered. Otherwise it is broadcast and
    waits ``timeout`` seconds. Any failure gives None: the plan falls back to slots.
    """

    def __init__(self, app: Any, timeout: float = 0.3, hostname: str | None = None) -> None:
        self.app = app
        self.timeout = timeout
        self.hostname = hostname
        self._warm: threading.Thread | None = None

    @classmethod
    def embedded(cls, app: Any, timeout: float = 0.3) -> CeleryActivityProbe:
        """A probe for workers named ``<instance>@<this host>`` (the embedded runner's)."""
        return cls(app, timeout, socket.gethostname())

    def warm(self) -> None:
        """One broadcast ahead of need, in the background: the first broadcast of a
        process gets no replies at all over the monitoring transport (its reply queue is
        still being set up), the ones after it answer promptly. Until it is done the
        probe answers None (the plan falls back to slots) rather than stall a tick, and
        the Celery app is never used from two threads at once."""
        def ping() -> None:
            try:
                self.app.control.ping(timeout=self.timeout)
            except Exception as err:  # any transport error: the first real call pays
                log.info("activity probe not warmed: %s", err)

        self._warm = threading.Thread(target=ping, name="probe-warm", daemon=True)
        self._warm.start()

    def __call__(self, instances: list[Instance]) -> Activity | None:
        """The activity of the running instances' workers, or None when unknown."""
        running = [i for i in instances if i.state == "running"]
        if not running:
            return Activity()
        if self._warm is not None and self._warm.is_alive():
            return None
        destination = None
        limit = None
        if self.hostname is not None:
            destination = [f"{i.name}@{self.hostname}" for i in running]
            limit = len(destination)
        replies = None
        # No reply at all is what a lost broadcast looks like (a reply queue just set
        # up): ask once more before falling back to slots.
        for _ in range(2):
            try:
                replies = self.app.control.inspect(destination=destination,
                                                   timeout=self.timeout, limit=limit).active()
            except Exception as err:  # any transport error: fall back to slots
                log.warning("cannot ask the workers what they hold: %s", err)
                return None
            if replies:
                break
        return activity_from_replies(replies or {}, running)

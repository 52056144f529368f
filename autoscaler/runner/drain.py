"""Drain a worker before it exits, so no message is lost to an abandoned long poll.

An idle worker always has a ReceiveMessage long poll open (up to
``FACEFLEET_SQS_WAIT_TIME`` seconds). If the worker exits while it is open, the queue
still hands the next message to that poll: the message goes in flight to a client
that is gone and stays invisible for the whole visibility timeout, so its request
times out. A scale-in during a burst hits exactly that.

So the runner ends a worker like an instance's shutdown script would: first
``celery control cancel_consumer <queue>`` for that worker only (kombu then releases,
with visibility 0, whatever an open poll still returns), then, once any open poll has
returned (the SQS wait plus a margin), SIGTERM for Celery's warm shutdown.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from copy import copy
from typing import Any

log = logging.getLogger("facefleet.runner")


class CeleryDrainer:
    """Tells the workers of some instances to stop consuming the request queue."""

    def __init__(self, app: Any, queue: str, hostname: str | None = None) -> None:
        self.app = app
        self.queue = queue
        self.hostname = hostname or socket.gethostname()

    def __call__(self, names: Sequence[str]) -> bool:
        """Broadcast ``cancel_consumer`` to ``<name>@<host>`` for each of ``names`` (one
        message, no reply awaited). False when it could not be sent (never raises:
        the workers are then warm-shut at once, the poll window just stays open)."""
        if not names:
            return True
        try:
            # A connection of its own and no producer pool, both closed before this
            # returns: the runner forks workers, and a child must not inherit a pool
            # it would then share with its parent.
            mailbox = copy(self.app.control.mailbox)
            mailbox.producer_pool = None
            with self.app.connection_for_write() as conn:
                mailbox(conn)._broadcast(
                    "cancel_consumer", {"queue": self.queue},
                    destination=[f"{n}@{self.hostname}" for n in names], reply=False)
        except Exception as err:  # any transport failure: fall back to the warm shutdown
            log.warning("could not ask %s to stop consuming: %s", ", ".join(names), err)
            return False
        return True

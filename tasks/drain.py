"""How a worker leaves without losing a message: drained first, then a warm shutdown.

An idle worker always has a ReceiveMessage long poll open (up to
``FACEFLEET_SQS_WAIT_TIME`` seconds). If the worker exits while it is open, the queue
still hands the next message to that poll: the message goes in flight to a client
that is gone and stays invisible for the whole visibility timeout, so its request
times out. A scale-in during a burst hits exactly that.

So a leaving worker is first told ``celery control cancel_consumer <queue>`` (that
worker only; whatever an open poll still returns, it takes as tasks: see
``Channel._release_messages`` in tasks/transport), and only once any open poll has
returned (:func:`drain_seconds`: the SQS wait plus a margin) gets SIGTERM, Celery's
warm shutdown: the tasks in hand finish and are acknowledged, and any it holds but
never started are given back (tasks/visibility.py).

One implementation for both places a worker leaves: the embedded runner drains its
forked workers with :class:`CeleryDrainer`, and an instance's worker unit runs
``python -m deploy.node drain`` as its ``ExecStop`` (:func:`drain_node`), after which
systemd sends the SIGTERM.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from copy import copy
from typing import Any

from config.serving import ServingSettings

log = logging.getLogger("facefleet.drain")


def drain_seconds(serving: ServingSettings, override: float | None = None) -> float:
    """How long after the drain message a worker may still receive: an open long poll
    returns within the SQS wait; ``override`` (a setting) wins when given."""
    return serving.wait_time_seconds + 1.0 if override is None else override


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


def drain_node(app: Any, queue: str, name: str, hostname: str, wait_s: float,
               sleep: Callable[[float], None] = time.sleep) -> bool:
    """Drain the worker ``<name>@<hostname>`` and wait out its open long poll; True when
    the drain message went out (the caller then warm-shuts the worker either way)."""
    sent = CeleryDrainer(app, queue, hostname)([name])
    if sent:
        log.info("draining %s@%s: waiting %.1f s for an open long poll", name, hostname,
                 wait_s)
        sleep(wait_s)
    return sent

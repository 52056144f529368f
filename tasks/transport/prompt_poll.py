"""Long-poll again the moment a prefetch slot frees: no timer delay, no re-check churn.

Why a finished task's next request could wait up to a second, with prefork and with
solo alike (the figures: docs/benchmarks.md):

- Celery defers a task's ack with ``hub.call_soon(message.ack_log_error)``;
- kombu's asynchronous SQS consumer, while every prefetch slot is held, re-checks the
  queue with ``hub.call_soon(_schedule_queue)`` (``_loop1`` with ``polling_interval``
  0), so the ack and the re-check run in the same batch of ready callbacks, in the
  order of a ``set``;
- kombu's event loop (``Hub.create_loop``) runs that batch, then polls with a timeout
  from its timers only: a callback queued *by the loop thread during the batch* does
  not shorten that poll (``call_soon`` wakes the loop only from other threads).

So when the re-check happened to run before the ack, it saw the slot still held and
queued itself again; the ack then freed the slot, and the loop slept in ``poll`` until
the next timer (the curl client's 1 s tick) before asking SQS for the next message.
Parking the queue and resuming it from ``basic_ack`` with ``call_soon`` (tried before)
is worse: the resume always lands after the batch, so every pick-up waits.

:class:`PromptConsumeMixin` parks a queue whose slots are all held (no re-check per
loop turn, so a busy prefork parent costs no CPU) and resumes it where a slot is
released (``basic_ack``, ``basic_reject``, a larger ``basic_qos``) through a timer due
now: the loop fires due timers after the ready batch and before it polls, so the next
ReceiveMessage goes out in the same loop turn as the ack. A resume from another thread
(the threads pool) uses ``call_soon``, which does wake the loop. A fallback timer
re-checks a parked queue after ``PARK_FALLBACK_S`` in case capacity frees some other
way (kombu's own ``polling_interval`` behaviour).
"""

from __future__ import annotations

import threading
from typing import Any

#: Seconds after which a parked queue is re-checked even without an ack (a safety net).
PARK_FALLBACK_S = 1.0


class PromptConsumeMixin:
    """Mixin for kombu's SQS ``Channel`` (put it before ``SQS.Channel`` in the bases)."""

    _parked: set[str] | None = None
    _park_timer: Any = None

    # kombu's SQS.Channel provides these.
    hub: Any
    qos: Any
    closed: bool
    _active_queues: list[str]

    def _schedule_queue(self, queue: str) -> None:
        if queue in self._active_queues and not self.qos.can_consume():
            self._park(queue)
            return
        super()._schedule_queue(queue)  # type: ignore[misc]

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> Any:
        try:
            return super().basic_ack(delivery_tag, multiple)  # type: ignore[misc]
        finally:
            self._resume_soon()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> Any:
        try:
            return super().basic_reject(delivery_tag, requeue)  # type: ignore[misc]
        finally:
            self._resume_soon()

    def basic_qos(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().basic_qos(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._resume_soon()

    # -- parking ---------------------------------------------------------------------------
    def _park(self, queue: str) -> None:
        if self._parked is None:
            self._parked = set()
        self._parked.add(queue)
        if self._park_timer is None and self.hub is not None:
            self._park_timer = self.hub.call_later(PARK_FALLBACK_S, self._fallback)

    def _fallback(self) -> None:
        self._park_timer = None
        self._resume()
        if self._parked and not self.closed and self.hub is not None:
            self._park_timer = self.hub.call_later(PARK_FALLBACK_S, self._fallback)

    def _resume_soon(self) -> None:
        """Resume parked queues before the event loop next sleeps in ``poll``."""
        if not self._parked or self.hub is None or not self.qos.can_consume():
            return
        loop_thread = getattr(self.hub, "_loop_thread", None)
        if loop_thread is not None and threading.get_ident() != loop_thread:
            self.hub.call_soon(self._resume)  # wakes the loop from another thread
        else:
            # On the loop thread (where Celery runs acks): a timer due now fires after
            # the current batch of ready callbacks and before the poll; a call_soon
            # from this thread would wait out that poll.
            self.hub.call_later(0, self._resume)

    def _resume(self) -> None:
        parked = self._parked
        if not parked or self.closed or not self.qos.can_consume():
            return  # still busy: stays parked (an ack resumes it, or the fallback)
        self._parked = set()
        if self._park_timer is not None:
            self._park_timer.cancel()
            self._park_timer = None
        for queue in parked:
            self._schedule_queue(queue)

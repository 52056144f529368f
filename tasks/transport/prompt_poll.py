"""Poll again the moment a prefetch slot frees, instead of on a timer.

kombu's asynchronous SQS consumer, when every prefetch slot is held (a worker busy with
its one task), re-checks on a timer: ``_loop1`` schedules ``_schedule_queue`` after
``polling_interval`` seconds, or with ``call_soon`` when the interval is 0. With an
interval the next ReceiveMessage after a task starts up to that long late (measured
here: 2–5 requests in 15 waited 0.6–0.9 s for pick-up at 1 s); at 0 the worker's event
loop spins on a core for the whole task, which on a 2-core machine halves the
recognizer's throughput.

:class:`CapacityWakeMixin` parks a busy queue instead and resumes it from
``basic_ack`` / ``basic_reject``, the points where a slot is released, so an idle
worker is long-polling again within the same loop iteration and a busy one costs no
CPU. Acks run on the event loop thread for the solo and prefork pools facefleet uses.
"""

from __future__ import annotations

from typing import Any


class CapacityWakeMixin:
    """Mixin for kombu's SQS ``Channel`` (put it before ``SQS.Channel`` in the bases)."""

    _awaiting_capacity: set[str] | None = None

    def _schedule_queue(self, queue: str) -> None:
        if queue in self._active_queues and not self.qos.can_consume():
            # Busy: park the queue; _wake_for_capacity resumes it when a slot frees.
            if self._awaiting_capacity is None:
                self._awaiting_capacity = set()
            self._awaiting_capacity.add(queue)
            return
        super()._schedule_queue(queue)  # type: ignore[misc]

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> Any:
        try:
            return super().basic_ack(delivery_tag, multiple)  # type: ignore[misc]
        finally:
            self._wake_for_capacity()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> Any:
        try:
            return super().basic_reject(delivery_tag, requeue)  # type: ignore[misc]
        finally:
            self._wake_for_capacity()

    def _wake_for_capacity(self) -> None:
        parked = self._awaiting_capacity
        if not parked or self.hub is None or not self.qos.can_consume():
            return
        self._awaiting_capacity = set()
        for queue in parked:
            self.hub.call_soon(self._schedule_queue, queue)

"""A task message whose body cannot be decoded goes to the dead-letter queue, not away.

Celery's consumer logs such a message (content type allowed, body not valid JSON) and
acks it: SQS deletes it, and the only trace is a log line. This consumer step rejects
it instead, without requeue: with the queue's redrive policy SQS keeps it, redelivers
it (refused again each time) and moves it to the dead-letter queue after
``max_receives`` tries, where it can be inspected. Disallowed content types (pickle,
YAML) already take that path in Celery (``on_invalid_task``) and are never decoded.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)


class UndecodableToDeadLetter(bootsteps.Step):  # type: ignore[misc]
    """Consumer step: replace ``on_decode_error``'s ack with a reject (no requeue)."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        # Set before the Tasks step starts: its handler looks the method up per message.
        def on_decode_error(message: Any, exc: Exception) -> None:
            log.critical("refused a message whose body cannot be decoded (%s; content type "
                         "%r, headers %.300r); it is rejected and will reach the dead-letter "
                         "queue", exc, message.content_type, message.headers)
            message.reject_log_error(log, consumer.connection_errors)

        consumer.on_decode_error = on_decode_error

"""Coalesce fanout publishes (Celery events) into SNS ``PublishBatch`` requests.

Celery's own event buffering (``buffer_group=['task']`` in the worker) flushes on the
next event-loop turn, so on SQS every event would still be one SNS ``Publish``. Here
messages for the same topic wait at most ``interval`` seconds and leave in one
``PublishBatch`` of up to 10 entries (256 KiB in all), which SNS bills like a single
publish of that size. Each entry still arrives as its own SQS message, so listeners
need nothing new. A daemon thread sends the batches; ``close`` sends what is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.transport.registry import is_missing_queue_error

logger = logging.getLogger(__name__)

#: SNS PublishBatch limits.
MAX_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024


@dataclass
class _Pending:
    first_at: float
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    size: int = 0


class FanoutBatcher:
    """Per-topic batches of SNS messages, sent when full or ``interval`` old."""

    def __init__(self, sns: Any, interval: float,
                 on_dangling: Callable[[str], object] | None = None) -> None:
        self.sns = sns
        self.interval = interval
        self.on_dangling = on_dangling
        self.sent_requests = 0
        self.sent_messages = 0
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="facefleet-event-batcher",
                                        daemon=True)
        self._thread.start()

    def add(self, topic_arn: str, message: str, attributes: dict[str, Any] | None = None) -> None:
        """Queue ``message`` for ``topic_arn``; a full batch is sent at once."""
        size = len(message.encode()) + sum(len(k) + len(str(v)) for k, v in
                                           (attributes or {}).items())
        full: tuple[str, _Pending] | None = None
        with self._cond:
            if self._closed:
                full = (topic_arn, _Pending(time.monotonic(), [(message, attributes or {})], size))
            else:
                pending = self._pending.get(topic_arn)
                if pending is not None and pending.size + size > MAX_BATCH_BYTES:
                    full = (topic_arn, self._pending.pop(topic_arn))
                    pending = None
                if pending is None:
                    pending = self._pending[topic_arn] = _Pending(time.monotonic())
                pending.entries.append((message, attributes or {}))
                pending.size += size
                if len(pending.entries) >= MAX_ENTRIES and full is None:
                    full = (topic_arn, self._pending.pop(topic_arn))
                self._cond.notify()
        if full is not None:
            self._send(*full)

    def flush(self) -> None:
        """Send every pending batch now (in the caller's thread)."""
        with self._cond:
            pending, self._pending = self._pending, {}
        for topic_arn, batch in pending.items():
            self._send(topic_arn, batch)

    def close(self) -> None:
        """Send what is pending and stop the thread; later adds are sent immediately."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self.flush()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            due: list[tuple[str, _Pending]] = []
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                wait = None
                for topic_arn, batch in list(self._pending.items()):
                    age = now - batch.first_at
                    if age >= self.interval:
                        due.append((topic_arn, self._pending.pop(topic_arn)))
                    else:
                        left = self.interval - age
                        wait = left if wait is None else min(wait, left)
                if not due:
                    self._cond.wait(wait)
                    continue
            for topic_arn, batch in due:
                self._send(topic_arn, batch)

    def _send(self, topic_arn: str, batch: _Pending) -> None:
        entries = []
        for i, (message, attributes) in enumerate(batch.entries):
            entry: dict[str, Any] = {"Id": str(i), "Message": message}
            if attributes:
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        for attempt in (1, 2):
            try:
                resp = self.sns.publish_batch(TopicArn=topic_arn,
                                              PublishBatchRequestEntries=entries)
            except (ClientError, BotoCoreError) as exc:
                # moto fails the whole publish when one subscribed queue is gone (AWS
                # just skips it): drop dangling subscriptions, then try once more.
                if attempt == 1 and self.on_dangling is not None and is_missing_queue_error(exc):
                    self.on_dangling(topic_arn)
                    continue
                logger.warning("dropped %d event(s) for %s: %s", len(entries), topic_arn, exc)
                return
            self.sent_requests += 1
            self.sent_messages += len(entries) - len(resp.get("Failed", []))
            for failed in resp.get("Failed", []):
                logger.warning("SNS refused event %s for %s: %s", failed.get("Id"), topic_arn,
                               failed.get("Message"))
            return

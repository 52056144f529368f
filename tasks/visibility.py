"""Visibility extension: a worker keeps every SQS message it holds hidden, in short steps.

A received SQS message stays invisible for the queue's visibility timeout. With one
long timeout (it had to outlive the longest task), a worker that dies while holding a
message -- SIGKILL, a terminated instance, a spot reclaim -- hides that message for
the whole timeout, and its client times out long before anyone runs it again. So the
queue's timeout is short (``FACEFLEET_VISIBILITY_TIMEOUT``, 30 s) and the worker's main
process extends the messages it holds -- running *and* prefetched, i.e. Celery's
``reserved_requests`` -- with ``ChangeMessageVisibilityBatch`` every
``FACEFLEET_VISIBILITY_EXTEND_EVERY`` seconds (a third of the timeout). Extension stops
when the task ends (Celery removes it from ``reserved_requests``); a worker that dies
stops extending, and its messages come back within one timeout. A task that runs
longer than the timeout is still extended, so it never runs twice at once.

Why our own: kombu's SQS transport receives with one ``VisibilityTimeout`` and never
changes it, and Celery has no hook for it (the same heartbeat exists in sqs-consumer,
Shoryuken's auto_visibility_timeout and ZIO SQS, not in kombu or Celery). It is a
consumer bootstep, so ``celery worker`` and the embedded runner both get it.

A worker that cannot extend (endpoint down) says so in its log, once per outage and
when it recovers, and counts each failed call; the counts go out as a
``worker-visibility`` Celery event (monitoring on) at once when the failure count
changes and every :data:`REPORT_EVERY_S` while any count is non-zero. The dashboard
shows them and the web tier exports them as Prometheus counters
(``facefleet_worker_visibility_{extensions,failures}_total``, webapp/metrics.py).

The bookkeeping (:class:`Ledger`) is pure; :class:`VisibilityKeeper` is the thread
that reads Celery's state and talks to SQS.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from celery import bootsteps
from celery.worker import state as worker_state

from config.aws import sqs_client

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

log = logging.getLogger("facefleet.visibility")

#: Held by the keeper while it reads what the worker holds and extends it, and by
#: whoever releases a message for redelivery (tasks.lifecycle): an extension can never
#: land after a release and hide the released message again.
LOCK = threading.Lock()

#: SQS answers these for a receipt whose message was deleted (acked) or released.
GONE_CODES = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight",
                        "AWS.SimpleQueueService.MessageNotInflight", "InvalidParameterValue"})

#: ChangeMessageVisibilityBatch takes at most ten entries.
BATCH = 10

#: The counts are sent again at least this often (s) while any is non-zero, changed or
#: not. Events reach only the listeners that exist when they are sent, and the web
#: tier's listener starts on demand (a dashboard viewer, a /metrics scrape), one per
#: gunicorn process: without this, a listener started after a worker's last change
#: would never learn its counts, and the extension count would move only when a
#: failure does. Cost: one SNS publish a minute per worker that ever extended.
REPORT_EVERY_S = 60.0


@dataclass(frozen=True)
class HeldMessage:
    """One message this worker holds: where it came from and how to extend it."""

    queue_url: str
    receipt: str
    task_id: str


@dataclass
class Ledger:
    """When each held message is next due for an extension (pure; the clock is given).

    A message first seen at ``now`` was received at most one tick earlier, so its first
    extension is due ``every - tick`` later; after each successful extension, ``every``
    later. A failed one stays due and is tried again at the next tick.
    """

    every: float
    tick: float
    due_at: dict[str, float] = field(default_factory=dict)
    extended: int = 0
    failed: int = 0

    def sync(self, held: Iterable[HeldMessage], now: float) -> list[HeldMessage]:
        """Forget messages no longer held, learn new ones; return those due now."""
        current = {m.receipt: m for m in held}
        for receipt in list(self.due_at):
            if receipt not in current:
                del self.due_at[receipt]
        for receipt in current:
            self.due_at.setdefault(receipt, now + max(0.0, self.every - self.tick))
        return [m for r, m in current.items() if self.due_at[r] <= now]

    def done(self, receipts: Iterable[str], now: float) -> None:
        """These were extended at ``now``."""
        for receipt in receipts:
            if receipt in self.due_at:
                self.due_at[receipt] = now + self.every
                self.extended += 1

    def gone(self, receipts: Iterable[str]) -> None:
        """These are no longer in flight (acked or released meanwhile): stop."""
        for receipt in receipts:
            self.due_at.pop(receipt, None)

    def fail(self, count: int) -> None:
        self.failed += count


def held_message(request: Any) -> HeldMessage | None:
    """The SQS message behind a Celery request, or None (another broker, no receipt)."""
    message = getattr(request, "_message", None) or getattr(request, "message", None)
    info = getattr(message, "delivery_info", None) or {}
    sqs_message = info.get("sqs_message") or {}
    queue_url, receipt = info.get("sqs_queue"), sqs_message.get("ReceiptHandle")
    if not (queue_url and receipt):
        return None
    return HeldMessage(str(queue_url), str(receipt), str(getattr(request, "id", "")))


def reserved_messages() -> list[HeldMessage]:
    """What this worker holds now: every reserved request (prefetched or running)."""
    for _ in range(3):
        try:
            # tuple() copies the set in C while holding the GIL; it can only fail if the
            # set is resized mid-copy, which the retry covers.
            requests = tuple(worker_state.reserved_requests)
            break
        except RuntimeError:
            continue
    else:
        return []
    return [m for m in map(held_message, requests) if m is not None]


def batches(messages: list[HeldMessage]) -> Iterable[tuple[str, list[HeldMessage]]]:
    """``messages`` grouped by queue, ten at most per group (one batch call each)."""
    by_queue: dict[str, list[HeldMessage]] = {}
    for message in messages:
        by_queue.setdefault(message.queue_url, []).append(message)
    for queue_url, group in by_queue.items():
        for start in range(0, len(group), BATCH):
            yield queue_url, group[start:start + BATCH]


def entries(group: list[HeldMessage], timeout: int
            ) -> list[ChangeMessageVisibilityBatchRequestEntryTypeDef]:
    """One batch call's entries: each message hidden for ``timeout`` s from now."""
    return [{"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": timeout}
            for i, m in enumerate(group)]


class VisibilityKeeper:
    """The thread that extends what the worker holds (see the module doc)."""

    def __init__(self, sqs: SQSClient, timeout: int, every: float, *,
                 held: Callable[[], list[HeldMessage]] = reserved_messages,
                 report: Callable[[Mapping[str, Any]], None] | None = None,
                 report_every: float = REPORT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sqs = sqs
        self.timeout = timeout
        self.ledger = Ledger(every=every, tick=min(1.0, every / 4))
        self.held = held
        self.report = report
        self.report_every = report_every
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._reported_failed = 0
        self._reported_at = -math.inf

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="facefleet-visibility",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.ledger.tick):
            try:
                self.tick()
            except Exception:  # never let the keeper die: log and go on
                log.exception("visibility extension failed unexpectedly")

    def tick(self) -> None:
        """One pass: extend every held message that is due."""
        with LOCK:
            due = self.ledger.sync(self.held(), self.clock())
            for queue_url, group in batches(due):
                self._extend(queue_url, group)
        self._maybe_report()

    def _extend(self, queue_url: str, group: list[HeldMessage]) -> None:
        try:
            answer = self.sqs.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=entries(group, self.timeout))
        except (BotoCoreError, ClientError) as exc:
            self.ledger.fail(len(group))
            if not self._failing:
                log.warning("cannot extend the visibility of %d held message(s) (%s): if "
                            "this lasts %d s they are delivered again while still held",
                            len(group), exc, self.timeout)
            self._failing = True
            return
        now = self.clock()
        failed = {int(f["Id"]): f for f in answer.get("Failed", [])}
        self.ledger.done((m.receipt for i, m in enumerate(group) if i not in failed), now)
        self.ledger.gone(group[i].receipt for i, f in failed.items()
                         if f.get("Code") in GONE_CODES)
        other = [f for f in failed.values() if f.get("Code") not in GONE_CODES]
        if other:
            self.ledger.fail(len(other))
            log.warning("SQS refused to extend %d message(s): %s", len(other),
                        "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in other))
        elif self._failing:
            log.warning("visibility extension works again (%d failed call entries so far)",
                        self.ledger.failed)
            self._failing = False

    def _maybe_report(self) -> None:
        # At once when the failure count changed (what an operator must see), else at
        # most every report_every s and only once something was counted: never one event
        # per tick. The counts are cumulative, so a lost event is repaired by the next.
        if self.report is None:
            return
        now = self.clock()
        failures_changed = self.ledger.failed != self._reported_failed
        counted = self.ledger.extended or self.ledger.failed
        if not (failures_changed or (counted and now - self._reported_at >= self.report_every)):
            return
        try:
            self.report({"extended": self.ledger.extended, "failed": self.ledger.failed,
                         "held": len(self.ledger.due_at)})
            self._reported_failed = self.ledger.failed
            self._reported_at = now
        except Exception as exc:  # the endpoint may still be down: try again next tick
            log.debug("could not report visibility counts: %s", exc)


class VisibilityStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: run a :class:`VisibilityKeeper` while the worker consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.keeper: VisibilityKeeper | None = None

    def start(self, parent: Any) -> None:
        app = parent.app
        settings, serving = app.facefleet_settings, app.facefleet_serving
        if serving.visibility_extend_every <= 0:
            return
        self.keeper = VisibilityKeeper(
            sqs_client(settings, "heartbeat"), serving.visibility_timeout,
            serving.visibility_extend_every, report=_event_reporter(app, parent.hostname))
        self.keeper.start()

    def stop(self, parent: Any) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None

    shutdown = stop


def _event_reporter(app: Any, hostname: str) -> Callable[[Mapping[str, Any]], None] | None:
    """Send the counts as a ``worker-visibility`` event, over a connection of its own
    (the consumer's event dispatcher belongs to the worker's event loop thread).

    None without broadcast (monitoring off: plain SQS has no event exchange). It is a
    worker event, like a heartbeat, so it does not wait for task events:
    ``FACEFLEET_TASK_EVENTS=false`` keeps both, and the failures metric with them."""
    if not (app.conf.broker_transport_options or {}).get("supports_fanout"):
        return None

    def report(counts: Mapping[str, Any]) -> None:
        with app.connection_for_write() as conn:
            dispatcher = app.events.Dispatcher(conn, hostname=hostname, enabled=True)
            try:
                dispatcher.send("worker-visibility", **counts)
            finally:
                dispatcher.close()

    return report


#: What the worker held when it was told to shut down (see note_held).
HELD_AT_STOP: list[HeldMessage] = []


def note_held() -> None:
    """Remember what the worker holds now; called when a shutdown begins, before the
    consumer closes -- Celery then forgets its reserved requests, and the pool discards
    those it never started (they are "redelivered by the broker", i.e. after the
    visibility timeout). :func:`release_unstarted` gives them back at the end."""
    HELD_AT_STOP[:] = reserved_messages()


def release_unstarted(sqs: SQSClient) -> int:
    """At the end of a shutdown, once the pool has finished: make the messages held
    when consuming stopped visible again now, instead of after the timeout. Those whose
    task ran were acknowledged (deleted) meanwhile, and SQS refuses them; the rest --
    prefetched and never started, or killed by a cold shutdown -- go to another worker
    at once. Returns how many were released."""
    released = 0
    with LOCK:
        for queue_url, group in batches(HELD_AT_STOP):
            try:
                answer = sqs.change_message_visibility_batch(QueueUrl=queue_url,
                                                             Entries=entries(group, 0))
            except (BotoCoreError, ClientError) as exc:
                log.warning("could not release %d prefetched message(s): %s", len(group),
                            exc)
                continue
            released += len(group) - len(answer.get("Failed", []))
        HELD_AT_STOP.clear()
    if released:
        log.info("released %d prefetched message(s) for other workers", released)
    return released

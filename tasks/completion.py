"""The completion signal: a per-web-process SQS reply queue that workers notify.

Celery's S3 backend can only be polled (``AsyncResult.get`` sleeps 0.5 s between
polls), which adds up to half a second to every request. Instead each client process
owns one reply queue; its name travels in the task message's headers; the worker,
after Celery has written the result to S3, sends a small message ``{"id", "state"}``
there; a background thread long-polls the queue and wakes the waiter, which then
reads the result from S3 -- S3 stays the source of truth, and a lost signal only
costs a fallback poll.

A successful task's signal also carries a copy of the result it stored (``"result"``,
when its JSON is at most ``MAX_CARRIED_RESULT_BYTES``): the waiter returns that copy
instead of reading it back from S3, one request less on the path of every answer.
The copy is sent only after Celery's S3 write returned (``after_return`` runs after
``mark_as_done``; a failed write never reaches it with SUCCESS), so it is exactly what
S3 holds; failures are always read from S3.

Reply queues are deleted when their client closes; a queue whose heartbeat tag is
older than the TTL (its process died) is removed by :func:`reap_stale_reply_queues`,
which clients and the provisioner call.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from config.autoscaler import ROLE_TAG

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

log = logging.getLogger(__name__)

#: Message header naming the reply queue URL (becomes ``task.request.facefleet_reply_to``).
REPLY_HEADER = "facefleet_reply_to"
CREATED_TAG = "facefleet:created"
HEARTBEAT_TAG = "facefleet:heartbeat"
#: Signals nobody waited for (202 flows) are forgotten after this many seconds.
UNCLAIMED_TTL = 300.0
#: Largest result JSON a signal carries (SQS takes 256 KiB); larger ones are read from S3.
MAX_CARRIED_RESULT_BYTES = 64 * 1024


def signal_body(request_id: str, state: str, result: Any = None) -> str:
    """The signal's JSON: id and state, plus ``result`` when it is a dict of a
    successful task whose JSON fits in ``MAX_CARRIED_RESULT_BYTES``."""
    plain = {"id": request_id, "state": state}
    if state == "SUCCESS" and isinstance(result, dict):
        try:
            carried = json.dumps({**plain, "result": result})
        except (TypeError, ValueError):
            carried = ""
        if carried and len(carried.encode()) <= MAX_CARRIED_RESULT_BYTES:
            return carried
    return json.dumps(plain)


def notify(sqs: SQSClient, queue_url: str | None, request_id: str, state: str,
           result: Any = None, *, prefix: str) -> bool:
    """Tell the reply queue at ``queue_url`` that ``request_id`` finished; never raises.

    ``result`` is the value just stored in S3 (carried when small, see
    :func:`signal_body`). Returns False when the signal could not be sent (queue gone,
    endpoint down): the waiter then finds the result by polling S3. The URL comes from
    the message's headers, so a queue not named with the reply ``prefix`` is never
    written to: a forged message cannot make a worker send into another queue (on AWS
    the worker's role is scoped so too).
    """
    if not queue_url:
        return False
    if not queue_url.rstrip("/").rsplit("/", 1)[-1].startswith(prefix):
        log.warning("completion signal for %s refused: %s is not a reply queue (%s*)",
                    request_id, queue_url, prefix)
        return False
    body = signal_body(request_id, state, result)
    try:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    except (BotoCoreError, ClientError) as exc:
        log.info("completion signal for %s not sent to %s: %s", request_id, queue_url, exc)
        return False
    return True


def is_stale(tags: dict[str, str], now: float, ttl: float) -> bool:
    """True when a reply queue's last heartbeat (or creation) is older than ``ttl``."""
    if tags.get(ROLE_TAG) != "reply":
        return False
    stamp = tags.get(HEARTBEAT_TAG) or tags.get(CREATED_TAG)
    try:
        last = float(stamp) if stamp is not None else 0.0
    except ValueError:
        last = 0.0
    return now - last > ttl


def reap_stale_reply_queues(sqs: SQSClient, prefix: str, ttl: float,
                            now: float | None = None) -> list[str]:
    """Delete reply queues under ``prefix`` whose owner stopped heart-beating.

    Returns the URLs deleted. Errors on single queues are logged and skipped (another
    process may be reaping the same queue).
    """
    now = time.time() if now is None else now
    deleted = []
    for url in _list_queue_urls(sqs, prefix):
        try:
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            if is_stale(tags, now, ttl):
                sqs.delete_queue(QueueUrl=url)
                deleted.append(url)
        except ClientError as exc:
            log.info("could not reap reply queue %s: %s", url, exc)
    if deleted:
        log.info("removed %d stale reply queue(s)", len(deleted))
    return deleted


def _list_queue_urls(sqs: SQSClient, prefix: str) -> Iterable[str]:
    kwargs: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
    while True:
        page = sqs.list_queues(**kwargs)
        yield from page.get("QueueUrls", [])
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


def reply_queue_name(prefix: str) -> str:
    """A unique, SQS-legal queue name for this process (host, pid, random part)."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:32]
    return f"{prefix}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"[:80]


class ReplyListener:
    """Owns one reply queue and a daemon thread that long-polls it.

    ``expect(id)`` before sending a task, then ``wait(id, timeout)``; ``close()``
    deletes the queue.
    """

    def __init__(self, sqs: SQSClient, prefix: str, wait_time_seconds: int, ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._sqs = sqs
        self._wait = max(1, min(20, wait_time_seconds))
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._unclaimed: dict[str, float] = {}
        self._results: dict[str, dict[str, Any]] = {}
        # When each signal came: a request nobody waits for (a 202 flow) is forgotten
        # after UNCLAIMED_TTL, its event and carried result with it.
        self._signalled_at: dict[str, float] = {}
        self._stop = threading.Event()
        self.name = reply_queue_name(prefix)
        now = str(int(clock()))
        self.url: str = sqs.create_queue(
            QueueName=self.name,
            # Signals are useless after a minute (SQS's minimum retention); replies to
            # a dead process then vanish by themselves.
            Attributes={"MessageRetentionPeriod": "60"},
            tags={ROLE_TAG: "reply", CREATED_TAG: now, HEARTBEAT_TAG: now},
        )["QueueUrl"]
        self._last_heartbeat = clock()
        self._thread = threading.Thread(target=self._run, name="facefleet-replies",
                                        daemon=True)
        self._thread.start()
        self.received = 0

    # ---- waiter side -------------------------------------------------------------

    def expect(self, request_id: str) -> threading.Event:
        """Register interest in ``request_id`` (call before the task is sent)."""
        with self._lock:
            event = self._events.get(request_id)
            if event is None:
                event = self._events[request_id] = threading.Event()
                if self._unclaimed.pop(request_id, None) is not None:
                    event.set()
            return event

    def expects(self, request_id: str) -> bool:
        """True when ``expect(request_id)`` was called and not yet forgotten."""
        with self._lock:
            return request_id in self._events

    def take_result(self, request_id: str) -> dict[str, Any] | None:
        """The result carried by ``request_id``'s signal (once), or None."""
        with self._lock:
            return self._results.pop(request_id, None)

    def forget(self, request_id: str) -> None:
        """Drop the registration of ``request_id`` (its waiter is done)."""
        with self._lock:
            self._events.pop(request_id, None)
            self._results.pop(request_id, None)
            self._signalled_at.pop(request_id, None)

    @property
    def alive(self) -> bool:
        """True while the listening thread runs."""
        return self._thread.is_alive() and not self._stop.is_set()

    # ---- listener thread ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=self._wait)
            except (BotoCoreError, ClientError) as exc:
                if self._stop.is_set():
                    return
                # Waiters fall back to polling S3 meanwhile; retry after a pause.
                log.warning("reply queue %s: %s; retrying in 1 s", self.name, exc)
                self._stop.wait(1.0)
                continue
            messages = response.get("Messages", [])
            if messages:
                self._deliver(messages)
            self._heartbeat()

    def _deliver(self, messages: Sequence[MessageTypeDef]) -> None:
        now = self._clock()
        with self._lock:
            for message in messages:
                try:
                    payload = json.loads(message["Body"])
                    request_id = str(payload["id"])
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed completion signal: %r",
                                message.get("Body", "")[:200])
                    continue
                self.received += 1
                result = payload.get("result")
                if payload.get("state") == "SUCCESS" and isinstance(result, dict):
                    self._results[request_id] = result
                self._signalled_at[request_id] = now
                event = self._events.get(request_id)
                if event is not None:
                    event.set()
                else:
                    self._unclaimed[request_id] = now
            for request_id, at in list(self._signalled_at.items()):
                if now - at > UNCLAIMED_TTL:
                    del self._signalled_at[request_id]
                    self._unclaimed.pop(request_id, None)
                    self._results.pop(request_id, None)
                    self._events.pop(request_id, None)
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            # Undeleted signals come back after the visibility timeout: harmless.
            log.info("could not delete completion signals: %s", exc)

    def _heartbeat(self) -> None:
        now = self._clock()
        if now - self._last_heartbeat < self._ttl / 4:
            return
        self._last_heartbeat = now
        try:
            self._sqs.tag_queue(QueueUrl=self.url, Tags={HEARTBEAT_TAG: str(int(now))})
        except (BotoCoreError, ClientError) as exc:
            log.info("reply queue heartbeat failed: %s", exc)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and delete the queue (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._sqs.delete_queue(QueueUrl=self.url)
        except (BotoCoreError, ClientError) as exc:
            log.info("could not delete reply queue %s: %s", self.url, exc)
        # The thread is in a long poll; it ends when the poll returns (or fails now
        # that the queue is gone). It is a daemon, so a stuck poll cannot block exit.
        self._thread.join(timeout)

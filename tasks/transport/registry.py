"""Process-wide bookkeeping of the SQS queues and SNS subscriptions a process owns.

SQS has no auto-delete and no expiry, so every broadcast listener queue, reply queue
and SNS subscription this transport creates is recorded here and removed:

- when the connection that declared a listener closes (worker shutdown, a closed
  event receiver), its queues are unsubscribed from their topics, then deleted;
- at interpreter exit, everything the process still owns (reply queues included);
- by anyone's sweep, when a process died without cleaning up: every owned queue
  carries a ``facefleet:last-seen`` tag that a keeper thread refreshes while the
  process lives; a sweep (run by every process that owns monitoring queues, at
  ``sweep_interval``) unsubscribes and deletes monitoring queues whose tag is older
  than ``expires``, and drops subscriptions whose queue is gone.

Reply queues are pooled: Celery's Mailbox names a new reply queue for every call
(the name embeds ``id()`` of a copied object), which on SQS would mean a CreateQueue
and DeleteQueue per ``inspect`` — and AWS refuses to re-create a deleted name for
60 s. Here a call *leases* a pooled physical queue and gives it back afterwards.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tasks.transport.naming import KIND_LISTENER, KIND_REPLY, is_monitor_queue, physical_name

logger = logging.getLogger(__name__)

TAG_KIND = "facefleet:monitor"
TAG_LAST_SEEN = "facefleet:last-seen"
TAG_OWNER = "facefleet:owner"
_MISSING_QUEUE = ("QueueDoesNotExist", "NonExistentQueue",
                  "AWS.SimpleQueueService.NonExistentQueue")


@dataclass(frozen=True)
class KeeperOptions:
    """Lifetimes of monitoring queues (seconds); see config/monitoring.py."""

    prefix: str = "ffmon-"
    expires: float = 600.0
    refresh: float = 120.0
    sweep_interval: float = 600.0


@dataclass
class OwnedQueue:
    """One monitoring queue this process created."""

    logical: str
    physical: str
    kind: str
    owner: int | None = None  # id() of the transport that declared a listener
    url: str | None = None
    subscriptions: dict[str, str] = field(default_factory=dict)  # topic ARN -> subscription


def is_missing_queue_error(exc: BaseException) -> bool:
    """True when ``exc`` says an SQS queue does not exist."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return code in _MISSING_QUEUE
    return any(code in str(exc) for code in _MISSING_QUEUE)


def monitor_tags(kind: str, now: float | None = None) -> dict[str, str]:
    """Tags put on a monitoring queue when it is created."""
    return {
        TAG_KIND: kind,
        TAG_LAST_SEEN: str(int(now if now is not None else time.time())),
        TAG_OWNER: f"{os.uname().nodename}:{os.getpid()}"[:256],
    }


def is_stale(tags: dict[str, str], now: float, expires: float) -> bool:
    """True when a queue's last-seen tag is missing, unreadable or older than ``expires``."""
    try:
        last_seen = float(tags[TAG_LAST_SEEN])
    except (KeyError, ValueError):
        return True
    return now - last_seen > expires


class Keeper:
    """The monitoring queues of one process on one endpoint (thread-safe)."""

    def __init__(self, sqs: Any, sns: Any, options: KeeperOptions,
                 clock: Callable[[], float] = time.time) -> None:
        self.sqs = sqs
        self.sns = sns
        self.options = options
        self.pid = os.getpid()
        self._clock = clock
        self._lock = threading.RLock()
        self._queues: dict[str, OwnedQueue] = {}  # logical -> queue (listeners)
        self._by_physical: dict[str, OwnedQueue] = {}
        self._free_replies: list[OwnedQueue] = []
        self._leases: dict[str, OwnedQueue] = {}  # logical reply queue -> pooled queue
        self._topics: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # -- names --------------------------------------------------------------------
    def listener(self, logical: str, owner: int) -> str:
        """Physical queue for the listener ``logical`` (a new name unless already live)."""
        with self._lock:
            queue = self._queues.get(logical)
            if queue is None:
                queue = OwnedQueue(logical, physical_name(self.options.prefix, KIND_LISTENER,
                                                          logical), KIND_LISTENER, owner)
                self._queues[logical] = queue
                self._by_physical[queue.physical] = queue
            queue.owner = owner
        self._ensure_thread()
        return queue.physical

    def lease_reply(self, logical: str) -> str:
        """Lease a pooled reply queue to the per-call reply queue ``logical``."""
        with self._lock:
            queue = self._leases.get(logical)
            if queue is None:
                if self._free_replies:
                    queue = self._free_replies.pop()
                else:
                    queue = OwnedQueue("reply", physical_name(self.options.prefix, KIND_REPLY,
                                                              "reply"), KIND_REPLY)
                    self._by_physical[queue.physical] = queue
                self._leases[logical] = queue
        self._ensure_thread()
        return queue.physical

    def release_reply(self, logical: str) -> None:
        """Give the reply queue leased to ``logical`` back to the pool."""
        with self._lock:
            queue = self._leases.pop(logical, None)
            if queue is not None and queue.physical in self._by_physical:
                self._free_replies.append(queue)

    def physical(self, logical: str) -> str | None:
        """The physical name behind ``logical`` (a listener or a leased reply queue)."""
        with self._lock:
            queue = self._queues.get(logical) or self._leases.get(logical)
            return queue.physical if queue else None

    def owns(self, physical: str) -> bool:
        """True when this process created (or will create) ``physical``."""
        with self._lock:
            return physical in self._by_physical

    def kind_of(self, physical: str) -> str:
        """``ls`` or ``rp`` for a queue of ours (listener when unknown)."""
        with self._lock:
            queue = self._by_physical.get(physical)
            return queue.kind if queue else KIND_LISTENER

    # -- facts learnt by the channel --------------------------------------------------
    def record_url(self, physical: str, url: str) -> None:
        """Remember the URL of a queue of ours once it exists."""
        with self._lock:
            queue = self._by_physical.get(physical)
            if queue is not None:
                queue.url = url

    def record_subscription(self, physical: str, topic_arn: str, subscription_arn: str) -> None:
        """Remember that ``physical`` is subscribed to ``topic_arn``."""
        with self._lock:
            self._topics.add(topic_arn)
            queue = self._by_physical.get(physical)
            if queue is not None:
                queue.subscriptions[topic_arn] = subscription_arn

    def record_topic(self, topic_arn: str) -> None:
        """Remember a fanout topic, so sweeps look at its subscriptions."""
        with self._lock:
            self._topics.add(topic_arn)

    # -- cleanup ----------------------------------------------------------------------
    def close_owner(self, owner: int) -> None:
        """Remove every listener queue declared by the transport ``owner``."""
        with self._lock:
            mine = [q for q in self._queues.values() if q.owner == owner]
            for queue in mine:
                self._forget(queue)
        for queue in mine:
            self._remove(queue)

    def close_all(self) -> None:
        """Remove everything this process owns (at exit); a forked child does nothing."""
        if os.getpid() != self.pid:
            return
        self._stop.set()
        with self._lock:
            everything = list(self._by_physical.values())
            for queue in everything:
                self._forget(queue)
        for queue in everything:
            self._remove(queue)

    def _forget(self, queue: OwnedQueue) -> None:
        self._by_physical.pop(queue.physical, None)
        if self._queues.get(queue.logical) is queue:
            del self._queues[queue.logical]
        self._free_replies = [q for q in self._free_replies if q is not queue]
        for logical in [k for k, q in self._leases.items() if q is queue]:
            del self._leases[logical]

    def _remove(self, queue: OwnedQueue) -> None:
        """Unsubscribe first (a dangling subscription breaks moto's publish), then delete."""
        for subscription in queue.subscriptions.values():
            try:
                self.sns.unsubscribe(SubscriptionArn=subscription)
            except ClientError as exc:
                logger.warning("could not unsubscribe %s: %s", subscription, exc)
        if queue.url is None:
            return
        try:
            self.sqs.delete_queue(QueueUrl=queue.url)
        except ClientError as exc:
            if not is_missing_queue_error(exc):
                logger.warning("could not delete monitoring queue %s: %s", queue.physical, exc)

    # -- liveness and sweeping ----------------------------------------------------------
    def refresh(self) -> int:
        """Stamp ``last-seen`` on every queue this process owns; returns how many."""
        with self._lock:
            urls = [q.url for q in self._by_physical.values() if q.url]
        stamp = {TAG_LAST_SEEN: str(int(self._clock()))}
        done = 0
        for url in urls:
            try:
                self.sqs.tag_queue(QueueUrl=url, Tags=stamp)
                done += 1
            except ClientError as exc:
                logger.warning("could not refresh monitoring queue %s: %s", url, exc)
        return done

    def sweep(self) -> list[str]:
        """Remove other processes' expired monitoring queues and dangling subscriptions.

        Returns the names of the queues deleted.
        """
        self._last_sweep = self._clock()
        now = self._clock()
        existing = dict(self._list_monitor_queues())
        stale: dict[str, str] = {}
        for name, url in existing.items():
            if self.owns(name):
                continue
            try:
                tags = self.sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            except ClientError as exc:
                if is_missing_queue_error(exc):
                    continue
                raise
            if is_stale(tags, now, self.options.expires):
                stale[name] = url
        with self._lock:
            topics = list(self._topics)
        for topic in topics:
            for sub in self._subscriptions(topic):
                queue_name = sub.get("Endpoint", "").split(":")[-1]
                if sub.get("Protocol") != "sqs" or not is_monitor_queue(queue_name,
                                                                        self.options.prefix):
                    continue
                dangling = queue_name not in existing and not self._queue_exists(queue_name)
                if queue_name in stale or dangling:
                    try:
                        self.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                    except ClientError as exc:
                        logger.warning("could not unsubscribe %s: %s", sub["SubscriptionArn"], exc)
        for name, url in stale.items():
            try:
                self.sqs.delete_queue(QueueUrl=url)
                logger.info("swept expired monitoring queue %s", name)
            except ClientError as exc:
                if not is_missing_queue_error(exc):
                    logger.warning("could not delete expired queue %s: %s", name, exc)
        return sorted(stale)

    def _list_monitor_queues(self) -> Iterator[tuple[str, str]]:
        kwargs: dict[str, Any] = {"QueueNamePrefix": self.options.prefix.replace(".", "-"),
                                  "MaxResults": 1000}
        while True:
            resp = self.sqs.list_queues(**kwargs)
            for url in resp.get("QueueUrls", []):
                name = url.rsplit("/", 1)[-1]
                if is_monitor_queue(name, self.options.prefix):
                    yield name, url
            token = resp.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token

    def _subscriptions(self, topic_arn: str) -> Iterator[dict[str, str]]:
        try:
            pages = self.sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=topic_arn)
            for page in pages:
                yield from page.get("Subscriptions", [])
        except ClientError as exc:
            logger.warning("could not list subscriptions of %s: %s", topic_arn, exc)

    def _queue_exists(self, name: str) -> bool:
        try:
            self.sqs.get_queue_url(QueueName=name)
        except ClientError as exc:
            if is_missing_queue_error(exc):
                return False
            raise
        return True

    def prune_dangling(self, topic_arn: str) -> int:
        """Unsubscribe every SQS subscription of ``topic_arn`` whose queue is gone."""
        removed = 0
        for sub in self._subscriptions(topic_arn):
            if sub.get("Protocol") != "sqs":
                continue
            if not self._queue_exists(sub.get("Endpoint", "").split(":")[-1]):
                try:
                    self.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                    removed += 1
                except ClientError as exc:
                    logger.warning("could not unsubscribe %s: %s", sub["SubscriptionArn"], exc)
        return removed

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self.pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self.pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="facefleet-monitor-keeper",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        # The first sweep waits one refresh period: a fleet starting at once would
        # otherwise sweep in lock-step.
        self._last_sweep = self._clock()
        while not self._stop.wait(self.options.refresh):
            try:
                self.refresh()
                if self._clock() - self._last_sweep >= self.options.sweep_interval:
                    self.sweep()
            except Exception:  # the keeper must outlive a flaky endpoint
                logger.exception("monitoring queue keeper failed; retrying next period")


_KEEPERS: dict[tuple[str | None, str, str], Keeper] = {}
_KEEPERS_LOCK = threading.Lock()


def keeper_for(key: tuple[str | None, str, str], factory: Callable[[], Keeper]) -> Keeper:
    """The process's keeper for ``key`` (endpoint, region, prefix), made once."""
    with _KEEPERS_LOCK:
        keeper = _KEEPERS.get(key)
        if keeper is None:
            keeper = _KEEPERS[key] = factory()
        return keeper


@atexit.register
def close_all_keepers() -> None:
    """Remove every monitoring queue this process owns (run at interpreter exit)."""
    for keeper in list(_KEEPERS.values()):
        try:
            keeper.close_all()
        except Exception:  # exit must not fail because an endpoint is already gone
            logger.debug("monitoring cleanup at exit failed", exc_info=True)

"""kombu's SQS transport, completed for Celery's broadcast features (see package doc)."""

from __future__ import annotations

import logging
import math
import sys
import threading
from time import monotonic
from typing import Any

from amqp.protocol import queue_declare_ok_t
from botocore.exceptions import ClientError
from kombu.asynchronous import get_event_loop
from kombu.transport import SQS
from kombu.transport.SQS.exceptions import DoesNotExistQueueException, UndefinedQueueException
from kombu.transport.SQS.SNS import SNS as SnsFanout
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property
from kombu.utils.uuid import uuid

from tasks.transport.batching import FanoutBatcher
from tasks.transport.naming import (
    is_mailbox_exchange,
    is_monitor_queue,
    is_reply_exchange,
    is_reply_queue,
    reply_queue_name,
    topic_matches,
)
from tasks.transport.prompt_curl import install_prompt_client
from tasks.transport.prompt_poll import PromptConsumeMixin
from tasks.transport.registry import (
    Keeper,
    KeeperOptions,
    is_missing_queue_error,
    keeper_for,
    monitor_tags,
)

logger = logging.getLogger(__name__)

#: Option defaults (broker_transport_options); config/monitoring.py sets them all.
DEFAULTS: dict[str, Any] = {
    "supports_fanout": True,
    "fanout_exchanges": ("celeryev",),
    "monitor_queue_prefix": "ffmon-",
    "event_flush_interval": 0.5,
    "listener_expires": 600.0,
    "listener_refresh": 120.0,
    "monitor_sweep_interval": 600.0,
    "listener_retention": 300,
}


class Channel(PromptConsumeMixin, SQS.Channel):
    """SQS channel with broadcast (SNS), routed replies, and owned ephemeral queues."""

    _pending_deletes: list[tuple[str, dict[str, Any]]] | None = None

    # kombu "restores" unacked messages when a connection closes by publishing a *copy*
    # and leaving the original in flight: on SQS that is a duplicate of every held task
    # (both run, once now and once after the visibility timeout). The worker gives back
    # what it never started with visibility 0 instead (tasks.visibility).
    do_restore = False

    # -- options -----------------------------------------------------------------------
    def _option(self, name: str) -> Any:
        value = self.transport_options.get(name)
        return DEFAULTS[name] if value is None else value

    @cached_property
    def supports_fanout(self) -> bool:  # kombu's default is off
        return bool(self._option("supports_fanout"))

    @cached_property
    def fanout_exchange_names(self) -> frozenset[str]:
        """Topic exchanges delivered as fanout through SNS (Celery's event exchange)."""
        return frozenset(self._option("fanout_exchanges"))

    @cached_property
    def monitor_prefix(self) -> str:
        return str(self.queue_name_prefix) + str(self._option("monitor_queue_prefix"))

    @cached_property
    def keeper(self) -> Keeper:
        """The process-wide keeper of this endpoint's monitoring queues."""
        options = KeeperOptions(
            prefix=self.monitor_prefix,
            expires=float(self._option("listener_expires")),
            refresh=float(self._option("listener_refresh")),
            sweep_interval=float(self._option("monitor_sweep_interval")),
        )

        def make() -> Keeper:
            creds = (self.region, self.conninfo.userid, self.conninfo.password)
            return Keeper(self._new_boto_client("sqs", *creds),
                          self._new_boto_client("sns", *creds), options)

        keeper = keeper_for((self.endpoint_url, self.region, self.monitor_prefix), make)
        self.connection.keepers.add(keeper)
        return keeper

    def _is_monitor(self, queue: str | None) -> bool:
        if not queue:
            return False
        return is_monitor_queue(queue, self.monitor_prefix) or (
            self.keeper.physical(queue) is not None)

    # -- exchanges and queues --------------------------------------------------------------
    def exchange_declare(self, exchange: str | None = None, type: str = "direct",
                         *args: Any, **kwargs: Any) -> None:
        # Celery declares its event exchange as a topic exchange for every broker but
        # Redis; SQS can only broadcast through SNS, so it becomes a fanout here and
        # topic binding keys are applied by the listener (see basic_consume).
        if exchange in self.fanout_exchange_names and type == "topic":
            type = "fanout"
        return super().exchange_declare(exchange, type, *args, **kwargs)

    def queue_declare(self, queue: str | None = None, passive: bool = False,
                      **kwargs: Any) -> Any:
        queue = queue or f"amq.gen-{uuid()}"
        ephemeral = kwargs.get("auto_delete") or kwargs.get("exclusive")
        if passive or not ephemeral or not self.supports_fanout:
            return super().queue_declare(queue, passive, **kwargs)
        # An AMQP auto-delete queue lives with its consumer: on SQS it becomes a queue
        # of this process with a fresh name, removed on close or swept when stale.
        if is_reply_queue(queue):
            self.keeper.lease_reply(queue)
        else:
            self.keeper.listener(queue, owner=id(self.connection))
        self._new_queue(queue)
        # No GetQueueAttributes: nobody reads the count of a queue just made.
        return queue_declare_ok_t(queue, 0, 0)

    def canonical_queue_name(self, queue_name: str) -> str:
        physical = self.keeper.physical(queue_name) if self.supports_fanout else None
        if physical is not None:
            return physical
        if is_monitor_queue(queue_name, self.monitor_prefix):
            return queue_name
        return super().canonical_queue_name(queue_name)

    def sqs(self, queue: str | None = None) -> Any:
        # Monitoring queues are never in predefined_queues: use the default client.
        if queue is not None and self.predefined_queues and self._is_monitor(queue):
            return super().sqs(None)
        return super().sqs(queue)

    def asynsqs(self, queue: str | None = None) -> Any:
        # Before kombu builds its asynchronous client on the worker's event loop.
        install_prompt_client(self.hub or get_event_loop())
        if queue is not None and self.predefined_queues and self._is_monitor(queue):
            return super().asynsqs(None)
        return super().asynsqs(queue)

    def _resolve_queue_url(self, queue: str) -> str:
        if not self._is_monitor(queue):
            return super()._resolve_queue_url(queue)
        name = self.canonical_queue_name(queue)
        url = self._queue_cache.get(name)
        if url:
            return url
        if self.keeper.owns(name):
            # Ours and not yet in the cache: it is about to be created.
            raise DoesNotExistQueueException(f"Queue with name '{name}' doesn't exist in SQS")
        try:
            url = self.sqs().get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if is_missing_queue_error(exc):
                raise DoesNotExistQueueException(
                    f"Queue with name '{name}' doesn't exist in SQS") from exc
            raise
        self._queue_cache[name] = url
        return url

    def _create_queue(self, queue_name: str, attributes: dict[str, str]) -> Any:
        if not is_monitor_queue(queue_name, self.monitor_prefix):
            return super()._create_queue(queue_name, attributes)
        # Broadcasts older than this are useless to a listener (SQS minimum: 60 s).
        attributes["MessageRetentionPeriod"] = str(max(60, int(self._option(
            "listener_retention"))))
        resp = self.sqs().create_queue(QueueName=queue_name, Attributes=attributes,
                                       tags=monitor_tags(self.keeper.kind_of(queue_name)))
        self.keeper.record_url(queue_name, resp["QueueUrl"])
        return resp

    def _subscribe_queue_to_fanout_exchange_if_required(self, queue_name: str) -> None:
        super()._subscribe_queue_to_fanout_exchange_if_required(queue_name)
        try:
            exchange = self._get_exchange_for_queue(queue_name)
        except UndefinedQueueException:
            return
        if not self._exchange_is_fanout(exchange):
            return
        key = f"{exchange}:{queue_name}"
        subscription = self.fanout.subscriptions._subscription_arn_cache.get(key)
        if subscription:
            self.keeper.record_subscription(self.canonical_queue_name(queue_name),
                                            self.fanout._get_or_create_topic(exchange),
                                            subscription)

    # -- publishing ------------------------------------------------------------------------
    def basic_publish(self, message: dict[str, Any], exchange: str, routing_key: str,
                      **kwargs: Any) -> Any:
        if is_mailbox_exchange(exchange) and self.supports_fanout:
            self._route_reply_to_pool(message)
        return super().basic_publish(message, exchange, routing_key, **kwargs)

    def _route_reply_to_pool(self, message: dict[str, Any]) -> None:
        """Point a command's ``reply_to`` at the pooled SQS queue behind it.

        Workers cannot see the caller's bindings (they live in the caller's process),
        so the routing key they reply with must name the physical queue itself.
        """
        if "json" not in (message.get("content-type") or ""):
            return
        body = message["body"]
        try:
            data = loads(body)
        except ValueError:
            return
        reply_to = data.get("reply_to") if isinstance(data, dict) else None
        if not reply_to:
            return
        physical = self.keeper.physical(reply_queue_name(reply_to["routing_key"],
                                                         reply_to["exchange"]))
        if physical is None:
            return
        reply_to["routing_key"] = physical
        text = dumps(data)
        message["body"] = text.encode() if isinstance(body, bytes) else text

    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> list[str]:
        found = super()._lookup(exchange, routing_key, default)
        if not found and is_reply_exchange(exchange) and is_monitor_queue(
                routing_key, self.monitor_prefix):
            return [routing_key]
        return found

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if not is_monitor_queue(queue, self.monitor_prefix) or self.keeper.owns(queue):
            return super()._put(queue, message, **kwargs)
        # A reply to another process's queue: never create it, and a caller that has
        # gone away (its queue deleted) is not an error of this worker.
        try:
            self._resolve_queue_url(queue)
            return super()._put(queue, message, **kwargs)
        except DoesNotExistQueueException:
            pass
        except ClientError as exc:
            if not is_missing_queue_error(exc):
                raise
            self._queue_cache.pop(queue, None)
        logger.debug("reply queue %s is gone; reply dropped", queue)
        return None

    def _put_fanout(self, exchange: str, message: dict[str, Any], routing_key: str,
                    **kwargs: Any) -> None:
        topic = self.fanout._get_or_create_topic(exchange)
        self.keeper.record_topic(topic)
        batcher = self.connection.batcher(self) if exchange in self.fanout_exchange_names \
            else None
        if batcher is not None:
            attrs = SnsFanout.serialise_message_attributes(
                message.get("properties", {}).get("message_attributes"))
            batcher.add(topic, dumps(message), attrs)
            return
        try:
            super()._put_fanout(exchange, message, routing_key, **kwargs)
        except ClientError as exc:
            if not is_missing_queue_error(exc):
                raise
            self.keeper.prune_dangling(topic)
            super()._put_fanout(exchange, message, routing_key, **kwargs)

    # -- consuming -------------------------------------------------------------------------
    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str,
                      *args: Any, **kwargs: Any) -> Any:
        result = super().basic_consume(queue, no_ack, callback, consumer_tag, *args, **kwargs)
        self._drained.pop(queue, None)  # consuming again (a drain undone)
        keys = [b.routing_key for b in self.state.queue_bindings(queue)
                if b.exchange in self.fanout_exchange_names]
        if no_ack and keys and not all(key in ("#", "") for key in keys):
            deliver = self.connection._callbacks[queue]

            def filtered(raw: dict[str, Any]) -> Any:
                info = raw.get("properties", {}).get("delivery_info", {})
                if topic_matches(keys, info.get("routing_key", "")):
                    return deliver(raw)
                return None

            self.connection._callbacks[queue] = filtered
        return result

    # -- a drained consumer's last poll -------------------------------------------------
    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        deliver = self.connection._callbacks.get(queue) if queue else None
        result = super().basic_cancel(consumer_tag)
        if queue and deliver is not None and not self._is_monitor(queue):
            self._drained[queue] = deliver
        return result

    @cached_property
    def _drained(self) -> dict[str, Any]:
        """queue -> the delivery of its consumer, cancelled by a drain."""
        return {}

    def _release_messages(self, queue: str, qname: str, messages: list[Any]) -> Any:
        # A long poll open when a drain cancelled the consumer returns messages after
        # it: kombu makes them visible again, and SQS counts that as a receive. With
        # many workers draining at once (a scale-in to zero just before a burst) one
        # message bounces between their open polls and reaches the dead-letter queue
        # unrun. This worker is alive and will finish what it holds before it leaves
        # (a warm shutdown), so it takes them as tasks instead.
        deliver = self._drained.get(qname)
        if deliver is None or self.closed:
            return super()._release_messages(queue, qname, messages)
        logger.info("consumer for %s was drained: taking the %d message(s) its last poll "
                    "returned", qname, len(messages))
        for message in messages:
            deliver(self._message_to_python(message, qname, queue))
        return None

    def after_reply_message_received(self, queue: str) -> None:
        if is_reply_queue(queue) and self.keeper.physical(queue) is not None:
            for binding in list(self.state.queue_bindings(queue)):
                self.queue_unbind(queue, binding.exchange, binding.routing_key)
            self.state.queue_bindings_delete(queue)
            self.keeper.release_reply(queue)
            return
        super().after_reply_message_received(queue)

    def _receive_message(self, queue: str, max_number_of_messages: int = 1,
                         wait_time_seconds: int | None = None) -> Any:
        """Synchronous ReceiveMessage whose long poll never outlasts the caller's timeout."""
        if is_reply_queue(queue):
            # Mailbox._collect counts drain_events calls against its reply limit: two
            # replies delivered by one call would leave it waiting out the timeout.
            max_number_of_messages = 1
        wait = int(self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds)
        deadline = self.connection.drain_deadline
        if deadline is not None:
            # At least 1 s, so a `celery inspect` does not spin on short polls.
            wait = max(0, min(max(wait, 1), math.ceil(deadline - monotonic())))
        params: dict[str, Any] = {
            "QueueUrl": self._new_queue(queue),
            "MaxNumberOfMessages": max_number_of_messages,
            "WaitTimeSeconds": wait,
        }
        attrs = self.get_message_attributes
        if attrs.get("MessageSystemAttributeNames"):
            params["MessageSystemAttributeNames"] = attrs["MessageSystemAttributeNames"]
        if attrs.get("MessageAttributeNames"):
            params["MessageAttributeNames"] = attrs["MessageAttributeNames"]
        return self.sqs(queue=queue).receive_message(**params)

    def _messages_to_python(self, messages: list[dict[str, Any]], queue: str) -> list[Any]:
        # Synchronous path (inspect callers, event listeners): delete no-ack messages
        # with one DeleteMessageBatch instead of one (async) DeleteMessage each.
        self._pending_deletes = []
        try:
            payloads = super()._messages_to_python(messages, queue)
        finally:
            pending, self._pending_deletes = self._pending_deletes, None
        if pending:
            url = self._new_queue(queue)
            for start in range(0, len(pending), 10):
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                           for i, (_, m) in enumerate(pending[start:start + 10])]
                self.sqs(queue=queue).delete_message_batch(QueueUrl=url, Entries=entries)
        return payloads

    def _delete_message(self, queue_name: str, message: dict[str, Any]) -> None:
        if self._pending_deletes is not None:
            self._pending_deletes.append((queue_name, message))
            return
        super()._delete_message(queue_name, message)


#: The channel class under a name the Transport's own ``Channel`` attribute cannot hide.
SnsChannel = Channel


class Transport(SQS.Transport):
    """SQS transport whose fanout exchanges (remote control, events) go through SNS."""

    Channel = Channel

    implements = SQS.Transport.implements.extend(
        exchange_type=frozenset(["direct", "topic", "fanout"]),
    )

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.drain_deadline: float | None = None
        self.keepers: set[Keeper] = set()
        self._batcher: FanoutBatcher | None = None
        self._batcher_lock = threading.Lock()
        if "flower" in sys.modules:
            # `celery flower`: teach Flower's broker page about SQS queue lengths.
            from tasks.transport.flower_broker import install

            install()

    def batcher(self, channel: SnsChannel) -> FanoutBatcher | None:
        """This connection's event batcher (None when batching is off)."""
        interval = float(channel._option("event_flush_interval"))
        if interval <= 0:
            return None
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = FanoutBatcher(channel.fanout.get_client(), interval,
                                              on_dangling=channel.keeper.prune_dangling)
            return self._batcher

    # kombu's virtual Transport narrows the base signature the same way.
    def drain_events(self, connection: Any, timeout: float | None = None  # type: ignore[override]
                     ) -> Any:
        self.drain_deadline = None if timeout is None else monotonic() + timeout
        try:
            return super().drain_events(connection, timeout=timeout)
        finally:
            self.drain_deadline = None

    def close_connection(self, connection: Any) -> None:
        try:
            if self._batcher is not None:
                self._batcher.close()
            super().close_connection(connection)
        finally:
            for keeper in list(self.keepers):
                keeper.close_owner(id(self))

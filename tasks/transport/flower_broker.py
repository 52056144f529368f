"""Queue lengths for Flower's broker page and ``/api/queues/length`` on SQS.

Flower picks a broker client from the URL scheme and knows only AMQP and Redis; for
anything else its broker page and queue-length API answer 404 "'sqs' broker is not
supported". (Its worker and task pages need only inspect and events, which the
transport provides.) :func:`install` adds an SQS client to Flower's factory: it reads
``ApproximateNumberOfMessages`` (ready) and ``…NotVisible`` (in flight) through the
same transport, so predefined queues and the endpoint are honoured.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kombu.connection import Connection

logger = logging.getLogger(__name__)

TRANSPORT = "tasks.transport:Transport"
_installed = False


def sqs_url(broker_url: str) -> str | None:
    """``sqs://…`` for a broker URL of SQS or of this transport, else None."""
    scheme, sep, rest = broker_url.partition("://")
    if not sep:
        return None
    if scheme.lower() == "sqs" or scheme == TRANSPORT:
        return f"sqs://{rest}"
    return None


class SQSBroker:
    """Flower broker client for SQS (duck-types ``flower.utils.broker.BrokerBase``)."""

    def __init__(self, broker_url: str, *_: Any, **kwargs: Any) -> None:
        self.url = sqs_url(broker_url) or broker_url
        self.options = dict(kwargs.get("broker_options") or {})

    def _lengths(self, names: list[str]) -> list[dict[str, Any]]:
        rows = []
        with Connection(self.url, transport=TRANSPORT, transport_options=self.options) as conn:
            channel = conn.default_channel
            for name in names:
                try:
                    url = channel._resolve_queue_url(name)
                    attrs = channel.sqs(queue=channel.canonical_queue_name(name)) \
                        .get_queue_attributes(QueueUrl=url, AttributeNames=[
                            "ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                except Exception as exc:  # one bad queue must not blank the page
                    logger.warning("cannot read the length of SQS queue %s: %s", name, exc)
                    continue
                ready = int(attrs.get("ApproximateNumberOfMessages", 0))
                unacked = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
                rows.append({"name": name, "messages": ready + unacked,
                             "messages_ready": ready, "messages_unacknowledged": unacked})
        return rows

    async def queues(self, names: Any) -> list[dict[str, Any]]:
        """Lengths of the SQS queues ``names`` (boto3 runs in Flower's executor)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._lengths, list(names))


def install() -> bool:
    """Teach Flower's broker factory about SQS; True once installed (idempotent)."""
    global _installed
    if _installed:
        return True
    try:
        from flower.utils import broker
    except ImportError:
        return False
    original = broker.Broker.__new__

    def __new__(cls: type, broker_url: str, *args: Any, **kwargs: Any) -> Any:
        if sqs_url(broker_url) is not None:
            return SQSBroker(broker_url, *args, **kwargs)
        return original(cls, broker_url, *args, **kwargs)

    broker.Broker.__new__ = __new__
    _installed = True
    return True

"""The queue's load: SQS attributes → ``QueueLoad`` (like KEDA's GetMetricsAndActivity).

Reading reports and never decides. Parsing is a pure function; the I/O sits behind a
one-method Protocol that a boto3 SQS client satisfies. A failed read raises
MetricsError: the controller then holds its size and never treats it as an empty queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from autoscaler.errors import MetricsError

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
ATTRIBUTES = (VISIBLE, IN_FLIGHT, DELAYED)


@dataclass(frozen=True)
class QueueLoad:
    """Messages in the request queue: waiting, held by workers (not visible), delayed."""

    visible: int
    in_flight: int
    delayed: int = 0

    def total(self, count_delayed: bool = False) -> int:
        """Messages that need a worker: visible + in flight (+ delayed when asked)."""
        return self.visible + self.in_flight + (self.delayed if count_delayed else 0)

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {"visible": self.visible, "in_flight": self.in_flight, "delayed": self.delayed}


class SqsAttributesClient(Protocol):
    """The one SQS call the reader needs (a boto3 SQS client is one)."""

    def get_queue_attributes(self, **kwargs: Any) -> Mapping[str, Any]:
        """``GetQueueAttributes(QueueUrl=..., AttributeNames=[...])``."""
        ...


def parse_attributes(attributes: Mapping[str, Any]) -> QueueLoad:
    """Turn a GetQueueAttributes ``Attributes`` map into a QueueLoad.

    Visible and in-flight counts are required; delayed defaults to 0. Raises
    MetricsError on a missing, non-integer or negative count.
    """
    values: dict[str, int] = {}
    for name in ATTRIBUTES:
        raw = attributes.get(name)
        if raw is None:
            if name == DELAYED:
                values[name] = 0
                continue
            raise MetricsError(f"SQS did not return {name}")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise MetricsError(f"SQS returned {name}={raw!r}, not an integer") from None
        if value < 0:
            raise MetricsError(f"SQS returned a negative {name}={value}")
        values[name] = value
    return QueueLoad(values[VISIBLE], values[IN_FLIGHT], values[DELAYED])


def read_queue_load(client: SqsAttributesClient, queue_url: str) -> QueueLoad:
    """Read the queue's load in one GetQueueAttributes call; MetricsError on failure."""
    try:
        response = client.get_queue_attributes(QueueUrl=queue_url,
                                               AttributeNames=list(ATTRIBUTES))
    except (ClientError, BotoCoreError, ResponseParserError, OSError) as err:
        raise MetricsError(f"cannot read the load of {queue_url}: {err}") from err
    return parse_attributes(response.get("Attributes") or {})


def queue_url(client: Any, queue: str) -> str:
    """Resolve a queue name to its URL (``GetQueueUrl``); MetricsError when absent."""
    try:
        return str(client.get_queue_url(QueueName=queue)["QueueUrl"])
    except (ClientError, BotoCoreError, ResponseParserError, OSError) as err:
        raise MetricsError(f"cannot find the SQS queue {queue!r}: {err}") from err


class SqsLoadReader:
    """Callable reading one queue's load; resolves (and re-resolves) the URL lazily so
    the controller can start before the queue exists."""

    def __init__(self, client: Any, queue: str) -> None:
        self.client = client
        self.queue = queue
        self._url: str | None = None

    def __call__(self) -> QueueLoad:
        """The current QueueLoad; MetricsError when it cannot be read."""
        if self._url is None:
            self._url = queue_url(self.client, self.queue)
        try:
            return read_queue_load(self.client, self._url)
        except MetricsError:
            self._url = None  # the queue may have been recreated under a new URL
            raise

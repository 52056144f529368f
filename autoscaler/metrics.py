"""The queue's load as the controller reads it (like KEDA's GetMetricsAndActivity).

Reading reports and never decides: one GetQueueAttributes per tick, parsed by
:func:`config.aws.parse_queue_depth`. Any failure becomes a MetricsError, so the
controller holds its size and never treats a failed read as an empty queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoscaler.errors import MetricsError
from config.aws import CALL_ERRORS, QueueDepth, QueueDepthError, read_queue_depth

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient


def read_queue_load(client: SQSClient, url: str) -> QueueDepth:
    """The queue's depth in one GetQueueAttributes call; MetricsError on any failure."""
    try:
        return read_queue_depth(client, url)
    except (*CALL_ERRORS, QueueDepthError) as err:
        raise MetricsError(f"cannot read the load of {url}: {err}") from err


def queue_url(client: SQSClient, queue: str) -> str:
    """Resolve a queue name to its URL (``GetQueueUrl``); MetricsError when absent."""
    try:
        return str(client.get_queue_url(QueueName=queue)["QueueUrl"])
    except CALL_ERRORS as err:
        raise MetricsError(f"cannot find the SQS queue {queue!r}: {err}") from err


class SqsLoadReader:
    """Callable reading one queue's load; resolves (and re-resolves) the URL lazily so
    the controller can start before the queue exists."""

    def __init__(self, client: SQSClient, queue: str) -> None:
        self.client = client
        self.queue = queue
        self._url: str | None = None

    def __call__(self) -> QueueDepth:
        """The current depth; MetricsError when it cannot be read."""
        if self._url is None:
            self._url = queue_url(self.client, self.queue)
        try:
            return read_queue_load(self.client, self._url)
        except MetricsError:
            self._url = None  # the queue may have been recreated under a new URL
            raise

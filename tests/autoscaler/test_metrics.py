"""The controller's queue reader: failure handling with a fake client, and moto."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from autoscaler.errors import MetricsError
from autoscaler.metrics import SqsLoadReader, read_queue_load
from config import aws
from config.aws import QueueDepth


class FakeSqs:
    """get_queue_attributes / get_queue_url answering from a script."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.urls = 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        self.urls += 1
        return {"QueueUrl": f"http://sqs/{QueueName}/{self.urls}"}

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"Attributes": answer}


def test_read_errors_become_metrics_errors() -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}},
                         "GetQueueAttributes")
    fake = FakeSqs([denied, EndpointConnectionError(endpoint_url="http://x")])
    with pytest.raises(MetricsError, match="AccessDenied"):
        read_queue_load(fake, "http://sqs/q")
    with pytest.raises(MetricsError, match="Could not connect"):
        read_queue_load(fake, "http://sqs/q")


def test_reader_resolves_url_again_after_a_failure() -> None:
    ok = {"ApproximateNumberOfMessages": "1", "ApproximateNumberOfMessagesNotVisible": "0"}
    fake = FakeSqs([ok, ClientError({"Error": {"Code": "X", "Message": "gone"}}, "G"), ok])
    reader = SqsLoadReader(fake, "q")
    assert reader() == QueueDepth(1, 0, 0)
    with pytest.raises(MetricsError):
        reader()
    assert reader() == QueueDepth(1, 0, 0)
    assert fake.urls == 2


def test_reader_against_moto(settings: Any) -> None:

    sqs = aws.client(settings, "sqs")
    url = sqs.create_queue(QueueName=settings.queue)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert SqsLoadReader(sqs, settings.queue)() == QueueDepth(2, 1, 0)
    with pytest.raises(MetricsError, match="cannot find"):
        SqsLoadReader(sqs, settings.queue + "-absent")()

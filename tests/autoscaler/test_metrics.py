"""Queue load: pure parsing (table), and the reader's failure handling with a fake client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from autoscaler.errors import MetricsError
from autoscaler.metrics import QueueLoad, SqsLoadReader, parse_attributes, read_queue_load


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "2",
      "ApproximateNumberOfMessagesDelayed": "1"}, QueueLoad(3, 2, 1)),
    ({"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"},
     QueueLoad(0, 0, 0)),
    ({"ApproximateNumberOfMessages": 7, "ApproximateNumberOfMessagesNotVisible": " 4 "},
     QueueLoad(7, 4, 0)),
])
def test_parse_attributes(attrs: dict[str, Any], expected: QueueLoad) -> None:
    assert parse_attributes(attrs) == expected


@pytest.mark.parametrize(("attrs", "match"), [
    ({}, "ApproximateNumberOfMessages"),
    ({"ApproximateNumberOfMessages": "1"}, "NotVisible"),
    ({"ApproximateNumberOfMessages": "x", "ApproximateNumberOfMessagesNotVisible": "0"},
     "not an integer"),
    ({"ApproximateNumberOfMessages": "-1", "ApproximateNumberOfMessagesNotVisible": "0"},
     "negative"),
])
def test_parse_attributes_rejects_bad_data(attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(MetricsError, match=match):
        parse_attributes(attrs)


def test_total_counts_in_flight_and_optionally_delayed() -> None:
    load = QueueLoad(visible=2, in_flight=3, delayed=4)
    assert load.total() == 5
    assert load.total(count_delayed=True) == 9


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
    assert reader() == QueueLoad(1, 0, 0)
    with pytest.raises(MetricsError):
        reader()
    assert reader() == QueueLoad(1, 0, 0)
    assert fake.urls == 2


def test_reader_against_moto(settings: Any) -> None:
    import boto3

    sqs = boto3.client("sqs", **settings.boto3_kwargs())
    url = sqs.create_queue(QueueName=settings.queue)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert SqsLoadReader(sqs, settings.queue)() == QueueLoad(2, 1, 0)
    with pytest.raises(MetricsError, match="cannot find"):
        SqsLoadReader(sqs, settings.queue + "-absent")()

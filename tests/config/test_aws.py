"""config.aws: the client factory's purposes, AWS error codes, queue depth parsing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError
from botocore.validate import ParamValidationDecorator

from config import aws
from config.aws import QueueDepth, QueueDepthError, error_code, is_missing, parse_queue_depth
from config.settings import Settings


def test_clients_aim_at_the_configured_endpoint_with_their_purpose() -> None:
    settings = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "http://127.0.0.1:1"})
    request = aws.sqs_client(settings, "request")
    assert request.meta.endpoint_url == "http://127.0.0.1:1"
    assert request.meta.config.max_pool_connections == 256
    # The worker's clients skip botocore's parameter validation (its CPU on the hot path).
    assert isinstance(aws.s3_client(settings)._serializer, ParamValidationDecorator)
    assert not isinstance(aws.s3_client(settings, "worker")._serializer,
                          ParamValidationDecorator)
    assert aws.s3_client(settings, "interactive").meta.config.connect_timeout == 3
    real = aws.ec2_client(Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws",
                                             "AWS_DEFAULT_REGION": "eu-west-1"}))
    assert real.meta.region_name == "eu-west-1" and "amazonaws.com" in real.meta.endpoint_url


class _EmptyBody:
    """The raw body of a canned response (what AWSResponse.content reads)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


#: Tries per purpose: botocore's own default is 3 in standard mode.
EXPECTED_TRIES = {"default": 3, "interactive": 3, "request": 4, "worker": 4, "heartbeat": 1}


def test_every_purpose_says_its_tries_as_total_max_attempts() -> None:
    # botocore's "max_attempts" counts retries (N means N + 1 tries), the opposite of
    # what it reads as: no purpose may use it, so the number written is the tries made.
    assert set(EXPECTED_TRIES) == set(aws.PURPOSES)
    for purpose, config in aws.PURPOSES.items():
        if config is None:
            continue
        assert "max_attempts" not in config.retries, purpose
        assert config.retries == {"total_max_attempts": EXPECTED_TRIES[purpose],
                                  "mode": "standard"}, purpose


@pytest.mark.parametrize("purpose", sorted(EXPECTED_TRIES))
def test_effective_tries_per_purpose(purpose: aws.Purpose,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The tries botocore really makes on a retryable answer (HTTP 500), counted at the
    wire: every attempt is answered by a ``before-send`` hook, so nothing is sent."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)  # would change "default" only
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    settings = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "http://127.0.0.1:1"})
    sqs = aws.sqs_client(settings, purpose)
    tries: list[str] = []

    def answer_500(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        tries.append(request.url)
        return AWSResponse(request.url, 500, {}, _EmptyBody())

    sqs.meta.events.register("before-send.sqs.*", answer_500)
    with pytest.raises(ClientError) as caught:
        sqs.list_queues()
    assert len(tries) == EXPECTED_TRIES[purpose]
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == len(tries) - 1
    # What the client settled on (botocore turns any max_attempts into this key).
    effective = sqs.meta.config.retries.get("total_max_attempts")
    assert effective == (None if purpose == "default" else len(tries))


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")


@pytest.mark.parametrize(("code", "missing"), [
    ("NoSuchKey", True), ("404", True), ("NotFound", True), ("NoSuchBucket", False),
    ("AccessDenied", False),
])
def test_is_missing_means_no_such_object(code: str, missing: bool) -> None:
    assert error_code(_client_error(code)) == code
    assert is_missing(_client_error(code)) is missing
    assert not is_missing(ValueError("NoSuchKey"))


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "2",
      "ApproximateNumberOfMessagesDelayed": "1"}, QueueDepth(3, 2, 1)),
    ({"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"},
     QueueDepth(0, 0, 0)),
    ({"ApproximateNumberOfMessages": 7, "ApproximateNumberOfMessagesNotVisible": " 4 "},
     QueueDepth(7, 4, 0)),
])
def test_parse_queue_depth(attrs: dict[str, Any], expected: QueueDepth) -> None:
    assert parse_queue_depth(attrs) == expected


@pytest.mark.parametrize(("attrs", "match"), [
    ({}, "ApproximateNumberOfMessages"),
    ({"ApproximateNumberOfMessages": "1"}, "NotVisible"),
    ({"ApproximateNumberOfMessages": "x", "ApproximateNumberOfMessagesNotVisible": "0"},
     "not an integer"),
    ({"ApproximateNumberOfMessages": "-1", "ApproximateNumberOfMessagesNotVisible": "0"},
     "negative"),
])
def test_parse_queue_depth_rejects_bad_data(attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(QueueDepthError, match=match):
        parse_queue_depth(attrs)


def test_total_counts_in_flight_and_optionally_delayed() -> None:
    load = QueueDepth(visible=2, in_flight=3, delayed=4)
    assert load.total() == 5
    assert load.total(count_delayed=True) == 9
    assert load.to_dict() == {"visible": 2, "in_flight": 3, "delayed": 4}


def test_sessions_share_one_botocore_loader_once_an_app_is_built() -> None:
    """Celery builds a boto3 session per thread that sends a task; each must reuse the
    process's parsed service models rather than parse them again (config/aws.py)."""
    import boto3

    from tasks.factory import make_app

    make_app(Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "http://127.0.0.1:9"}))
    first = boto3.session.Session()._session.get_component("data_loader")
    second = boto3.session.Session()._session.get_component("data_loader")
    assert first is second
    aws.share_botocore_loader()  # a second call keeps the same loader
    assert boto3.session.Session()._session.get_component("data_loader") is first

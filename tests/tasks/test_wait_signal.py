"""RecognitionClient.wait with the completion signal: S3 is read once the signal came.

No worker runs here: the test plays the worker's part over moto's HTTP API (the result
object in S3, then the signal on the client's reply queue), so it can count the S3
GETs the waiter makes.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3

from config.serving import ServingSettings
from config.settings import Settings
from tasks.client import RecognitionClient
from tasks.results import result_key


def _count_gets(client: RecognitionClient) -> list[str]:
    keys: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        keys.append(params["Key"])

    client._s3.meta.events.register("before-parameter-build.s3.GetObject", record)
    return keys


def _finish(settings: Settings, reply_url: str, request_id: str) -> None:
    """What a worker does at the end of a task: store the result, then signal."""
    meta = {"status": "SUCCESS", "result": {"request_id": request_id, "faces": []},
            "task_id": request_id}
    boto3.client("s3", **settings.boto3_kwargs()).put_object(
        Bucket=settings.output_bucket, Key=result_key(request_id), Body=json.dumps(meta))
    boto3.client("sqs", **settings.boto3_kwargs()).send_message(
        QueueUrl=reply_url, MessageBody=json.dumps({"id": request_id, "state": "SUCCESS"}))


def test_a_request_sent_here_is_read_from_s3_once_after_its_signal(
        provisioned: Settings) -> None:
    # With S3 polled only every 10 minutes, wait() returns within its 60 s only because
    # the signal woke it, and the single GET shows it did not look before the signal.
    serving = ServingSettings(signal_fallback_poll=600,
                              reply_queue_prefix=f"r-{provisioned.queue}-")
    client = RecognitionClient(provisioned, serving)
    try:
        request_id = client.submit(b"not really an image", "x.jpg")
        url = client.reply_queue_url
        assert url is not None
        gets = _count_gets(client)
        worker = threading.Timer(0.5, _finish, (provisioned, url, request_id))
        worker.start()
        try:
            result = client.wait(request_id, timeout=60)
        finally:
            worker.join()
        assert result["request_id"] == request_id
        assert gets == [result_key(request_id)]
    finally:
        client.close()


def test_a_request_sent_elsewhere_is_looked_up_at_once(provisioned: Settings) -> None:
    # Another process submitted it (a restarted web tier): no signal will come here, so
    # wait() reads S3 first instead of sleeping through the fallback period.
    serving = ServingSettings(signal_fallback_poll=600,
                              reply_queue_prefix=f"r-{provisioned.queue}-")
    sender = RecognitionClient(provisioned, serving)
    waiter = RecognitionClient(provisioned, serving)
    try:
        request_id = sender.submit(b"not really an image", "x.jpg")
        url = sender.reply_queue_url
        assert url is not None
        _finish(provisioned, url, request_id)
        gets = _count_gets(waiter)
        assert waiter.wait(request_id, timeout=60)["request_id"] == request_id
        assert gets == [result_key(request_id)]
    finally:
        sender.close()
        waiter.close()

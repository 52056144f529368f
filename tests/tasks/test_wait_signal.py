"""RecognitionClient.wait with the completion signal: what it reads from S3, and when.

No worker runs here: the test plays the worker's part over moto's HTTP API (the result
object in S3, then the signal on the client's reply queue), so it can count the S3
GETs the waiter makes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from config import aws
from config.serving import ServingSettings
from config.settings import Settings
from tasks.client import RecognitionClient
from tasks.completion import MAX_CARRIED_RESULT_BYTES, UNCLAIMED_TTL, ReplyListener, signal_body
from tasks.results import result_key


def _until(condition: Callable[[], bool], limit: float = 30.0) -> None:
    """Wait until ``condition()`` holds (the listener thread delivers in the background)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the listener delivered nothing"
        time.sleep(0.05)


def _count_gets(client: RecognitionClient) -> list[str]:
    keys: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        keys.append(params["Key"])

    client._s3.meta.events.register("before-parameter-build.s3.GetObject", record)
    return keys


def _finish(settings: Settings, reply_url: str, request_id: str,
            carry: bool = False) -> dict[str, Any]:
    """What a worker does at the end of a task: store the result, then signal (with a
    copy of the result when ``carry``)."""
    result = {"request_id": request_id, "faces": [], "label": "stored in S3"}
    meta = {"status": "SUCCESS", "result": result, "task_id": request_id}
    aws.client(settings, "s3").put_object(
        Bucket=settings.output_bucket, Key=result_key(request_id), Body=json.dumps(meta))
    carried = {**result, "label": "carried by the signal"}
    aws.client(settings, "sqs").send_message(
        QueueUrl=reply_url,
        MessageBody=signal_body(request_id, "SUCCESS", carried if carry else None))
    return carried


def _signalled(settings: Settings) -> ServingSettings:
    """Serving settings that poll S3 only every 10 minutes, with reply queues of this test."""
    return ServingSettings(signal_fallback_poll=600, reply_queue_prefix=f"r-{settings.queue}-")


def _submit(client: RecognitionClient) -> tuple[str, str]:
    """Submit a placeholder image: (request id, the client's reply queue URL)."""
    request_id = client.submit(b"not really an image", "x.jpg")
    url = client.reply_queue_url
    assert url is not None
    return request_id, url


def test_a_request_sent_here_is_read_from_s3_once_after_its_signal(
        provisioned: Settings) -> None:
    # With S3 polled only every 10 minutes, wait() returns within its 60 s only because
    # the signal woke it, and the single GET shows it did not look before the signal.
    client = RecognitionClient(provisioned, _signalled(provisioned))
    try:
        request_id, url = _submit(client)
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
    serving = _signalled(provisioned)
    sender = RecognitionClient(provisioned, serving)
    waiter = RecognitionClient(provisioned, serving)
    try:
        request_id, url = _submit(sender)
        _finish(provisioned, url, request_id)
        gets = _count_gets(waiter)
        assert waiter.wait(request_id, timeout=60)["request_id"] == request_id
        assert gets == [result_key(request_id)]
    finally:
        sender.close()
        waiter.close()


def test_a_result_carried_by_the_signal_is_not_read_back(provisioned: Settings) -> None:
    client = RecognitionClient(provisioned, _signalled(provisioned))
    try:
        request_id, url = _submit(client)
        gets = _count_gets(client)
        carried = _finish(provisioned, url, request_id, carry=True)
        assert client.wait(request_id, timeout=60) == carried
        assert gets == []
    finally:
        client.close()


def test_only_small_successful_results_are_carried() -> None:
    small = {"faces": [], "label": "Unknown"}
    assert json.loads(signal_body("a" * 32, "SUCCESS", small))["result"] == small
    assert "result" not in json.loads(signal_body("a" * 32, "FAILURE", small))
    assert "result" not in json.loads(signal_body("a" * 32, "SUCCESS", ["not", "a dict"]))
    big = {"blob": "x" * MAX_CARRIED_RESULT_BYTES}
    assert json.loads(signal_body("a" * 32, "SUCCESS", big)) == {"id": "a" * 32,
                                                                  "state": "SUCCESS"}


def test_signals_nobody_waits_for_are_forgotten(provisioned: Settings) -> None:
    # A 202 flow registers interest at submit and never waits: its event and carried
    # result must not pile up in a long-running web tier.
    now = [1000.0]
    sqs = aws.client(provisioned, "sqs")
    listener = ReplyListener(sqs, f"r-{provisioned.queue}-", 1, 600, clock=lambda: now[0])
    try:
        listener.expect("old")
        sqs.send_message(QueueUrl=listener.url,
                         MessageBody=signal_body("old", "SUCCESS", {"label": "x"}))
        _until(lambda: listener.received == 1)
        assert listener.expects("old")
        now[0] += UNCLAIMED_TTL + 1
        sqs.send_message(QueueUrl=listener.url, MessageBody=signal_body("new", "SUCCESS"))
        _until(lambda: listener.received == 2)
        assert not listener.expects("old")
        assert listener.take_result("old") is None
    finally:
        listener.close()

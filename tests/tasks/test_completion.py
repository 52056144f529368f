"""The completion signal: delivery, fallback when lost, reply queue cleanup."""

from __future__ import annotations

import time
from dataclasses import replace

from config import aws
from config.serving import ServingSettings
from config.settings import Settings
from tasks.client import RecognitionClient
from tasks.completion import CREATED_TAG, HEARTBEAT_TAG, ROLE_TAG, is_stale, notify
from tests.tasks.conftest import RunningWorker, photo


def _reply_queues(settings: Settings, prefix: str) -> list[str]:
    sqs = aws.client(settings, "sqs")
    return sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])


def test_signal_wakes_the_waiter(provisioned: Settings, worker: RunningWorker,
                                 celebrities) -> None:
    # With S3 polled only every 10 minutes, wait() can return within its 60 s only
    # because the worker's signal woke it.
    # The reply prefix must be the workers' (they signal no other queue); the queue's
    # name keeps this test's reply queues apart from the others'.
    serving = ServingSettings(signal_fallback_poll=600, reply_queue_prefix=(
        f"{ServingSettings().reply_queue_prefix}{provisioned.queue}-"))
    client = RecognitionClient(provisioned, serving)
    try:
        data, filename = photo(celebrities, "val", "mindy_kaling")
        request_id = client.submit(data, filename)
        result = client.wait(request_id, timeout=60)
        assert result["request_id"] == request_id
        assert client._listener is not None and client._listener.received >= 1
    finally:
        client.close()


def test_lost_signal_falls_back_to_polling_s3(provisioned: Settings, worker: RunningWorker,
                                              celebrities) -> None:
    prefix = f"r-{provisioned.queue}-"
    serving = ServingSettings(signal_fallback_poll=0.2, reply_queue_prefix=prefix)
    client = RecognitionClient(provisioned, serving)
    try:
        client.submit(*photo(celebrities, "val", "ben_afflek"))  # creates the reply queue
        url = client.reply_queue_url
        assert url is not None
        # The signal has nowhere to go: the worker's send fails, S3 still has the result.
        aws.client(provisioned, "sqs").delete_queue(QueueUrl=url)
        request_id = client.submit(*photo(celebrities, "val", "ben_afflek", 1))
        result = client.wait(request_id, timeout=60)
        assert result["request_id"] == request_id
    finally:
        client.close()


def test_celery_polling_mode_gives_the_same_result(provisioned: Settings,
                                                   worker: RunningWorker,
                                                   celebrities) -> None:
    client = RecognitionClient(provisioned, completion_signal=False)
    try:
        request_id = client.submit(*photo(celebrities, "val", "jerry_seinfeld"))
        result = client.wait(request_id, timeout=60)
        assert result["request_id"] == request_id
        assert client.reply_queue_url is None
    finally:
        client.close()


def test_reply_queue_is_deleted_on_close(provisioned: Settings) -> None:
    prefix = f"r-{provisioned.queue}-"
    client = RecognitionClient(provisioned, ServingSettings(reply_queue_prefix=prefix))
    client.submit(b"\xff\xd8 not processed", "x.jpg")  # no worker: only the queue matters
    url = client.reply_queue_url
    assert url in _reply_queues(provisioned, prefix)
    sqs = aws.client(provisioned, "sqs")
    tags = sqs.list_queue_tags(QueueUrl=url)["Tags"]
    assert tags[ROLE_TAG] == "reply"
    assert abs(float(tags[CREATED_TAG]) - time.time()) < 120
    client.close()
    assert url not in _reply_queues(provisioned, prefix)


def test_a_new_client_reaps_queues_of_dead_processes(provisioned: Settings) -> None:
    prefix = f"r-{provisioned.queue}-"
    sqs = aws.client(provisioned, "sqs")
    dead = sqs.create_queue(QueueName=prefix + "dead-123", tags={
        ROLE_TAG: "reply", CREATED_TAG: "1000", HEARTBEAT_TAG: "1000"})["QueueUrl"]
    client = RecognitionClient(provisioned, ServingSettings(reply_queue_prefix=prefix))
    try:
        client.submit(b"\xff\xd8 not processed", "x.jpg")
        deadline = time.monotonic() + 10
        while dead in _reply_queues(provisioned, prefix) and time.monotonic() < deadline:
            time.sleep(0.1)
        queues = _reply_queues(provisioned, prefix)
        assert dead not in queues
        assert client.reply_queue_url in queues
    finally:
        client.close()


def test_staleness_rule() -> None:
    reply = {ROLE_TAG: "reply", CREATED_TAG: "100"}
    assert is_stale(reply, now=800, ttl=600)
    assert not is_stale(reply, now=600, ttl=600)
    assert not is_stale({**reply, HEARTBEAT_TAG: "700"}, now=800, ttl=600)
    assert not is_stale({CREATED_TAG: "0"}, now=10**9, ttl=600), "not ours: never reaped"
    assert is_stale({ROLE_TAG: "reply", CREATED_TAG: "garbage"}, now=10**9, ttl=600)


def test_settings_round_trip_through_the_environment(settings: Settings) -> None:
    from dataclasses import fields


    changed = replace(settings, threshold=0.9, api_key="k", max_receives=5)
    env = changed.to_env()
    assert Settings.from_env(env) == changed
    # A field added to Settings must be exported too, or children would lose it.
    assert len(env) == len(fields(Settings))


def test_signals_go_only_to_reply_queues(settings: Settings) -> None:
    """The reply URL comes from a message's headers: a forged one naming another queue
    is never written to."""
    sqs = aws.client(settings, "sqs")
    prefix = ServingSettings().reply_queue_prefix
    victim = sqs.create_queue(QueueName=f"victim-{settings.queue}")["QueueUrl"]
    reply = sqs.create_queue(QueueName=f"{prefix}{settings.queue}")["QueueUrl"]
    assert not notify(sqs, victim, "r1", "SUCCESS", {"label": "x"}, prefix=prefix)
    assert notify(sqs, reply, "r1", "SUCCESS", {"label": "x"}, prefix=prefix)
    for url, expected in ((victim, 0), (reply, 1)):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        assert len(got.get("Messages", [])) == expected, url

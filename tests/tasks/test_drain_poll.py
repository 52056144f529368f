"""A drained worker runs what its last open long poll returns, instead of bouncing it.

kombu makes such messages visible again, and SQS counts each of those receives: with
many workers draining at once (a scale-in to zero just before a burst), a message went
from one draining worker's open poll to the next and reached the dead-letter queue
unrun (found by bench.faults' web-restart scenario).
"""

from __future__ import annotations

import time

from config import aws
from config.settings import Settings
from tasks.client import RecognitionClient
from tasks.drain import CeleryDrainer
from tests.tasks.conftest import photo


def test_a_drained_workers_open_poll_is_run_not_released(
        provisioned: Settings, worker_factory, celebrities) -> None:
    # A long poll of 15 s: the drain lands while one is open.
    worker = worker_factory(FACEFLEET_SQS_WAIT_TIME="15")
    client = RecognitionClient(provisioned)
    try:
        time.sleep(1)  # its first long poll is open
        assert CeleryDrainer(client.app, provisioned.queue)([worker.log_path.stem])
        deadline = time.monotonic() + 10
        while "Canceling queue" not in worker.log():
            assert time.monotonic() < deadline, "the drain did not reach the worker"
            time.sleep(0.1)
        request_id = client.submit(*photo(celebrities, "val", "madonna"))
        assert client.wait(request_id, timeout=30)["request_id"] == request_id
        log = worker.log()
        assert "was drained: taking the 1 message(s) its last poll returned" in log
        assert f"Task facefleet.recognize[{request_id}] received" in log
        sqs = aws.client(provisioned, "sqs")
        dlq = sqs.get_queue_url(QueueName=provisioned.dead_letter_queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    finally:
        client.close()

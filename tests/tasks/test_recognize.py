"""End to end through SQS on moto's server -> a real worker -> S3."""

from __future__ import annotations

import time

import pytest

from config import aws
from config.settings import Settings
from tasks.client import RecognitionClient
from tasks.errors import InvalidUpload, ResultTimeout, TaskFailed, UnknownRequest
from tasks.state import compute_slots
from tests.tasks.conftest import RunningWorker, photo


def test_recognize_writes_label_and_result(provisioned: Settings, worker: RunningWorker,
                                           celebrities) -> None:
    client = RecognitionClient(provisioned)
    try:
        data, filename = photo(celebrities, "val", "madonna")
        request_id = client.submit(data, filename)
        result = client.wait(request_id, timeout=60)
        assert result["request_id"] == request_id
        assert result["label"] == "Unknown"  # nobody enrolled yet
        assert len(result["faces"]) >= 1
        assert result["faces"][0]["distance"] is None
        stem = filename.rsplit(".", 1)[0]
        assert result["stem"] == stem
        assert result["image"] == {"bucket": provisioned.input_bucket,
                                   "key": f"{request_id}/{filename}"}
        s3 = aws.client(provisioned, "s3")
        label = s3.get_object(Bucket=provisioned.output_bucket, Key=stem)["Body"].read()
        assert label == b"Unknown"
        assert client.get(request_id) == result
    finally:
        client.close()


def test_a_solo_worker_reports_its_model_loaded_and_serves(
        provisioned: Settings, worker_factory, celebrities) -> None:
    # start_worker waits for " ready." and "recognizer loaded" in the log: the stack's
    # readiness check. A solo worker loads on worker_init, before Celery's logging.
    solo = worker_factory(pool="solo")
    assert solo.log().count("recognizer loaded") == 1
    client = RecognitionClient(provisioned)
    try:
        data, filename = photo(celebrities, "val", "madonna")
        assert client.wait(client.submit(data, filename), timeout=60)["label"] == "Unknown"
    finally:
        client.close()


def test_a_threads_worker_serves_requests_at_once(provisioned: Settings, worker_factory,
                                                  celebrities) -> None:
    worker_factory(pool="threads", concurrency=2)
    client = RecognitionClient(provisioned)
    try:
        names = ["madonna", "elton_john", "mindy_kaling", "ben_afflek"]
        ids = [client.submit(*photo(celebrities, "val", name)) for name in names]
        results = [client.wait(request_id, timeout=60) for request_id in ids]
        assert [r["request_id"] for r in results] == ids
        assert all(r["label"] == "Unknown" for r in results)
    finally:
        client.close()


def test_compute_slots_are_cores_over_torch_threads() -> None:
    assert compute_slots(1, 1) == 1
    assert compute_slots(2, 1) == 2
    assert compute_slots(8, 3) == 2
    assert compute_slots(1, 4) == 1  # never zero: the task must be able to run


def test_enroll_changes_what_recognize_returns(provisioned: Settings, worker: RunningWorker,
                                               celebrities) -> None:
    client = RecognitionClient(provisioned)
    try:
        probe, name = photo(celebrities, "val", "elton_john")
        before = client.wait(client.submit(probe, name), timeout=60)
        assert before["label"] == "Unknown"
        enrolled = client.enroll("elton_john", [photo(celebrities, "train", "elton_john", i)
                                                for i in range(3)], timeout=60)
        assert enrolled == {"name": "elton_john", "enrolled": 3, "photos": 3}
        after = client.wait(client.submit(probe, name), timeout=60)
        assert after["label"] == "elton_john"
        assert after["faces"][0]["distance"] is not None
    finally:
        client.close()


def test_bad_image_fails_clearly_and_is_not_retried(provisioned: Settings,
                                                    worker: RunningWorker) -> None:
    client = RecognitionClient(provisioned)
    try:
        request_id = client.submit(b"this is text, not a JPEG", "notes.jpg")
        with pytest.raises(TaskFailed) as failure:
            client.wait(request_id, timeout=60)
        assert failure.value.code == "not_an_image"
        assert "image" in failure.value.message.lower()
        assert "Traceback" not in failure.value.message
        assert worker.log().count(f"[{request_id}]") >= 1
        # Acked: the request queue drains (no retry forever). The failure's signal can
        # reach the client just before the worker's DeleteMessage, so allow a moment.
        deadline = time.monotonic() + 10
        depth = client.queue_depth()
        while (depth.visible, depth.in_flight) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
            depth = client.queue_depth()
        assert (depth.visible, depth.in_flight) == (0, 0)
    finally:
        client.close()


def test_client_validates_and_times_out(provisioned: Settings) -> None:
    client = RecognitionClient(provisioned)
    try:
        with pytest.raises(InvalidUpload):
            client.submit(b"", "empty.jpg")
        with pytest.raises(InvalidUpload):
            client.submit(b"x" * (provisioned.max_upload_bytes + 1), "big.jpg")
        with pytest.raises(UnknownRequest):
            client.get("0" * 32)
        with pytest.raises(UnknownRequest):
            client.get("not-an-id")
        # No worker runs: the request is pending, then wait() times out.
        request_id = client.submit(b"\xff\xd8 whatever", "pending.jpg")
        assert client.get(request_id) is None
        with pytest.raises(ResultTimeout):
            client.wait(request_id, timeout=0.5)
        depth = client.queue_depth()
        assert depth.visible == 1
    finally:
        client.close()

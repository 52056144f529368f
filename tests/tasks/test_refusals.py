"""What must never run: pickled messages; what must not run forever: poison images."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from config import aws
from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.client import RecognitionClient
from tasks.errors import TaskFailed
from tests.tasks.conftest import photo


class _Payload:
    """Unpickling this creates ``path``: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def _dead_letters(sqs, settings: Settings, expected: int, timeout: float) -> list[dict]:
    url = sqs.get_queue_url(QueueName=settings.dead_letter_queue)["QueueUrl"]
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        found += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     VisibilityTimeout=300).get("Messages", [])
    return found


def test_pickled_message_is_refused_never_executed(settings: Settings, tmp_path: Path,
                                                   worker_factory) -> None:
    settings = replace(settings, max_receives=2)
    # A short visibility timeout so the refused message reaches the DLQ within seconds.
    provision(settings, ServingSettings(visibility_timeout=2, task_time_limit=1),
              upload_weights=False)
    worker = worker_factory(settings=settings)
    marker = tmp_path / "pickle-was-executed"
    client = RecognitionClient(settings)
    try:
        request_id = uuid.uuid4().hex
        # A well-formed Celery task message, except that its body is a pickle.
        client.app.send_task(
            "facefleet.recognize", args=[_Payload(marker), "key", request_id, "stem"],
            task_id=request_id, serializer="pickle")
        sqs = aws.client(settings, "sqs")
        dead = _dead_letters(sqs, settings, expected=1, timeout=60)
        assert len(dead) == 1, "the refused message is set aside in the dead-letter queue"
        envelope = json.loads(base64.b64decode(dead[0]["Body"]))
        assert envelope["content-type"] == "application/x-python-serialize"
        assert envelope["headers"]["id"] == request_id
        log = worker.log()
        assert "ContentDisallowed" in log or "Refusing to deserialize" in log
        assert not marker.exists(), "the pickle was never loaded"
        s3 = aws.client(settings, "s3")
        assert s3.list_objects_v2(Bucket=settings.output_bucket).get("KeyCount", 0) == 0
        assert f"Task facefleet.recognize[{request_id}] received" not in log
    finally:
        client.close()


def _huge_jpeg(source: bytes, megapixels: float) -> bytes:
    """``source`` scaled up to about ``megapixels`` (below the pixel cap)."""
    image = Image.open(io.BytesIO(source)).convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    big = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=80)
    return out.getvalue()


def _kill_on_every_try(worker, request_id: str, stop: threading.Event) -> None:
    """Kill the pool process each time it starts on ``request_id`` (a crashing image)."""
    seen = 0
    line = f"request {request_id}: recognizing"
    while not stop.is_set():
        count = worker.log().count(line)
        if count > seen:
            seen = count
            time.sleep(0.2)  # let it get into the work
            for pid in worker.children():
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def test_image_that_kills_its_worker_goes_to_the_dlq_while_others_proceed(
        settings: Settings, worker_factory, celebrities) -> None:
    settings = replace(settings, max_receives=2)
    provision(settings, ServingSettings(), upload_weights=False)
    worker = worker_factory(settings=settings)
    client = RecognitionClient(settings)
    stop = threading.Event()
    try:
        # Big enough to take over a second here, so the kill lands mid-task.
        poison_id = client.submit(_huge_jpeg(photo(celebrities, "val", "madonna")[0], 36),
                                  "poison.jpg")
        killer = threading.Thread(target=_kill_on_every_try, args=(worker, poison_id, stop))
        killer.start()
        others = [client.submit(*photo(celebrities, "val", "madonna", i)) for i in range(3)]
        for request_id in others:
            assert client.wait(request_id, timeout=120)["request_id"] == request_id
        with pytest.raises(TaskFailed) as failure:
            client.wait(poison_id, timeout=120)
        assert failure.value.code == "dead_letter"
        assert settings.dead_letter_queue in failure.value.message
        assert "2 tries" in failure.value.message
        sqs = aws.client(settings, "sqs")
        dead = _dead_letters(sqs, settings, expected=1, timeout=30)
        assert [_task_id(m) for m in dead] == [poison_id]
        assert worker.log().count(f"Task facefleet.recognize[{poison_id}] received") == 2
        assert worker.proc.poll() is None, "the worker itself survives"
    finally:
        stop.set()
        client.close()


def test_time_limit_counts_as_a_try_then_dead_letters(settings: Settings, worker_factory,
                                                      celebrities) -> None:
    settings = replace(settings, max_receives=2)
    provision(settings, ServingSettings(), upload_weights=False)
    # 36 MP takes well over a second to decode and detect here; the limit is 0.4 s.
    worker_factory(settings=settings, FACEFLEET_TASK_TIME_LIMIT="0.4")
    client = RecognitionClient(settings)
    try:
        poison_id = client.submit(_huge_jpeg(photo(celebrities, "val", "madonna")[0], 36),
                                  "slow.jpg")
        with pytest.raises(TaskFailed) as failure:
            client.wait(poison_id, timeout=120)
        assert failure.value.code == "dead_letter"
        assert "time limit" in failure.value.message
        sqs = aws.client(settings, "sqs")
        assert [_task_id(m) for m in _dead_letters(sqs, settings, 1, 30)] == [poison_id]
    finally:
        client.close()


def _task_id(message: dict) -> str:
    return json.loads(base64.b64decode(message["Body"]))["headers"]["id"]

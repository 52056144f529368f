"""Task messages are an input boundary: forged ones straight onto SQS, against a real
worker. A message naming another bucket, another request's keys or a label key that
is not its own is refused before any S3 call, stores nothing and goes to the
dead-letter queue; a pickle, YAML, a non-JSON body or an unknown task name is never
run; the worker survives all of it and keeps answering a real request.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from config import aws
from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.client import RecognitionClient
from tasks.errors import TaskFailed
from tasks.factory import ENROLL, RECOGNIZE
from tasks.results import result_key
from tests.hostile import inputs
from tests.hostile.messages import celery_body, envelope, task_id_of
from tests.tasks.conftest import RunningWorker, start_worker
from tests.webapp.fixtures import unique_settings


class _Payload:
    """Unpickling this creates ``path``: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


@dataclass
class QueueStack:
    """Provisioned resources (2 receives, 2 s visibility), one worker, a secret bucket."""

    settings: Settings
    worker: RunningWorker
    secret_bucket: str


@pytest.fixture(scope="module")
def stack(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[QueueStack]:
    settings = replace(unique_settings(moto_endpoint), max_receives=2)
    # A 2 s visibility timeout so that refused messages reach the DLQ within seconds.
    provision(settings, ServingSettings(visibility_timeout=2, task_time_limit=1),
              upload_weights=False)
    s3 = aws.client(settings, "s3")
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=secret)
    s3.put_object(Bucket=secret, Key="secret.png", Body=inputs.small_png())
    worker = start_worker(settings, tmp_path_factory.mktemp("hostile-worker"))
    try:
        yield QueueStack(settings, worker, secret)
    finally:
        worker.stop()


def _new_id() -> str:
    return uuid.uuid4().hex


def test_forged_and_undecodable_messages_are_refused(stack: QueueStack,
                                                     tmp_path: Path) -> None:
    settings, inbox = stack.settings, stack.settings.input_bucket
    s3, sqs = aws.client(settings, "s3"), aws.client(settings, "sqs")
    queue_url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    client = RecognitionClient(settings)
    try:
        victim = client.submit(inputs.small_png(), "victim.png")
        assert client.wait(victim, timeout=120)["label"] == "NoFace"
        victim_result = s3.get_object(Bucket=settings.output_bucket,
                                      Key=result_key(victim))["Body"].read()

        # Forged through the real producer path: well-formed JSON, hostile arguments.
        forged: dict[str, tuple[str, list[object]]] = {}
        me = _new_id()
        forged[me] = (RECOGNIZE, [stack.secret_bucket, f"{me}/secret.png", me, "secret"])
        me = _new_id()
        forged[me] = (RECOGNIZE, [inbox, f"{victim}/victim.png", me, "victim"])
        me = _new_id()
        forged[me] = (RECOGNIZE, [inbox, f"{victim}/victim.png", victim, "victim"])
        me = _new_id()
        forged[me] = (RECOGNIZE, [inbox, f"{me}/a.png", me, f"results/celery-task-meta-{victim}"])
        forged[victim] = (RECOGNIZE, [inbox, f"{victim}/victim.png", victim, "fleet/state"])
        me = _new_id()
        forged[me] = (RECOGNIZE, [123, ["x"], None, {}])
        me = _new_id()
        forged[me] = (ENROLL, ["Mallory", stack.secret_bucket, [f"enrol/{me}/000-secret.png"]])
        me = _new_id()
        forged[me] = (ENROLL, ["Mallory", inbox, [f"enrol/{victim}/000-p.png"]])
        me = _new_id()
        forged[me] = (ENROLL, ["Mallory", inbox, [f"enrol/{me}/{n:03d}-p.png"
                                                  for n in range(300)]])
        forged["../fleet/state.json"] = (RECOGNIZE, [inbox, "x/a.png", "x", "a"])
        for task_id, (task, args) in forged.items():
            client.app.send_task(task, args=args, task_id=task_id)

        # Raw SQS bodies: never decoded into a call.
        marker = tmp_path / "pickle-was-executed"
        raw = {_new_id(): ("application/x-python-serialize",
                           pickle.dumps([[_Payload(marker), "k", "i", "s"], {}, {}]),
                           RECOGNIZE),
               _new_id(): ("application/x-yaml", b"[[a, b, c, d], {}, {}]", RECOGNIZE),
               _new_id(): ("application/json", b"{this is not json", RECOGNIZE),
               _new_id(): ("application/json", celery_body(["ls"]), "os.system")}
        for task_id, (content_type, body, task) in raw.items():
            sqs.send_message(QueueUrl=queue_url, MessageBody=envelope(
                settings.queue, task, task_id, body, content_type))
        sqs.send_message(QueueUrl=queue_url, MessageBody="plain text, no envelope")

        # Meanwhile a real request is still answered.
        other = client.submit(inputs.small_png(), "other.png")
        assert client.wait(other, timeout=120)["label"] == "NoFace"

        # Every one of them is kept in the dead-letter queue, none acked away.
        expected = set(forged) | set(raw) | {"plain text, no envelope"}
        dead = _dead_letters(sqs, settings, expected, timeout=90)
        assert expected <= dead, expected - dead

        log = stack.worker.log()
        assert stack.worker.proc.poll() is None, "the worker survived"
        assert not marker.exists(), "the pickle was never loaded"
        for task_id in forged:
            assert f"[{task_id!a}]: " in log, f"no refusal logged for {task_id}"
        assert "recognizing s3://" + stack.secret_bucket not in log
        refusals = "\n".join(line for line in log.splitlines() if "refused task" in line)
        for cause in ("is not the input bucket", "is not an image key of request",
                      "is not the stem of", "is not its task id", "1 to 256 are allowed",
                      "must be four strings", "is not photo 0 of enrolment",
                      "is not a request id of this service"):
            assert cause in refusals, f"{cause!r} not in:\n{refusals}"
        assert "ContentDisallowed" in log or "Refusing to deserialize" in log
        assert "refused a message whose body cannot be decoded" in log  # the non-JSON body
        # No label where the forged stems pointed, the victim's result untouched, a
        # clear failure stored for each refused request id, nothing for a forged id.
        written = {k["Key"] for k in s3.list_objects_v2(Bucket=settings.output_bucket)
                   .get("Contents", [])}
        assert "fleet/state" not in written and "secret" not in written
        assert s3.get_object(Bucket=settings.output_bucket,
                             Key=result_key(victim))["Body"].read() == victim_result
        assert not any("fleet" in key for key in written), written
        for task_id in set(forged) - {victim, "../fleet/state.json"}:
            with pytest.raises(TaskFailed) as failure:
                client.wait(task_id, 5)
            assert failure.value.code == "refused_task"
            assert failure.value.message.startswith("The task was refused: ")
        with pytest.raises(TaskFailed):  # the unknown task name: Celery stores NotRegistered
            client.wait(next(i for i, (_, _, t) in raw.items() if t == "os.system"), 5)
    finally:
        client.close()


def test_an_enrolment_with_a_bad_name_changes_nothing(stack: QueueStack) -> None:
    # Its keys are its own, so it runs, and fails on the name before reading a photo.
    settings = stack.settings
    client = RecognitionClient(settings)
    try:
        me = _new_id()
        client.app.send_task(ENROLL, args=["Unknown", settings.input_bucket,
                                           [f"enrol/{me}/000-p.png"]], task_id=me)
        with pytest.raises(TaskFailed) as failure:
            client.wait(me, timeout=60)
        assert failure.value.code == "invalid_name" and "labels of unmatched" in str(
            failure.value)
        s3 = aws.client(settings, "s3")
        versions = s3.list_object_versions(Bucket=settings.model_bucket, Prefix="gallery")
        assert len(versions.get("Versions", [])) == 1, "only the provisioned empty gallery"
    finally:
        client.close()


def _dead_letters(sqs: object, settings: Settings, expected: set[str],
                  timeout: float) -> set[str]:
    url = sqs.get_queue_url(QueueName=settings.dead_letter_queue)["QueueUrl"]  # type: ignore[attr-defined]
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    while not expected <= found and time.monotonic() < deadline:
        messages = sqs.receive_message(  # type: ignore[attr-defined]
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            VisibilityTimeout=300).get("Messages", [])
        found |= {task_id_of(m["Body"]) or m["Body"] for m in messages}
    return found

"""The S3 result backend on moto: one PUT per success, a success never overwritten."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from config import aws
from config.settings import Settings
from tasks.factory import make_app
from tasks.results import S3ResultBackend


def _requests(backend: S3ResultBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The HTTP methods of the S3 requests ``backend`` sends from now on (this test)."""
    names: list[str] = []
    http = backend.store.http
    send = http.urlopen

    def record(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        names.append(method)
        return send(method, url, *args, **kwargs)

    monkeypatch.setattr(http, "urlopen", record)
    return names


def test_a_success_is_written_with_one_put(provisioned: Settings,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_app(provisioned).backend
    assert isinstance(backend, S3ResultBackend)
    calls = _requests(backend, monkeypatch)
    backend.mark_as_done("a" * 32, {"label": "Unknown"})
    assert calls == ["PUT"]
    meta = backend.get_task_meta("a" * 32)
    assert meta["status"] == "SUCCESS" and meta["result"] == {"label": "Unknown"}


def test_a_stored_success_is_never_replaced_by_a_failure(provisioned: Settings) -> None:
    backend = make_app(provisioned).backend
    backend.mark_as_done("b" * 32, {"label": "first run"})
    backend.mark_as_failure("b" * 32, RuntimeError("a duplicate run failed"))
    assert backend.get_task_meta("b" * 32)["result"] == {"label": "first run"}


def test_a_read_is_one_get_and_a_missing_result_reads_as_pending(
        provisioned: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_app(provisioned).backend
    backend.mark_as_done("c" * 32, {"label": "stored"})
    calls = _requests(backend, monkeypatch)
    assert backend.get_task_meta("c" * 32)["result"] == {"label": "stored"}
    assert calls == ["GET"]
    assert backend.get_task_meta("d" * 32)["status"] == "PENDING"


def test_a_result_is_json_in_the_output_bucket_under_the_results_prefix(
        provisioned: Settings) -> None:

    make_app(provisioned).backend.mark_as_done("e" * 32, {"label": "boto3 reads it"})
    s3 = aws.client(provisioned, "s3")
    stored = s3.get_object(Bucket=provisioned.output_bucket,
                           Key="results/celery-task-meta-" + "e" * 32)
    assert stored["ContentType"] == "application/json"
    assert b'"boto3 reads it"' in stored["Body"].read()


def test_one_backend_serves_every_thread_without_a_boto3_resource(
        provisioned: Settings) -> None:
    # Celery builds a backend per thread unless it is thread-safe; Celery's S3 backend
    # builds a boto3 session and resource each time (the web tier's overload start).
    app = make_app(provisioned)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(app.backend)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and all(b is app.backend for b in seen)
    assert app.backend._s3_resource is None


def test_forget_deletes_the_stored_result(provisioned: Settings) -> None:
    app = make_app(provisioned)
    app.backend.mark_as_done("f" * 32, {"label": "to forget"})
    app.AsyncResult("f" * 32).forget()
    assert app.backend.get_task_meta("f" * 32)["status"] == "PENDING"
    s3 = aws.client(provisioned, "s3")
    listed = s3.list_objects_v2(Bucket=provisioned.output_bucket,
                                Prefix="results/celery-task-meta-" + "f" * 32)
    assert listed.get("KeyCount", 0) == 0

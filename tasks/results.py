"""A task's result object in S3: Celery writes it, the task client reads it.

One JSON object per task, ``s3://<output bucket>/results/celery-task-meta-<id>``:
Celery's task meta ``{"status", "result", "traceback", "task_id", ...}``. It is the
durable source of truth of every answer (the completion signal only says when to look).

Writer, :class:`S3ResultBackend` (Celery's ``result_backend``, see
:mod:`config.celeryconfig`): Celery's S3 backend with one S3 request per read or
write. Celery's key-value backends read a task's stored state before every write and
skip the write when a SUCCESS is already there (a duplicate run of a lost task must
not overwrite a success with a failure). On S3 that read is a HEAD request on the path
of every answer, and before a SUCCESS write it protects nothing: overwriting a success
with a success of the same request changes no outcome. This backend skips it for
SUCCESS writes only; every other state is written exactly as Celery does, so a stored
success is still never replaced by a failure. Celery's ``get`` is a HEAD and then a
GET; here it is one GET (a missing key reads as "nothing stored", as Celery's 404
does). All three, ``delete`` too, go through the process's shared
:class:`tasks.objectstore.ObjectStore`, so the backend holds no boto3 session or
resource and one instance serves every thread (Celery's ``thread_safe``). Celery keeps
a backend per thread otherwise, and Celery's S3 backend builds a boto3 session and
resource for each: at the start of a 3x overload the web tier's request threads each
built one as they sent their first task, and that took 60 % of the web process's
CPU (py-spy, first 12 s of bench.overload) while answers waited.

Reader, :func:`fetch_result`: one GET that may answer NoSuchKey (cheaper than Celery's
HEAD + GET for a result that may not exist yet), parsed by :func:`parse_meta`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from celery import states
from celery.backends.base import KeyValueStoreBackend
from celery.backends.s3 import S3Backend
from celery.exceptions import BackendStoreError

from config.aws import is_missing
from config.celeryconfig import RESULT_PREFIX
from tasks.errors import MissingObject
from tasks.keys import is_request_id
from tasks.objectstore import ObjectStore

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)
#: Task states after which a result no longer changes.
READY_STATES = frozenset(states.READY_STATES)
FAILED_STATES = frozenset({states.FAILURE, states.REVOKED})


def result_key(request_id: str) -> str:
    """Key of ``request_id``'s result inside the output bucket (Celery's own key)."""
    return f"{RESULT_PREFIX}{KeyValueStoreBackend.task_keyprefix}{request_id}"


# ---- writing: Celery's result backend ------------------------------------------------


def text(value: str | bytes) -> str:
    """A key or id as text (Celery hands some of them over as bytes)."""
    return value.decode() if isinstance(value, bytes) else value


class S3ResultBackend(S3Backend):  # type: ignore[misc]
    """S3Backend whose SUCCESS writes are one PUT (no HEAD of the current state), shared
    by all threads (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every call goes through the shared, thread-safe ObjectStore, whatever
        # result_backend_thread_safe says: one backend per app, not one per thread.
        self.thread_safe = True

    def _connect_to_s3(self) -> None:
        """No boto3 resource: a resource must not be shared across threads, and none is
        used (get, set and delete go through :attr:`store`)."""
        return None

    def _object_key(self, key: str | bytes) -> str:
        name = text(key)
        return f"{self.base_path}{name}" if self.base_path else name

    @property
    def store(self) -> ObjectStore:
        """This process's object store for the backend's endpoint, region and keys
        (in a worker, the one its tasks use too)."""
        return ObjectStore.shared(self.endpoint_url, self.aws_region or "us-east-1",
                                  self.aws_access_key_id, self.aws_secret_access_key)

    def get(self, key: Any) -> Any:
        """The stored value of ``key``, or None when nothing is stored."""
        try:
            data = self.store.get(self.bucket_name, self._object_key(key))
        except MissingObject:
            return None
        return data if self.content_encoding == "binary" else data.decode("utf-8")

    def set(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` (one PUT)."""
        body = value if isinstance(value, bytes) else str(value).encode("utf-8")
        self.store.put(self.bucket_name, self._object_key(key), body,
                       "application/json" if self.serializer == "json" else
                       "application/octet-stream")

    def delete(self, key: Any) -> None:
        """Remove the stored value of ``key`` (Celery's ``forget``)."""
        self.store.remove(self.bucket_name, self._object_key(key))

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        if not is_request_id(text(task_id)):
            # Only a forged message has such an id (Celery stores a failure even for an
            # unknown task name): its text must not choose the key of an S3 write.
            log.warning("not storing the %s result of task %.80r: its id is not a request "
                        "id of this service", state, text(task_id))
            return result
        if state != states.SUCCESS:
            return super()._store_result(task_id, result, state, traceback=traceback,
                                         request=request, **kwargs)
        meta = self._get_result_meta(result=result, state=state, traceback=traceback,
                                     request=request)
        meta["task_id"] = text(task_id)
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
        except BackendStoreError as exc:
            raise BackendStoreError(str(exc), state=state, task_id=task_id) from exc
        return result


# ---- reading: the task client ---------------------------------------------------------


@dataclass(frozen=True)
class StoredResult:
    """A task's stored state; ``value`` is the return value or the failure's message."""

    status: str
    value: Any
    error_type: str = ""
    error_code: str = ""

    @property
    def ready(self) -> bool:
        """True once the task finished (successfully or not)."""
        return self.status in READY_STATES

    @property
    def failed(self) -> bool:
        """True when the task ended in failure (or was revoked)."""
        return self.status in FAILED_STATES


def parse_meta(body: bytes | str) -> StoredResult:
    """Parse Celery's JSON task meta, turning a stored exception into message + code.

    A stored facefleet error's ``exc_message`` is its ``(message, code)`` args.
    """
    meta = json.loads(body)
    status = str(meta.get("status", states.PENDING))
    value = meta.get("result")
    if status in FAILED_STATES and isinstance(value, dict) and "exc_type" in value:
        args = value.get("exc_message")
        if isinstance(args, list | tuple):
            message = str(args[0]) if args else value["exc_type"]
            code = str(args[1]) if len(args) > 1 and args[1] is not None else ""
        else:
            message, code = str(args), ""
        return StoredResult(status, message, error_type=str(value["exc_type"]),
                            error_code=code or str(value["exc_type"]))
    return StoredResult(status, value)


def fetch_result(s3: S3Client, bucket: str, request_id: str) -> StoredResult | None:
    """The stored result of ``request_id``, or None while there is none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=result_key(request_id))["Body"].read()
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    return parse_meta(body)

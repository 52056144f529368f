"""Celery's S3 result backend, one S3 request per read or write.

Celery's key-value backends read a task's stored state before every write and skip
the write when a SUCCESS is already there (a duplicate run of a lost task must not
overwrite a success with a failure). On S3 that read is a HEAD request on the path of
every answer, and before a SUCCESS write it protects nothing: overwriting a success
with a success of the same request changes no outcome. This backend skips it for
SUCCESS writes only; every other state is written exactly as Celery does, so a stored
success is still never replaced by a failure.

Celery's ``get`` is a HEAD and then a GET, and both ``get`` and ``set`` build a boto3
resource object per call. Here ``get`` is one GET (NoSuchKey reads as "nothing
stored", as Celery's 404 does) and ``set`` one PUT, both through
:class:`tasks.objectstore.ObjectStore` (the same endpoint, region and credentials as
Celery's resource; why not boto3 on this path is said there). ``delete`` stays
Celery's own.

Selected in :mod:`config.celeryconfig` as ``result_backend``; it reads the same
``s3_*`` settings as Celery's own.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.s3 import S3Backend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

from tasks.objectstore import MissingObject, ObjectStore


class S3ResultBackend(S3Backend):
    """S3Backend whose SUCCESS writes are one PUT (no HEAD of the current state)."""

    def _object_key(self, key: Any) -> str:
        key = bytes_to_str(key)
        return self.base_path + key if self.base_path else key

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

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        if state != states.SUCCESS:
            return super()._store_result(task_id, result, state, traceback=traceback,
                                         request=request, **kwargs)
        meta = self._get_result_meta(result=result, state=state, traceback=traceback,
                                     request=request)
        meta["task_id"] = bytes_to_str(task_id)
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
        except BackendStoreError as exc:
            raise BackendStoreError(str(exc), state=state, task_id=task_id) from exc
        return result

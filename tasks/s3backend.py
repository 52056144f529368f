"""Celery's S3 result backend without the read before each successful write.

Celery's key-value backends read a task's stored state before every write and skip
the write when a SUCCESS is already there (a duplicate run of a lost task must not
overwrite a success with a failure). On S3 that read is a HEAD request on the path of
every answer, and before a SUCCESS write it protects nothing: overwriting a success
with a success of the same request changes no outcome. This backend skips it for
SUCCESS writes only; every other state is written exactly as Celery does, so a stored
success is still never replaced by a failure.

Selected in :mod:`config.celeryconfig` as ``result_backend``; it reads the same
``s3_*`` settings as Celery's own.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.s3 import S3Backend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str


class S3ResultBackend(S3Backend):
    """S3Backend whose SUCCESS writes are one PUT (no HEAD of the current state)."""

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

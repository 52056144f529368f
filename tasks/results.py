"""Reading Celery's S3-backed results directly: one GET per look, parsed here.

Celery's ``S3Backend.get`` makes two requests per poll (HEAD then GET); a result that
may not exist yet is cheaper as a single GET that may answer NoSuchKey. The object is
Celery's JSON task meta: ``{"status", "result", "traceback", "task_id", ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from config.celeryconfig import RESULT_PREFIX

#: Celery's key for a task's meta (KeyValueStoreBackend.task_keyprefix).
TASK_META_PREFIX = "celery-task-meta-"
READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass(frozen=True)
class StoredResult:
    """A task's stored state; ``value`` is the return value or the failure."""

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
        return self.status in {"FAILURE", "REVOKED"}


def result_key(request_id: str) -> str:
    """Key of ``request_id``'s Celery result inside the output bucket."""
    return f"{RESULT_PREFIX}{TASK_META_PREFIX}{request_id}"


def parse_meta(body: bytes | str) -> StoredResult:
    """Parse Celery's JSON task meta, turning a stored exception into message + code."""
    meta = json.loads(body)
    status = str(meta.get("status", "PENDING"))
    value = meta.get("result")
    if status in {"FAILURE", "REVOKED"} and isinstance(value, dict) and "exc_type" in value:
        args = value.get("exc_message")
        if isinstance(args, list | tuple):
            message = str(args[0]) if args else value["exc_type"]
            code = str(args[1]) if len(args) > 1 and args[1] is not None else ""
        else:
            message, code = str(args), ""
        return StoredResult(status, message, error_type=str(value["exc_type"]),
                            error_code=code or str(value["exc_type"]))
    return StoredResult(status, value)


def fetch_result(s3: Any, bucket: str, request_id: str) -> StoredResult | None:
    """The stored result of ``request_id``, or None while there is none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=result_key(request_id))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    return parse_meta(body)

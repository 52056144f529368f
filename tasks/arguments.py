"""A task's arguments are an input boundary too: what a worker will act on (pure).

Anyone who can send to the request queue can write a task message, so the worker does
not take its bucket and keys on trust: a message may only make it read the input
bucket, under the prefix of its own request (the message's task id), objects named
exactly as the web tier names them (:mod:`tasks.keys`), and write the label object of
that same file name. A forged ``s3://other-bucket/secret`` or a ``stem`` of
``results/celery-task-meta-<someone else>`` is refused before any S3 call.

Each ``*_problem`` function is pure: it returns why a message is refused, or None when
it may run; :func:`refuse_if` turns a problem into a refusal (Celery's Reject).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_task

from tasks.errors import RefusedTask
from tasks.keys import (
    ENROL_PREFIX,
    MAX_ENROL_PHOTOS,
    is_request_id,
    safe_filename,
    stem_of,
)

log = logging.getLogger(__name__)


def recognize_problem(args: tuple[Any, ...], *, task_id: str | None,
                      input_bucket: str) -> str | None:
    """Why ``recognize(bucket, key, request_id, stem)`` must not run, or None."""
    if len(args) != 4 or not all(isinstance(a, str) for a in args):
        return "its arguments must be four strings (bucket, key, request id, stem)"
    bucket, key, request_id, stem = args
    common = _request_problem(task_id, request_id) or _bucket_problem(bucket, input_bucket)
    if common is not None:
        return common
    prefix = f"{request_id}/"
    name = key[len(prefix):] if key.startswith(prefix) else None
    if name is None or not _is_safe_name(name):
        return (f"key {_show(key)} is not an image key of request {request_id} "
                f"({prefix}<file name>)")
    if stem != stem_of(name):
        return f"stem {_show(stem)} is not the stem of {name!r} ({stem_of(name)!r})"
    return None


def enroll_problem(args: tuple[Any, ...], *, task_id: str | None,
                   input_bucket: str) -> str | None:
    """Why ``enroll(name, bucket, keys)`` must not run, or None (the name itself is
    the gallery's to judge: :func:`recognition.names.validate_name`)."""
    if len(args) != 3 or not isinstance(args[0], str) or not isinstance(args[1], str) \
            or not isinstance(args[2], list):
        return "its arguments must be a name, a bucket and a list of keys"
    _, bucket, keys = args
    problem = _bucket_problem(bucket, input_bucket)
    if problem is not None:
        return problem
    if not is_request_id(task_id or ""):
        return f"its task id {_show(task_id)} is not a request id of this service"
    if not 1 <= len(keys) <= MAX_ENROL_PHOTOS:
        return f"it names {len(keys)} photos; 1 to {MAX_ENROL_PHOTOS} are allowed"
    for index, key in enumerate(keys):
        prefix = f"{ENROL_PREFIX}{task_id}/{index:03d}-"
        if not isinstance(key, str) or not key.startswith(prefix) \
                or not _is_safe_name(key[len(prefix):]):
            return (f"key {index} ({_show(key)}) is not photo {index} of enrolment "
                    f"{task_id} ({prefix}<file name>)")
    return None


def _request_problem(task_id: str | None, request_id: str) -> str | None:
    if not is_request_id(task_id or ""):
        return f"its task id {_show(task_id)} is not a request id of this service"
    if request_id != task_id:
        return f"its request id {_show(request_id)} is not its task id {task_id}"
    return None


def _bucket_problem(bucket: str, input_bucket: str) -> str | None:
    if bucket != input_bucket:
        return (f"bucket {_show(bucket)} is not the input bucket {input_bucket!r} "
                "(FACEFLEET_INPUT_BUCKET)")
    return None


def _is_safe_name(name: str) -> bool:
    return bool(name) and safe_filename(name) == name


def _show(value: object) -> str:
    # Bounded and escaped: the log line must not carry a forged 1 MB or control string.
    text = ascii(value)
    return text if len(text) <= 100 else text[:100] + "..."


def refuse_if(problem: str | None, task_name: str, task_id: str | None) -> None:
    """Refuse the running task when ``problem`` says so: log it and raise RefusedTask
    (a Reject without requeue). Celery stores the failure under the task id (the result
    backend writes only ids of this service's form, and never over a stored success) and
    rejects the message, which SQS redelivers until its redrive policy moves it to the
    dead-letter queue: kept, not lost."""
    if problem is None:
        return
    log.error("refused task %s[%s]: %s; no object was read or written, the message goes "
              "to the dead-letter queue", task_name, _show(task_id), problem)
    raise RefusedTask(f"The task was refused: {problem}.")


def current_task_id() -> str | None:
    """The id of the task this process is running (None outside a task)."""
    task = current_task
    request_id = getattr(getattr(task, "request", None), "id", None) if task else None
    return request_id if isinstance(request_id, str) else None

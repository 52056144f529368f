"""Failures a task stores as its result, and the task client's exceptions.

A task failure is stored by Celery's JSON result backend as ``{"exc_type",
"exc_message": [message, code], "exc_module"}``: every error here takes ``(message,
code)`` (:class:`config.errors.FacefleetError`), so the stored form is complete and
the client reads the message (for a person) and the code (for a program) back from it.
"""

from __future__ import annotations

from celery.exceptions import Reject

from config.errors import FacefleetError


class TaskError(FacefleetError):
    """Root of the failures a task stores as its result."""

    default_code = "task_error"


class BadImage(TaskError):
    """The image cannot be recognised (not an image, truncated, too large, no face...).

    ``code`` is :class:`recognition.errors.ImageError`'s code where there is one.
    """

    default_code = "not_an_image"


class MissingImage(TaskError):
    """The image object named by the task is not in the input bucket."""

    default_code = "missing_image"


class InvalidEnrolment(TaskError):
    """An enrolment request the gallery refuses (bad name, no usable face)."""

    default_code = "invalid_enrolment"


class PoisonMessage(TaskError):
    """The task killed or outlived its worker on every try; its message went to the DLQ."""

    default_code = "dead_letter"


class RefusedTask(Reject):  # type: ignore[misc]
    """A task message the worker will not act on (its arguments name another bucket,
    another request's keys...): Celery's Reject, without requeue, so the message is
    left to SQS's redrive policy (dead-letter queue) and the failure is stored with a
    message and code like every other (``args`` = ``(message, code)``)."""

    def __init__(self, message: str, code: str = "refused_task") -> None:
        super().__init__(message, requeue=False)
        self.message = message
        self.code = code
        self.args = (message, code)

    def __str__(self) -> str:
        return self.message


class StorageError(TaskError):
    """An S3 read or write of the request path failed (stored as the task's failure)."""

    default_code = "storage_error"


class MissingObject(StorageError):
    """The object, or its bucket, does not exist."""

    default_code = "missing_object"


# ---- raised by tasks.client ------------------------------------------------------


class RequestError(FacefleetError):
    """Root of the errors :class:`tasks.client.RecognitionClient` raises."""

    default_code = "request_error"


class InvalidUpload(RequestError, ValueError):
    """The upload was refused before it was queued (empty, too large)."""

    default_code = "invalid_upload"


class ResultTimeout(RequestError, TimeoutError):
    """No result within the time asked; the request is still queued or running."""

    default_code = "timeout"


class UnknownRequest(RequestError, KeyError):
    """No request with this id was ever submitted (or its image was removed)."""

    default_code = "unknown_request"


class TaskFailed(RequestError):
    """The task ran and failed; ``kind`` is the stored exception's class name."""

    default_code = "task_error"

    def __init__(self, message: str, code: str | None = None, kind: str = "") -> None:
        super().__init__(message, code)
        self.kind = kind

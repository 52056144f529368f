"""Failures a task reports in its result, and the client's exceptions.

A task failure is stored by Celery's JSON result backend as ``{"exc_type",
"exc_message": [message, code], "exc_module"}``. Task exceptions therefore take
``(message, code)`` as their only arguments, so the stored form is complete: the
client reads the message (for a person) and the code (for a program) back from it.
"""

from __future__ import annotations

from dataclasses import dataclass


class TaskError(Exception):
    """Root of the failures a task stores as its result; ``code`` is machine-readable."""

    default_code = "task_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code or self.default_code)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


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


# ---- raised by tasks.client ------------------------------------------------------


class ClientError(Exception):
    """Root of the errors :class:`tasks.client.RecognitionClient` raises."""


class InvalidUpload(ClientError, ValueError):
    """The upload was refused before it was queued (empty, too large, bad name)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ResultTimeout(ClientError, TimeoutError):
    """No result within the time asked; the request is still queued or running."""


class UnknownRequest(ClientError, KeyError):
    """No request with this id was ever submitted (or its image was removed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown request"


class TaskFailed(ClientError):
    """The task ran and failed; ``message`` is for a person, ``code`` for a program."""

    def __init__(self, message: str, code: str = "task_error", kind: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting (``visible``) and being worked on (``in_flight``)."""

    visible: int
    in_flight: int

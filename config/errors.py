"""The root of every error facefleet raises on purpose.

Every facefleet error carries a message for a person and a short, stable ``code`` for
a program, and takes them in that order: ``SomeError(message, code)``. ``config`` is
the bottom layer that every package imports, so the root lives here.
"""

from __future__ import annotations


class FacefleetError(Exception):
    """Root of facefleet's errors: ``message`` says what to do, ``code`` what happened.

    ``args`` is ``(message, code)``, so the error survives pickling and Celery's JSON
    result backend (which stores ``args``) with both parts.
    """

    default_code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        code = code or self.default_code
        super().__init__(message, code)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message

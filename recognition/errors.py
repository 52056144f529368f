"""The recognition package's errors; each message is meant for a person to act on."""

from __future__ import annotations


class RecognitionError(Exception):
    """Root of every error raised by :mod:`recognition`."""


class ImageError(RecognitionError):
    """The input is not a usable image (empty, truncated, not an image, too large).

    ``code`` is a short machine-readable reason (``empty``, ``truncated``,
    ``not_an_image``, ``too_large``, ``unsupported``); the message says what to do.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WeightsError(RecognitionError):
    """Weights could not be obtained, converted or verified."""


class GalleryError(RecognitionError):
    """The gallery could not be read, written, or does not fit the loaded model."""


class NoFaceError(RecognitionError):
    """No face was found where one is required (an enrolment photo)."""

"""The recognition package's errors; each message is meant for a person to act on."""

from __future__ import annotations

from config.errors import FacefleetError


class RecognitionError(FacefleetError):
    """Root of every error raised by :mod:`recognition`."""

    default_code = "recognition_error"


class ImageError(RecognitionError):
    """The input is not a usable image.

    ``code`` says why: ``empty``, ``truncated``, ``not_an_image``, ``too_large``,
    ``unsupported``, ``not_found`` or ``unreadable``; the message says what to do.
    """

    default_code = "not_an_image"


class WeightsError(RecognitionError):
    """Weights could not be obtained, converted or verified."""

    default_code = "weights"


class GalleryError(RecognitionError):
    """The gallery could not be read, written, or does not fit the loaded model."""

    default_code = "gallery"


class NoFaceError(RecognitionError):
    """No face was found where one is required (an enrolment photo)."""

    default_code = "no_face"

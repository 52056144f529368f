"""Cheap validation of uploaded images, before anything is stored or queued.

The web tier never decodes pixels (the workers do): it checks the size, that Pillow
recognises the header, and the declared dimensions against the pixel cap. A file
that passes here can still fail deeper in the worker (a truncated JPEG body), which
then comes back as a clear 400 through the task's error.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from recognition.errors import GalleryError
from recognition.gallery import validate_name
from tasks.keys import safe_filename, stem_of
from webapp.errors import ApiError

# Formats the workers' decoder handles; anything else Pillow opens is refused early.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO"})


@dataclass(frozen=True)
class Upload:
    """One validated image: its bytes, a storage-safe file name and that name's stem."""

    data: bytes
    filename: str
    stem: str
    width: int
    height: int
    format: str


def validate_image(data: bytes, raw_name: str | None, *, field: str, max_bytes: int,
                   max_pixels: int) -> Upload:
    """Check one uploaded file; raise ApiError 400/413 with a message saying what to do.

    ``field`` names the form field in messages; sizes are in bytes and pixels.
    """
    name = safe_filename(raw_name)
    if not data:
        raise ApiError(f"The file in field '{field}' ({name}) is empty; "
                       "upload a JPEG or PNG photo.", "empty_file", status=400)
    if len(data) > max_bytes:
        raise ApiError(f"{name} is {len(data)} bytes; the limit is "
                       f"{max_bytes} bytes. Resize or recompress the image and retry.",
                       "too_large", status=413)
    try:
        with warnings.catch_warnings():
            # Our own pixel cap below gives the actionable message; Pillow's bomb
            # warning would only duplicate it (and is an error under pytest).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or "?"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError):
        raise ApiError(f"{name} is not an image this service can read; "
                       "upload a JPEG, PNG, GIF, BMP, TIFF or WebP file.",
                       "not_an_image", status=400) from None
    if fmt not in ACCEPTED_FORMATS:
        raise ApiError(f"{name} is a {fmt} image; upload a JPEG, "
                       "PNG, GIF, BMP, TIFF or WebP file.", "unsupported_format", status=400)
    if width * height > max_pixels:
        raise ApiError(f"{name} is {width}x{height} pixels; the limit "
                       f"is {max_pixels} pixels. Downscale the image and retry.",
                       "too_many_pixels", status=413)
    return Upload(data=data, filename=name, stem=stem_of(name), width=width, height=height,
                  format=fmt)


def validate_identity_name(name: str) -> str:
    """Return ``name`` if the gallery accepts it as an identity name; else ApiError 400."""
    try:
        return validate_name(name)
    except GalleryError as exc:
        raise ApiError(f"Not allowed: {exc}.", "bad_name",
                       status=400) from None

"""Cheap validation of uploaded images, before anything is stored or queued.

The web tier never decodes pixels (the workers do): it checks the size, that Pillow
recognises the header, and the declared dimensions against the pixel cap. A file
that passes here can still fail deeper in the worker (a truncated JPEG body), which
then comes back as a clear 400 through the task's error.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from PIL import Image, UnidentifiedImageError

from webapp.errors import ApiError

# Formats the workers' decoder handles; anything else Pillow opens is refused early.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
IDENTITY_NAME = re.compile(r"^[A-Za-z0-9 ._-]{1,64}$")


@dataclass(frozen=True)
class Upload:
    """One validated image: its bytes, a storage-safe file name and that name's stem."""

    data: bytes
    filename: str
    stem: str
    width: int
    height: int
    format: str


def safe_filename(raw: str | None, default: str = "upload.jpg") -> str:
    """Return the base name of ``raw`` with characters other than ``A-Za-z0-9._-``
    replaced by ``_``, so it is a safe S3 key part; ``default`` when nothing is left.

    >>> safe_filename("C:\\\\photos\\\\test_000.jpg")
    'test_000.jpg'
    """
    if not raw:
        return default
    base = PureWindowsPath(PurePosixPath(raw).name).name
    cleaned = _UNSAFE.sub("_", base).strip("._")
    return cleaned[:128] or default


def stem_of(filename: str) -> str:
    """The file name without its last extension (``test_000.jpg`` → ``test_000``)."""
    stem = PurePosixPath(filename).stem
    return stem or filename


def validate_image(data: bytes, raw_name: str | None, *, field: str, max_bytes: int,
                   max_pixels: int) -> Upload:
    """Check one uploaded file; raise ApiError 400/413 with a message saying what to do.

    ``field`` names the form field in messages; sizes are in bytes and pixels.
    """
    name = safe_filename(raw_name)
    if not data:
        raise ApiError(400, "empty_file", f"The file in field '{field}' ({name}) is empty; "
                       "upload a JPEG or PNG photo.")
    if len(data) > max_bytes:
        raise ApiError(413, "too_large", f"{name} is {len(data)} bytes; the limit is "
                       f"{max_bytes} bytes. Resize or recompress the image and retry.")
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
        raise ApiError(400, "not_an_image", f"{name} is not an image this service can read; "
                       "upload a JPEG, PNG, GIF, BMP, TIFF or WebP file.") from None
    if fmt not in ACCEPTED_FORMATS:
        raise ApiError(400, "unsupported_format", f"{name} is a {fmt} image; upload a JPEG, "
                       "PNG, GIF, BMP, TIFF or WebP file.")
    if width * height > max_pixels:
        raise ApiError(413, "too_many_pixels", f"{name} is {width}x{height} pixels; the limit "
                       f"is {max_pixels} pixels. Downscale the image and retry.")
    return Upload(data=data, filename=name, stem=stem_of(name), width=width, height=height,
                  format=fmt)


def validate_identity_name(name: str) -> str:
    """Return ``name`` if it is 1–64 letters, digits, spaces or ``._-``; else ApiError 400."""
    if not IDENTITY_NAME.fullmatch(name) or not name.strip():
        raise ApiError(400, "bad_name", f"Identity name {name[:80]!r} is not allowed: use 1-64 "
                       "letters, digits, spaces, dots, underscores or hyphens.")
    return name

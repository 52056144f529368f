"""Validation of uploads at the web tier's door, before anything is stored or queued.

The web tier never decodes pixels (the workers do): it runs the same header probe as
the workers (:func:`recognition.probe.probe`: size, format, declared pixels, polyglots,
a structure that ends early) and the file-name rules of :mod:`tasks.keys`. A refused
upload leaves nothing in S3. A file that passes can still fail deeper in the worker
(damage inside the compressed data), which comes back as a clear 400 through the
task's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from recognition.errors import ImageError
from recognition.names import RESERVED, name_problem
from recognition.probe import probe
from tasks.keys import filename_problem, safe_filename, stem_of
from webapp.errors import ApiError

#: ImageError code → (HTTP status, the API's stable error code).
REFUSALS = {
    "empty": (400, "empty_file"),
    "too_large": (413, "too_large"),
    "too_many_pixels": (413, "too_many_pixels"),
    "unsupported": (400, "unsupported_format"),
    "polyglot": (400, "polyglot"),
    "truncated": (400, "truncated"),
    "not_an_image": (400, "not_an_image"),
}


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
    name = validate_filename(raw_name, field)
    try:
        header = probe(data, max_pixels, max_bytes)
    except ImageError as exc:
        status, code = REFUSALS.get(exc.code, (400, "not_an_image"))
        raise ApiError(f"{name} (field '{field}') was refused: {exc}.", code,
                       status=status) from None
    return Upload(data=data, filename=name, stem=stem_of(name), width=header.width,
                  height=header.height, format=header.format)


def validate_filename(raw_name: str | None, field: str) -> str:
    """The storage-safe name of a client's file name; ApiError 400 ``bad_filename`` when
    it is hostile (a ``..`` segment, a control character, over 255 bytes)."""
    problem = filename_problem(raw_name)
    if problem is not None:
        shown = ascii((raw_name or "")[:60]) + ("..." if len(raw_name or "") > 60 else "")
        raise ApiError(f"The file name in field '{field}' ({shown}) is refused: {problem}.",
                       "bad_filename", status=400)
    return safe_filename(raw_name)


def read_upload(stream: IO[bytes], max_bytes: int) -> bytes:
    """The bytes of one uploaded file, refusing one over ``max_bytes`` (413) from its
    spooled size, before it is read into memory."""
    if stream.seekable():
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
        if size > max_bytes:
            raise ApiError(f"A file is {size} bytes; the limit is {max_bytes} bytes "
                           "(FACEFLEET_MAX_UPLOAD_BYTES). Resize or recompress the image "
                           "and retry.", "too_large", status=413)
    return stream.read(max_bytes + 1)


def validate_identity_name(name: str) -> str:
    """Return ``name`` if the gallery accepts it as an identity name; else ApiError 400
    (``reserved_name`` for Unknown/NoFace, ``bad_name`` otherwise)."""
    problem = name_problem(name)
    if problem is not None:
        code = "reserved_name" if name.casefold() in RESERVED else "bad_name"
        shown = ascii(name[:72]) + ("..." if len(name) > 72 else "")
        raise ApiError(f"Not allowed: invalid identity name {shown}: {problem}.", code,
                       status=400)
    return name

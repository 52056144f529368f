"""Where a request's objects live in S3, and which names are allowed: one rule each.

- input bucket: ``<request id>/<file name>`` (a recognition) and
  ``enrol/<request id>/<nnn>-<file name>`` (the photos of one enrolment);
- output bucket: the label object ``<stem>`` (what the original system's users read)
  and Celery's result (:func:`tasks.results.result_key`).

Request ids are uuid4 hex (32 lowercase hex digits): anything else cannot name a
request of this service. File names keep only ``A-Za-z0-9._-`` of their base name, so
a client's name can never climb out of its prefix or carry control characters; a name
that tries (a ``..`` segment, a control character, more bytes than a file system
allows) is refused outright by :func:`filename_problem` rather than quietly renamed.
"""

from __future__ import annotations

import re
import uuid
from pathlib import PurePosixPath, PureWindowsPath

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
ENROL_PREFIX = "enrol/"
#: Longest file name kept in a key (S3 keys may hold 1024 bytes).
MAX_FILENAME = 128
DEFAULT_FILENAME = "upload.jpg"
#: Longest file name a client may send, in UTF-8 bytes (what file systems allow).
MAX_CLIENT_FILENAME_BYTES = 255
#: Most photos one enrolment task may name (FACEFLEET_WEB_MAX_FILES's maximum).
MAX_ENROL_PHOTOS = 256
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def is_request_id(text: str) -> bool:
    """True when ``text`` has the form of a request id of this service."""
    return REQUEST_ID.fullmatch(text) is not None


def safe_filename(raw: str | None, default: str = DEFAULT_FILENAME) -> str:
    """The base name of ``raw`` (POSIX or Windows path) with every run of characters
    other than ``A-Za-z0-9._-`` replaced by ``_``; ``default`` when nothing is left.

    >>> safe_filename("C:\\\\photos\\\\test_000.jpg")
    'test_000.jpg'
    """
    if not raw:
        return default
    base = PureWindowsPath(PurePosixPath(raw).name).name
    cleaned = _UNSAFE.sub("_", base).strip("._")
    return cleaned[:MAX_FILENAME] or default


def filename_problem(raw: str | None) -> str | None:
    """Why a client's file name is refused, or None (then :func:`safe_filename` maps it
    to the name stored). ``C:\\photos\\me.jpg`` is fine (old browsers send paths)."""
    if raw is None:
        return None
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_CLIENT_FILENAME_BYTES:
        return f"it is {size:,} bytes long; at most {MAX_CLIENT_FILENAME_BYTES}"
    control = _CONTROL.search(raw)
    if control is not None:
        return (f"it contains the control character U+{ord(control.group()):04X} at "
                f"position {control.start() + 1}")
    if ".." in re.split(r"[/\\]", raw):
        return "it contains a '..' path segment; send the file's own name, not a path"
    return None


def stem_of(filename: str | None) -> str:
    """The label object's key: the safe file name without its last extension
    (``test_000.jpg`` → ``test_000``)."""
    name = safe_filename(filename)
    return PurePosixPath(name).stem or name


def image_key(request_id: str, filename: str | None) -> str:
    """Input-bucket key of a recognition's image."""
    return f"{request_id}/{safe_filename(filename)}"


def enrol_key(request_id: str, index: int, filename: str | None) -> str:
    """Input-bucket key of the ``index``-th photo of an enrolment."""
    return f"{ENROL_PREFIX}{request_id}/{index:03d}-{safe_filename(filename)}"


def request_prefixes(request_id: str) -> tuple[str, str]:
    """Input-bucket prefixes under which a request's images lie."""
    return f"{request_id}/", f"{ENROL_PREFIX}{request_id}/"

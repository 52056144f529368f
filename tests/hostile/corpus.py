"""The hostile-input corpus of the HTTP boundary: one row per case, with how to build
its request and what the service must answer (status, stable error code, and a
fragment of the message that names the real cause).

Requests are raw multipart bodies built here (not by ``requests``), so that a NUL, an
escape character or ``../`` in a file name reaches the server exactly as a hostile
client would send it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.hostile import inputs

RECOGNITIONS = "/api/v1/recognitions"
#: Photo limit of one enrolment in the stack under test (FACEFLEET_WEB_MAX_FILES).
MAX_FILES = 16
Part = tuple[str, str, bytes]  # (field, file name, content)


@dataclass(frozen=True)
class Case:
    """One hostile request and the refusal it must get."""

    name: str
    method: str
    path: str
    parts: Callable[[], list[Part]] = field(default=lambda: [])
    status: int = 400
    code: str = ""  # the JSON ``error``; compat routes answer text/plain, code unchecked
    fragment: str = ""  # must appear in the message
    api_key: bool = False

    @property
    def plain_text(self) -> bool:
        """The compat route answers text/plain."""
        return self.path == "/"


def image(data: Callable[[], bytes], filename: str = "photo.jpg",
          field_name: str = "image") -> Callable[[], list[Part]]:
    """One file in ``field_name``."""
    return lambda: [(field_name, filename, data())]


def multipart(parts: list[Part]) -> tuple[bytes, str]:
    """A multipart/form-data body with the file names written byte for byte."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, filename, content in parts:
        # Quoted-string escapes only (as browsers do): every other byte goes as is.
        quoted = filename.replace("\\", "\\\\").replace('"', "%22")
        disposition = (f'form-data; name="{name}"; filename="'.encode()
                       + quoted.encode("utf-8", "surrogateescape") + b'"')
        body += (b"--" + boundary.encode() + b"\r\nContent-Disposition: " + disposition
                 + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(name: str, data: Callable[[], bytes], status: int, code: str, fragment: str,
            filename: str = "photo.jpg") -> Case:
    return Case(name, "POST", RECOGNITIONS, image(data, filename), status, code, fragment)


def _enrol(name: str, identity: str, parts: Callable[[], list[Part]], status: int, code: str,
           fragment: str) -> Case:
    return Case(name, "POST", f"/api/v1/identities/{identity}/images", parts, status, code,
                fragment, api_key=True)


def _many_photos() -> list[Part]:
    return [("image", f"p{n}.png", inputs.small_png()) for n in range(100)]


def _good_and_bad() -> list[Part]:
    return [("image", "good.png", inputs.small_png()), ("image", "bad.svg", inputs.svg())]


TOO_MANY = "FACEFLEET_MAX_PIXELS"
CASES: tuple[Case, ...] = (
    # ---- pixels: decompression bombs and huge headers, refused from the header ----
    _upload("png-header-100000x100000", lambda: inputs.png_claiming(100_000, 100_000), 413,
            "too_many_pixels", "100000x100000 = 10,000,000,000 pixels"),
    Case("compat-png-header-30000x30000", "POST", "/",
         image(lambda: inputs.png_claiming(30_000, 30_000), "big.png", "inputFile"), 413,
         "", "30000x30000 = 900,000,000 pixels; the limit is 40,000,000"),
    _upload("png-zlib-bomb-8000x8000", inputs.png_zlib_bomb, 413, "too_many_pixels",
            "8000x8000"),
    _upload("jpeg-header-65000x65000", lambda: inputs.jpeg_claiming(65_000, 65_000), 413,
            "too_many_pixels", "65000x65000"),
    _upload("gif-header-65535x65535", lambda: inputs.gif_claiming(65_535, 65_535), 413,
            "too_many_pixels", TOO_MANY),
    _upload("tiff-header-100000x100000", lambda: inputs.tiff_claiming(100_000, 100_000), 413,
            "too_many_pixels", "100000x100000"),
    _upload("webp-canvas-16384x16384", lambda: inputs.webp_claiming(16_384, 16_384), 413,
            "too_many_pixels", "268,435,456 pixels"),
    # ---- sizes ----
    _upload("zero-bytes", lambda: b"", 400, "empty_file", "empty (0 bytes)"),
    _upload("just-over-the-byte-limit", lambda: b"\xff\xd8" + b"\0" * (10 * 2**20 - 1), 413,
            "too_large", "FACEFLEET_MAX_UPLOAD_BYTES"),
    # ---- cut files ----
    _upload("truncated-png", inputs.truncated_png, 400, "truncated", "inside its 'IDAT'"),
    _upload("truncated-jpeg", inputs.truncated_jpeg, 400, "truncated", "end-of-image"),
    _upload("png-signature-only", lambda: b"\x89PNG\r\n\x1a\n", 400, "truncated",
            "truncated"),
    # ---- other formats, named ----
    _upload("svg", inputs.svg, 400, "unsupported_format", "SVG"),
    _upload("svg-with-xml-declaration", lambda: inputs.svg(True), 400, "unsupported_format",
            "SVG"),
    _upload("heic", lambda: inputs.iso_media(b"heic"), 400, "unsupported_format", "HEIC"),
    _upload("avif", lambda: inputs.iso_media(b"avif"), 400, "unsupported_format", "AVIF"),
    _upload("pdf", inputs.pdf, 400, "unsupported_format", "PDF document"),
    _upload("zip", inputs.zip_archive, 400, "unsupported_format", "ZIP archive"),
    _upload("html", lambda: b"<!DOCTYPE html><html><body>hi</body></html>", 400,
            "unsupported_format", "HTML"),
    _upload("ico-pillow-reads-but-we-do-not", inputs.ico, 400, "unsupported_format", "ICO"),
    _upload("text-named-jpg", lambda: b"this is a shopping list\n", 400, "not_an_image",
            "text, not an image"),
    _upload("random-bytes", lambda: bytes(range(256)) * 8, 400, "not_an_image",
            "not a recognised image format"),
    # ---- polyglots ----
    _upload("jpeg-plus-zip", inputs.jpeg_plus_zip, 400, "polyglot", "ZIP archive"),
    _upload("jpeg-with-pdf-header", inputs.jpeg_with_pdf_header, 400, "polyglot", "PDF"),
    _upload("gif-with-script", inputs.gif_with_script, 400, "polyglot", "<script"),
    _upload("png-plus-html", inputs.png_plus_html, 400, "polyglot", "<html"),
    # ---- file names ----
    _upload("filename-dot-dot-slash", inputs.small_png, 400, "bad_filename", "'..'",
            filename="../../etc/passwd.png"),
    _upload("filename-dot-dot-backslash", inputs.small_png, 400, "bad_filename", "'..'",
            filename="..\\..\\boot.png"),
    _upload("filename-nul", inputs.small_png, 400, "bad_filename", "U+0000 at position 2",
            filename="a\x00.png"),
    _upload("filename-escape-sequence", inputs.small_png, 400, "bad_filename", "U+001B",
            filename="\x1b[31mred.png"),
    _upload("filename-5kb", inputs.small_png, 400, "bad_filename", "5,124 bytes long",
            filename="n" * 5120 + ".png"),
    # ---- enrolments ----
    _enrol("enrol-100-files", "Many", _many_photos, 413, "too_many_files",
           f"100 files sent; at most {MAX_FILES}"),
    _enrol("enrol-one-bad-photo-enrols-nothing", "Mixed Bag", _good_and_bad, 400,
           "unsupported_format", "bad.svg"),
    _enrol("name-control-character", "Pa%0Aul", image(inputs.small_png), 400, "bad_name",
           "U+000A"),
    _enrol("name-nul", "Pa%00ul", image(inputs.small_png), 400, "bad_name", "U+0000"),
    _enrol("name-cyrillic-a-confusable", "P%D0%B0ul", image(inputs.small_png), 400,
           "bad_name", "U+0430 CYRILLIC SMALL LETTER A"),
    _enrol("name-fullwidth-confusable", "%EF%BC%B0aul", image(inputs.small_png), 400,
           "bad_name", "FULLWIDTH LATIN CAPITAL LETTER P"),
    _enrol("name-zero-width-space", "Pa%E2%80%8Bul", image(inputs.small_png), 400,
           "bad_name", "U+200B"),
    _enrol("name-reserved-unknown", "Unknown", image(inputs.small_png), 400,
           "reserved_name", "labels of unmatched faces"),
    _enrol("name-reserved-noface", "noface", image(inputs.small_png), 400,
           "reserved_name", "labels of unmatched faces"),
    # 3000: gunicorn itself answers 414 for request lines over 4094 bytes.
    _enrol("name-3kb", "x" * 3000, image(inputs.small_png), 400, "bad_name",
           "3000 characters"),
    # ---- request ids: guessing and path tricks ----
    Case("id-path-traversal", "GET", RECOGNITIONS + "/..%2F..%2Fetc%2Fpasswd", status=404),
    Case("id-too-short", "GET", RECOGNITIONS + "/" + "0" * 31, status=404,
         code="unknown_request"),
    Case("id-uppercase", "GET", RECOGNITIONS + "/" + "A" * 32, status=404,
         code="unknown_request"),
    Case("id-3kb", "GET", RECOGNITIONS + "/" + "a" * 3000, status=404,
         code="unknown_request"),
    Case("id-valid-looking-unknown", "GET", RECOGNITIONS + "/" + uuid.uuid4().hex, status=404,
         code="unknown_request", fragment="was submitted"),
)

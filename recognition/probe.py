"""What an upload is, from its bytes alone, before a single pixel is decoded.

:func:`probe` is the one check every boundary runs first -- the web tier's door, the
worker's decoder and the command line: it names the format, reads the dimensions from
the header and refuses, each with its real cause (``ImageError.code``):

- ``empty``: zero bytes; ``too_large``: more bytes than allowed;
- ``unsupported``: a format this service does not decode, named (SVG, PDF, HEIC, AVIF,
  ZIP, PSD...), recognised by its signature or by Pillow;
- ``polyglot``: a supported image that is also another kind of file (a PDF header in
  its first KiB, a ZIP archive appended, HTML or script markup at either end) -- a
  file meant to be read two ways is not a photo;
- ``too_many_pixels``: the header claims more pixels than the cap. Pillow's own bomb
  check in ``Image.open`` would refuse a 30 000 x 30 000 PNG as "not an image" (its
  error carries no dimensions), so the header is read by the format's own plugin here,
  without that check, and our cap speaks instead;
- ``truncated``: the file's structure ends early (a PNG without its IEND chunk, a JPEG
  without an end-of-image marker after its scan, a WebP shorter than its RIFF size);
- ``not_an_image``: nothing recognisable.

Pure: bytes in, a :class:`Header` or an :class:`ImageError` out; no I/O, no decoding.
Its cost is a header parse plus a few scans of the bytes (memchr-speed), a few
milliseconds for a 10 MB file.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from recognition.errors import ImageError

#: Formats the worker decodes (Pillow's names; MPO is a multi-picture JPEG).
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
SUPPORTED_TEXT = "JPEG, PNG, GIF, BMP, TIFF or WebP"
#: Bytes at each end searched for a second format (browsers sniff the first 512;
#: appended payloads sit at the end).
SNIFF_BYTES = 1024
#: The longest ZIP end-of-central-directory record: 22 bytes + a 65 535-byte comment.
ZIP_EOCD_SPAN = 22 + 0xFFFF

# Errors Pillow's header parsers raise on garbage (it has no single exception type).
_HEADER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                  TypeError, KeyError)
_MARKUP = re.compile(rb"<(?:script|html|svg|\?php|iframe|body)\b", re.IGNORECASE)
_SVG = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_ISO_BRANDS = {
    b"heic": "a HEIC image", b"heix": "a HEIC image", b"hevc": "a HEIC image",
    b"hevx": "a HEIC image", b"heim": "a HEIC image", b"heis": "a HEIC image",
    b"mif1": "a HEIF image", b"msf1": "a HEIF image", b"avif": "an AVIF image",
    b"avis": "an AVIF image", b"crx ": "a Canon CR3 raw photo",
}
# Leading signatures of formats people send by mistake (or on purpose), named.
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"8BPS", "a Photoshop (PSD) document"),
    (b"%!PS", "a PostScript document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xffO\xffQ", "a JPEG 2000 image"),
    (b"RIFF", None),  # WebP or something else in RIFF: decided below
    (b"\x7fELF", "an ELF executable"),
)


@dataclass(frozen=True)
class Header:
    """What :func:`probe` found: Pillow's format name and the declared size."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Declared width x height."""
        return self.width * self.height


def probe(data: bytes, max_pixels: int, max_bytes: int | None = None) -> Header:
    """Identify ``data`` and check it against the limits; raise ImageError if refused.

    ``max_pixels`` is ``FACEFLEET_MAX_PIXELS``, ``max_bytes``
    ``FACEFLEET_MAX_UPLOAD_BYTES`` (None: no byte limit here).
    """
    if not data:
        raise ImageError("the file is empty (0 bytes); send the image itself", "empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(f"the file is {len(data)} bytes; the limit is {max_bytes} "
                         "(FACEFLEET_MAX_UPLOAD_BYTES); send a smaller or recompressed "
                         "image", "too_large")
    foreign = foreign_format(data)
    if foreign is not None:
        raise ImageError(f"this is {foreign}, not a photo in a format this service decodes; "
                         f"send a {SUPPORTED_TEXT} file", "unsupported")
    header = read_header(data)
    if header.width <= 0 or header.height <= 0:
        raise ImageError(f"the {header.format} header claims a size of "
                         f"{header.width}x{header.height}", "not_an_image")
    if header.pixels > max_pixels:
        raise ImageError(f"the image is {header.width}x{header.height} = "
                         f"{header.pixels:,} pixels; the limit is {max_pixels:,} "
                         "(FACEFLEET_MAX_PIXELS); downscale it and send it again",
                         "too_many_pixels")
    second = second_format(data)
    if second is not None:
        raise ImageError(f"this {header.format} file is also {second}: a polyglot file; "
                         "send a plain photo, re-saved by an image editor", "polyglot")
    cut = truncation(data, header.format)
    if cut is not None:
        raise ImageError(f"the {header.format} file is truncated: {cut}; send the "
                         "complete file again", "truncated")
    return header


def foreign_format(data: bytes) -> str | None:
    """The name of a format this service refuses, recognised by its signature."""
    head = data[:SNIFF_BYTES]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return _ISO_BRANDS.get(brand, f"an ISO media file (brand {brand.decode('latin-1')!r}: "
                                      "a video or HEIF-family file)")
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            if signature == b"RIFF":
                return None if head[8:12] == b"WEBP" else "a RIFF audio or video file"
            return name
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):  # no image starts so
        return "an SVG vector drawing" if _SVG.search(head) else "HTML or XML markup"
    return None


def second_format(data: bytes) -> str | None:
    """What else a supported image also is, where that other format's readers look."""
    head, tail = data[:SNIFF_BYTES], data[-SNIFF_BYTES:]
    if b"%PDF-" in head:
        return "a PDF document (a PDF header in its first KiB)"
    if _has_zip_directory(data):
        return "a ZIP archive (one is appended to it)"
    for part in (head, tail):
        markup = _MARKUP.search(part)
        if markup is not None:
            return f"markup ({markup.group().decode('latin-1')!r} inside the file)"
    return None


def _has_zip_directory(data: bytes) -> bool:
    # A ZIP reader starts from the end-of-central-directory record at the very end
    # (its comment, whose length it records, is the only thing after it).
    window = data[-ZIP_EOCD_SPAN:]
    at = window.rfind(b"PK\x05\x06")
    while at >= 0:
        if at + 22 <= len(window):
            (comment,) = struct.unpack_from("<H", window, at + 20)
            if at + 22 + comment == len(window):
                return True
        at = window.rfind(b"PK\x05\x06", 0, at)
    return False


def read_header(data: bytes) -> Header:
    """Format and declared size from the header, without Pillow's decompression-bomb
    check (the caller applies our own cap); ImageError when it is no image we know."""
    Image.init()
    prefix = data[:16]
    for fmt in ACCEPTED_FORMATS:
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept is not None else True
        if isinstance(verdict, str) or not verdict:  # a str is Pillow's "maybe" warning
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a header parse's warnings say nothing
                image = factory(io.BytesIO(data), "")
        except Image.DecompressionBombError as exc:
            # Some plugins (WebP) check while parsing; the caller's cap is lower anyway.
            raise ImageError(f"the {fmt} image has {_bomb_pixels(exc)} pixels, above "
                             "Pillow's hard limit and the FACEFLEET_MAX_PIXELS cap; "
                             "downscale it and send it again", "too_many_pixels") from None
        except _HEADER_ERRORS as exc:
            raise ImageError(f"the {fmt} header is truncated or corrupt ({exc}); send "
                             "the complete file again", "truncated") from None
        width, height = image.size
        return Header(image.format or fmt, width, height)
    raise ImageError(_unknown_message(data), _unknown_code(data))


def _bomb_pixels(exc: Image.DecompressionBombError) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,}" if found else "too many"


def _unknown_code(data: bytes) -> str:
    return "unsupported" if _other_pillow_format(data) else "not_an_image"


def _unknown_message(data: bytes) -> str:
    other = _other_pillow_format(data)
    if other is not None:
        return (f"this is an image in {other} format, which this service does not "
                f"decode; send a {SUPPORTED_TEXT} file")
    head = data[:256]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""  # a multi-byte character cut at 256 bytes also lands here: fine
    if text and all(ch.isprintable() or ch.isspace() for ch in text):
        return (f"this is text, not an image (it starts with {head[:24]!r}); "
                f"send a {SUPPORTED_TEXT} file")
    return (f"not a recognised image format (it starts with {head[:8]!r}); "
            f"send a {SUPPORTED_TEXT} file")


def _other_pillow_format(data: bytes) -> str | None:
    """The format name when Pillow knows ``data`` as a format we do not accept."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.format
    except Image.DecompressionBombError:
        return "very large"
    except (UnidentifiedImageError, *_HEADER_ERRORS):
        return None


# ---- truncation: does the file's structure reach its end? -------------------------


def truncation(data: bytes, fmt: str) -> str | None:
    """Where ``data`` (of format ``fmt``) ends early, or None when it looks complete.

    Structure only (chunk and segment lengths, end markers): cheap enough for the web
    tier. Damage inside compressed data is the decoder's to find, in the worker.
    """
    if fmt == "PNG":
        return _png_truncation(data)
    if fmt in {"JPEG", "MPO"}:
        return _jpeg_truncation(data)
    if fmt == "WEBP" and len(data) >= 8:
        (size,) = struct.unpack_from("<I", data, 4)
        if size + 8 > len(data):
            return f"its RIFF header says {size + 8:,} bytes but the file has {len(data):,}"
    return None


def _png_truncation(data: bytes) -> str | None:
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 12 + length
        if end > len(data):
            name = kind.decode("latin-1")
            return (f"it ends inside its {name!r} chunk, {end - len(data):,} bytes short "
                    f"of the chunk's end")
        if kind == b"IEND":
            return None
        at = end
    return "it ends before the IEND chunk that closes every PNG"


def _jpeg_truncation(data: bytes) -> str | None:
    at = 2  # after SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None  # not a marker sequence we can walk: leave it to the decoder
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, up to EOI
            # From the end: the marker is (nearly) the last thing in a complete file,
            # so only a cut file, the one refused, costs a scan of all its bytes.
            if data.rfind(b"\xff\xd9", at + 2 + length) < 0:
                return "its compressed data stops before the end-of-image marker"
            return None
        at += 2 + length
    return "it ends before its first scan (the compressed image data)"

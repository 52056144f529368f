"""Hostile files, built in code from a few bytes each (nothing binary is committed):
headers that claim huge sizes, a real zlib bomb, cut files, other formats and
polyglots. Each builder returns the bytes a client would upload.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    """``image`` saved as ``fmt``."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def small_png() -> bytes:
    """A valid 64x64 PNG (no face: answered NoFace)."""
    return encode(Image.new("RGB", (64, 64), (120, 140, 160)), "PNG")


def small_jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    """A valid JPEG of noise (so that it has a real scan to cut)."""
    return encode(Image.effect_noise(size, 40).convert("RGB"), "JPEG", quality=90)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, idat: bytes = b"\0" * 64) -> bytes:
    """A complete, tiny PNG whose IHDR claims ``width`` x ``height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(idat)) + _chunk(b"IEND", b""))


def png_zlib_bomb(side: int = 8000) -> bytes:
    """A real bomb: ``side``² grey pixels of zeros, about 0.1% of their size on the wire."""
    rows = (b"\0" + b"\0" * side) * side  # filter byte + one byte per pixel
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 frame header claims ``width`` x ``height``."""
    data = bytearray(small_jpeg((16, 16)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen and image descriptor claim ``width`` x ``height``."""
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
            + b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
            + b"\x02\x02\x44\x01\x00" + b"\x3b")


def tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF whose first IFD claims ``width`` x ``height``."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, count, value) for tag, kind, count, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def webp_claiming(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas claims ``width`` x ``height``."""
    vp8x = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def truncated_png() -> bytes:
    """The first half of a PNG of noise: it ends inside its IDAT chunk."""
    data = encode(Image.effect_noise((128, 128), 60).convert("RGB"), "PNG")
    return data[: len(data) // 2]


def truncated_jpeg() -> bytes:
    """The first 60% of a JPEG: its scan stops before the end-of-image marker."""
    data = small_jpeg((128, 128))
    return data[: len(data) * 3 // 5]


def svg(with_declaration: bool = False) -> bytes:
    """A tiny SVG drawing (with or without an XML declaration)."""
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n' if with_declaration else b""
    return head + (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                   b'<circle cx="32" cy="32" r="30"/></svg>')


def iso_media(brand: bytes) -> bytes:
    """The start of an ISO-BMFF file (HEIC, AVIF, MP4) with major brand ``brand``."""
    ftyp = brand + b"\x00\x00\x00\x00" + brand + b"mif1"
    return struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + b"\x00" * 64


def pdf() -> bytes:
    """A minimal PDF document."""
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages"
            b"/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def zip_archive() -> bytes:
    """A ZIP archive with one text file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("readme.txt", "not a photo")
    return buf.getvalue()


def ico() -> bytes:
    """A Windows icon: an image Pillow reads, in a format the service does not take."""
    return encode(Image.new("RGB", (32, 32), (1, 2, 3)), "ICO")


def jpeg_plus_zip() -> bytes:
    """A JPEG with a ZIP archive appended (a 'GIFAR'-style polyglot)."""
    return small_jpeg() + zip_archive()


def jpeg_with_pdf_header() -> bytes:
    """A JPEG whose comment segment, in its first KiB, starts a PDF."""
    data = small_jpeg()
    comment = b"%PDF-1.4 polyglot"
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return data[:2] + segment + data[2:]


def gif_with_script() -> bytes:
    """A valid GIF whose comment extension carries a script tag."""
    data = encode(Image.new("P", (8, 8), 1), "GIF")
    payload = b"<script>alert(1)</script>"
    extension = b"\x21\xfe" + bytes([len(payload)]) + payload + b"\x00"
    return data[:-1] + extension + data[-1:]


def png_plus_html() -> bytes:
    """A PNG with an HTML page appended after IEND."""
    return small_png() + b"<html><body>hello</body></html>"

"""Every kind of real-world input decodes to upright RGB or fails with one clear error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from recognition.errors import ImageError
from recognition.images import decode_image, read_image_file

MAX_PIXELS = 40_000_000


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _pattern(width: int = 64, height: int = 48) -> Image.Image:
    """A colour image whose top-left corner is red and the rest blue."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 8, 8))
    return image


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("P", "GIF"),
     ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("1", "BMP"), ("RGB", "WEBP"), ("I", "TIFF"),
     ("I;16", "PNG")],
)
def test_modes_become_rgb(mode: str, fmt: str) -> None:
    data = _encode(_pattern().convert(mode), fmt)
    image = decode_image(data, MAX_PIXELS)
    assert image.mode == "RGB"
    assert image.size == (64, 48)


def test_rgba_transparency_composited_on_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    out = decode_image(_encode(image, "PNG"), MAX_PIXELS)
    assert out.getpixel((5, 5)) == (255, 255, 255)


def test_palette_with_transparency_has_no_warning() -> None:
    image = Image.new("P", (10, 10), 3)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    data = _encode(image, "PNG", transparency=3)
    out = decode_image(data, MAX_PIXELS)  # filterwarnings=error would fail on a warning
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_16bit_png_is_scaled_not_clipped() -> None:
    ramp = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = _encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data, MAX_PIXELS)
    assert [out.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(_pattern(64, 48), "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image(data, MAX_PIXELS)
    assert out.size == (48, 64)
    red, _, blue = out.getpixel((44, 4))  # the red corner is now top-right
    assert red > 200 and blue < 60


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_image(buf.getvalue(), MAX_PIXELS)
    red, green, _ = out.getpixel((10, 10))
    assert red > 200 and green < 60


def _expect(code: str, data: bytes, **kwargs: object) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, kwargs.pop("max_pixels", MAX_PIXELS), **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code
    message = str(info.value)
    assert "Traceback" not in message and len(message) < 300
    return message


def test_empty_file() -> None:
    assert "empty" in _expect("empty", b"")


def test_text_renamed_jpg() -> None:
    message = _expect("not_an_image", b"hello, this is a text file\nnot a photo\n")
    assert "text" in message and "JPEG" in message


def test_random_bytes() -> None:
    assert "recognised" in _expect("not_an_image", bytes(range(256)) * 4)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt: str) -> None:
    data = _encode(Image.effect_noise((256, 256), 60).convert("RGB"), fmt)
    assert "truncated" in _expect("truncated", data[: len(data) // 2])


def test_byte_limit() -> None:
    data = _encode(_pattern(), "PNG")
    assert "FACEFLEET_MAX_UPLOAD_BYTES" in _expect("too_large", data, max_bytes=len(data) - 1)


def test_pixel_cap_checked_before_decoding() -> None:
    data = _encode(Image.new("L", (3000, 3000)), "PNG", optimize=True)
    assert len(data) < 100_000  # compresses to almost nothing: a small bomb
    assert "FACEFLEET_MAX_PIXELS" in _expect("too_many_pixels", data, max_pixels=1_000_000)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims a huge size, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _chunk(b"IEND", b""))


def test_decompression_bomb_refused_by_pil_too() -> None:
    # Even with our cap lifted, PIL's own limit (MAX_IMAGE_PIXELS x 2) gives a clear error.
    message = _expect("too_many_pixels", _png_header_only(60_000, 60_000), max_pixels=10**12)
    assert "pixels" in message


def test_huge_header_rejected_by_our_cap() -> None:
    message = _expect("too_many_pixels", _png_header_only(7_000, 7_000))
    assert "7000x7000" in message


def test_read_image_file_missing(tmp_path) -> None:
    with pytest.raises(ImageError) as info:
        read_image_file(tmp_path / "nope.jpg", MAX_PIXELS)
    assert info.value.code == "not_found"

"""Turn uploaded bytes into an upright 8-bit RGB image, or fail with one clear error.

Every real-world oddity is handled here so the detector only ever sees RGB: EXIF
orientation, grayscale / palette / alpha / CMYK / 16-bit modes, animated images (first
frame), and hostile inputs (empty, truncated, not an image, too many pixels). The
pixel cap is checked from the header, before any pixel is decoded, so a decompression
bomb costs a few bytes of memory, not gigabytes.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recognition.errors import ImageError

# Errors PIL raises while decoding broken data (it has no single exception type).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                  IndexError, TypeError)
_SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF or WebP"


def decode_image(data: bytes, max_pixels: int, max_bytes: int | None = None) -> Image.Image:
    """Decode ``data`` into an upright RGB image.

    Raises :class:`recognition.errors.ImageError` with ``code`` one of ``empty``,
    ``too_large``, ``not_an_image``, ``truncated`` or ``unsupported``.
    """
    if not data:
        raise ImageError("the file is empty (0 bytes); upload the image itself", "empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(
            f"the file is {len(data):,} bytes, above the limit of {max_bytes:,} "
            "(FACEFLEET_MAX_UPLOAD_BYTES); send a smaller or recompressed image",
            "too_large",
        )
    with warnings.catch_warnings():
        # PIL's own bomb check only warns below 2x its limit; ours is explicit below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data)
        _check_pixels(image, max_pixels)
        try:
            image.seek(0)  # animated GIF/WebP/APNG, multi-page TIFF: the first frame
            image.load()
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{exc}; downscale the image", "too_large") from None
        except _DECODE_ERRORS as exc:
            raise ImageError(
                f"the {image.format or 'image'} data is truncated or corrupt ({exc}); "
                "send the complete file again",
                "truncated",
            ) from None
    image = _upright(image)
    return to_rgb(image)


def read_image_file(path: Path, max_pixels: int, max_bytes: int | None = None) -> bytes:
    """Read a file's bytes for :func:`decode_image`, failing clearly on I/O problems."""
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ImageError(
                f"the file is {path.stat().st_size:,} bytes, above the limit of "
                f"{max_bytes:,} (FACEFLEET_MAX_UPLOAD_BYTES); send a smaller image",
                "too_large",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no such file: {path}", "not_found") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file", "not_found") from None
    except PermissionError:
        raise ImageError(f"permission denied reading {path}", "unreadable") from None


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(_not_an_image_message(data), "not_an_image") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{exc}; downscale the image", "too_large") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(
            f"the image header is truncated or corrupt ({exc}); "
            "send the complete file again", "truncated",
        ) from None


def _not_an_image_message(data: bytes) -> str:
    head = data[:256]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""  # a multi-byte character cut at 256 bytes also lands here: fine
    if text and all(ch.isprintable() or ch.isspace() for ch in text):
        return (f"this is text, not an image (it starts with {head[:24]!r}); "
                f"send a {_SUPPORTED} file")
    return (f"not a recognised image format (it starts with {head[:8]!r}); "
            f"send a {_SUPPORTED} file")


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"the image claims a size of {width}x{height}", "not_an_image")
    if width * height > max_pixels:
        raise ImageError(
            f"the image is {width}x{height} = {width * height:,} pixels, above the limit "
            f"of {max_pixels:,} (FACEFLEET_MAX_PIXELS); downscale it before sending",
            "too_large",
        )


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(image)
    try:
        has_alpha = mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
            mode == "P" and "transparency" in image.info
        )
        if has_alpha:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"cannot convert a {mode} image to RGB ({exc}); "
            "save it as an ordinary RGB JPEG or PNG", "unsupported",
        ) from None


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer or float grayscale → 8-bit RGB by scaling, not clipping."""
    pixels = np.asarray(image).astype(np.float64)
    # 16-bit modes use the full 0..65535 range; "I" and "F" are scaled only when
    # their values leave the 8-bit range (some encoders store 8-bit data as "I").
    if image.mode.startswith("I;16") or pixels.max(initial=0.0) > 255.0:
        pixels = pixels / 257.0
    gray = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")

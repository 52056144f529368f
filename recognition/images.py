"""Turn uploaded bytes into an upright 8-bit RGB image, or fail with one clear error.

Every real-world oddity is handled here so the detector only ever sees RGB: EXIF
orientation, grayscale / palette / alpha / CMYK / 16-bit modes, animated images (first
frame), and hostile inputs (empty, truncated, not an image, another format, too many
pixels). :func:`recognition.probe.probe` checks the header first, before any pixel is
decoded, so a decompression bomb costs a few bytes of memory, not gigabytes.
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
from recognition.probe import ACCEPTED_FORMATS, probe

# Errors PIL raises while decoding broken data (it has no single exception type).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                  IndexError, TypeError)


def decode_image(data: bytes, max_pixels: int, max_bytes: int | None = None) -> Image.Image:
    """Decode ``data`` into an upright RGB image.

    Raises :class:`recognition.errors.ImageError` with ``code`` one of ``empty``,
    ``too_large``, ``too_many_pixels``, ``not_an_image``, ``unsupported``, ``polyglot``
    or ``truncated`` (:func:`recognition.probe.probe` says which, before decoding).
    """
    header = probe(data, max_pixels, max_bytes)
    with warnings.catch_warnings():
        # PIL's own bomb check only warns below 2x its limit; ours ran in probe().
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data)
        try:
            image.seek(0)  # animated GIF/WebP/APNG, multi-page TIFF: the first frame
            image.load()
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{exc}; downscale the image", "too_many_pixels") from None
        except _DECODE_ERRORS as exc:
            raise ImageError(
                f"the {header.format} data is truncated or corrupt ({exc}); "
                "send the complete file again",
                "truncated",
            ) from None
    image = _upright(image)
    return to_rgb(image)


def read_image_file(path: Path, max_pixels: int, max_bytes: int | None = None) -> bytes:
    """Read a file's bytes for :func:`decode_image` and :func:`probe` them, failing
    clearly on I/O problems and refused images before any model is loaded.

    Only regular files are read, and never more than ``max_bytes`` + 1 bytes: a device
    or a pipe (``/dev/zero``) reports size 0 and would otherwise be read forever.
    """
    try:
        if path.is_dir():
            raise ImageError(f"{path} is a folder, not an image file", "not_found")
        if path.exists() and not path.is_file():
            raise ImageError(f"{path} is not a regular file (a device, pipe or socket)",
                             "unreadable")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ImageError(f"the file is {size} bytes; the limit is {max_bytes} "
                             "(FACEFLEET_MAX_UPLOAD_BYTES); send a smaller image",
                             "too_large")
        with path.open("rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError(f"no such file: {path}", "not_found") from None
    except PermissionError:
        raise ImageError(f"permission denied reading {path}", "unreadable") from None
    probe(data, max_pixels, max_bytes)
    return data


def _open(data: bytes) -> Image.Image:
    try:
        # Only the formats probe() accepted: Pillow never guesses another one here.
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        # Our cap is above Pillow's (FACEFLEET_MAX_PIXELS > 2 x MAX_IMAGE_PIXELS).
        raise ImageError(f"{exc}; downscale the image", "too_many_pixels") from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise ImageError(
            f"the image header is truncated or corrupt ({exc}); "
            "send the complete file again", "truncated",
        ) from None


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

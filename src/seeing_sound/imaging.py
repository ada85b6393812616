"""The one image decoder of every stage: any file Pillow reads -> 8-bit RGB, upright, size-bounded.

``concepts``, ``features`` (VAE latents), ``evaluate`` (Inception for FID/KID, CLIP for IIS/AIS),
``leakage``, the memorization study and ``pairs import`` all decode through here, so an image gives
the same pixels in every stage:

- the size is read from the header and refused before a pixel is decoded (``max_pixels``, which
  replaces Pillow's own bomb limit, so it can both lower and raise it);
- the first frame of an animated or multi-page file; EXIF orientation applied;
- 16-bit and 32-bit gray (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, ``I``, ``F``) scaled to 8 bits
  (``round(x / 257)``; ``F`` in [0, 1] times 255), never clipped to white. 16-bit RGB, RGBA and
  gray+alpha PNGs Pillow itself reads as 8-bit ``RGB``/``RGBA`` (the high byte, within 1/255);
- transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``; a palette entry, colour key or 16-bit
  gray value marked transparent) composited on white; palette, CMYK, YCbCr, LAB, HSV and 1-bit
  converted by Pillow.

A file that cannot be decoded raises :class:`DecodeError` with a reason (``not-an-image``,
``decompression-bomb``, ``truncated``, ``corrupt``) and a one-line detail. Errors of the file system
itself (missing file, no permission, I/O error) are raised unchanged: they are the caller's to name.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: version of these decoding rules; in the cache key of features computed from decoded pixels
DECODER = "dec1"
#: refuse images over this many pixels (Pillow's hard bomb threshold, 2 x its MAX_IMAGE_PIXELS)
DEFAULT_MAX_PIXELS = 178_956_970
#: 16-bit -> 8-bit: round(x / 257) maps 0..65535 onto 0..255 exactly (257 = 65535 / 255)
SIXTEEN_TO_EIGHT = 257.0
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_PILLOW_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-global
# what Pillow raises on a damaged file (UnidentifiedImageError and bombs are told apart before these)
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)

Source = bytes | bytearray | memoryview | str | os.PathLike


class DecodeError(Exception):
    """An image that cannot be decoded: ``reason`` is a short token, ``str(exc)`` the detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    """A decoded image and the file's true size after EXIF orientation (a JPEG ``draft`` may be smaller)."""

    image: PILImage.Image  # mode "RGB", 8 bits per channel
    width: int
    height: int


def _raise_decode_error(exc: BaseException) -> None:
    """Re-raise ``exc`` (from Pillow) as a DecodeError; file-system errors pass through unchanged."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, DecodeError):
        raise exc
    if isinstance(exc, UnidentifiedImageError):
        raise DecodeError("not-an-image", "not a readable image format") from exc
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        raise DecodeError("decompression-bomb", str(exc)) from exc
    if isinstance(exc, OSError) and exc.errno is not None:
        raise exc  # the disk's or the path's (missing, permission, I/O), not the image's
    if isinstance(exc, _DAMAGED):
        text = str(exc).splitlines()[0] if str(exc) else ""
        reason = "truncated" if "truncat" in text.lower() or isinstance(exc, EOFError) else "corrupt"
        raise DecodeError(reason, f"{type(exc).__name__}: {text}".rstrip(": ")) from exc
    raise exc


def open_image(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PILImage.Image:
    """Open ``source`` (bytes or a path) and read only its header: size checked, first frame selected.

    The pixels are not decoded yet, so a caller may still ``draft`` a JPEG; close the image (``with``)
    when done. Raises :class:`DecodeError` (``not-an-image``, ``decompression-bomb``, ``truncated``,
    ``corrupt``); file-system errors unchanged.
    """
    from PIL import Image

    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    fp: Any = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _PILLOW_LIMIT:  # max_pixels is the one limit: Pillow's own is off while the header is read
                saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                try:
                    img = Image.open(fp)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
    except Exception as exc:
        _raise_decode_error(exc)
        raise  # pragma: no cover - _raise_decode_error always raises
    try:
        w, h = img.size
        if w < 1 or h < 1:
            raise DecodeError("corrupt", f"{w}x{h}: no pixels")
        if w * h > max_pixels:  # refuse giant canvases before a single pixel is decoded
            raise DecodeError("decompression-bomb", f"{w}x{h} exceeds max_pixels={max_pixels}")
        img.seek(0)  # animated GIF/WebP/PNG, multi-page TIFF: the first frame
    except Exception as exc:
        img.close()
        _raise_decode_error(exc)
    return img


def decode(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft: tuple[int, int] | None = None) -> Decoded:
    """``source`` (bytes or a path) -> :class:`Decoded`: 8-bit RGB, EXIF-oriented, first frame.

    ``draft=(w, h)`` lets a JPEG decode at a reduced DCT scale (1/2, 1/4, 1/8) that still covers
    ``w x h``; other formats decode at full size. Raises :class:`DecodeError`; file-system errors unchanged.
    """
    from PIL import ImageOps

    img = open_image(source, max_pixels=max_pixels)
    w, h = img.size
    try:
        if draft is not None and img.format == "JPEG":
            img.draft("RGB", draft)
        img.load()
        upright = ImageOps.exif_transpose(img)  # a new image: ``img`` may be closed below
        rgb = to_rgb(upright)
    except Exception as exc:
        _raise_decode_error(exc)
        raise  # pragma: no cover - _raise_decode_error always raises
    finally:
        img.close()
    width, height = _oriented_size(upright.size, w, h)
    return Decoded(rgb, width, height)


def decode_array(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``source`` -> ``(H, W, 3)`` uint8 RGB at full size (see :func:`decode`)."""
    return np.asarray(decode(source, max_pixels=max_pixels).image, dtype=np.uint8)


def _oriented_size(size: tuple[int, int], w: int, h: int) -> tuple[int, int]:
    # draft() may have shrunk the pixels; report the file's true size, swapped if EXIF rotated it.
    if size == (w, h) or size == (h, w):
        return size
    return (h, w) if (size[0] < size[1]) != (w < h) else (w, h)


def to_rgb(img: PILImage.Image) -> PILImage.Image:
    """Any Pillow mode -> 8-bit RGB. Transparency is composited on white; 16-bit is scaled, not clipped.

    Raises :class:`DecodeError` (``corrupt``) for a mode Pillow cannot turn into RGB.
    """
    from PIL import Image

    mode = img.mode
    if mode in _DEEP_MODES:
        raw = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(raw, nan=0.0, posinf=65535.0, neginf=0.0)
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / SIXTEEN_TO_EIGHT  # 0..65535 -> 0..255
        elif mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0  # a float image in [0, 1]
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        key = img.info.get("transparency")
        if isinstance(key, int | float):  # a 16-bit gray value marked transparent: white
            gray[raw == key] = 255
        return Image.fromarray(gray, "L").convert("RGB")
    if "transparency" in img.info and mode in ("P", "L", "RGB"):
        img = img.convert("RGBA")  # a palette entry or colour key marked transparent
    elif mode == "RGB":
        return img
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("LA").convert("RGBA") if img.mode == "La" else img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    try:
        return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX
    except ValueError as exc:
        raise DecodeError("corrupt", f"mode {mode} cannot be converted to RGB") from exc

"""The JPEG an OpenAI-compatible request carries for an image: its own file when that is what the model sees.

Re-encoding costs ~1 ms of CPU per image, most of a request's client-side cost; a JPEG source that
is already upright, RGB or gray and within the size it was decoded at is sent byte for byte.
"""

from __future__ import annotations

import base64
import io

from seeing_sound.concepts.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, SOURCE_BYTES, decode_rgb

__all__ = ["SOURCE_BYTES", "encode_image_data_url", "image_jpeg_base64", "jpeg_as_is"]


def encode_image_data_url(image, quality: int = 90) -> str:
    """RGB PIL image -> ``data:image/jpeg;base64,...`` (JPEG keeps requests small)."""
    return "data:image/jpeg;base64," + image_jpeg_base64(image, quality).decode("ascii")


def image_jpeg_base64(image, quality: int = 90) -> bytes:
    """Base64 of the JPEG to send for ``image``: a PIL image, or the bytes of an image file.

    The source JPEG itself (``image`` as bytes, or ``image.info[SOURCE_BYTES]``) when
    :func:`jpeg_as_is` accepts it; else ``image`` decoded (as the concepts stage does) and encoded.
    """
    source = image if isinstance(image, bytes | bytearray) else getattr(image, "info", {}).get(SOURCE_BYTES)
    if source is not None and jpeg_as_is(source, None if isinstance(image, bytes | bytearray) else image.size):
        return base64.b64encode(source)
    if isinstance(image, bytes | bytearray):
        image = decode_rgb(bytes(image), max_side=DEFAULT_MAX_SIDE, max_pixels=DEFAULT_MAX_PIXELS)[0]
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue())


def jpeg_as_is(data: bytes | bytearray, size: tuple[int, int] | None = None) -> bool:
    """Whether the JPEG ``data`` shows exactly what decoding it for the model would (no re-encode needed).

    Only the header is read: a baseline/progressive JPEG in RGB (YCbCr) or gray, no EXIF rotation,
    of ``size`` (the decoded image's: nothing was downscaled) or, without one, within the
    concepts stage's default ``max_side`` and ``max_pixels``.
    """
    if data[:3] != b"\xff\xd8\xff":
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.getexif().get(0x0112, 1) != 1:
                return False
            if size is not None:
                return im.size == tuple(size)
            return max(im.size) <= DEFAULT_MAX_SIDE and im.size[0] * im.size[1] <= DEFAULT_MAX_PIXELS
    except Exception:  # unreadable header: let the decoder say what is wrong
        return False

"""Find images under roots, give them stable ids, and decode them safely to RGB for a VLM.

``image_id`` is the POSIX path relative to its root. With several roots it is prefixed by the
root folder's name (``photos/cats/a.jpg``) so ids stay unique and readable; two roots with the
same folder name are refused rather than silently renamed. Files are read in place, never copied.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seeing_sound.imaging import DEFAULT_MAX_PIXELS, DecodeError, decode, to_rgb

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SIDE",
    "IMAGE_SUFFIXES",
    "SOURCE_BYTES",
    "DecodeError",
    "ImageRef",
    "LoadedImage",
    "decode_rgb",
    "discover_images",
    "load_image",
    "to_rgb",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
DEFAULT_MAX_SIDE = 1024  # longest side the VLM sees; LLaVA-1.5 works at 336 px, most APIs cap near 2k
SOURCE_BYTES = "seeing_sound.source_bytes"  # PIL ``info`` key of a decoded JPEG: the file it came from


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives. ``root_index`` points into the roots list given to the run."""

    image_id: str
    root_index: int
    path: str  # POSIX, relative to the root


@dataclass
class LoadedImage:
    """A decoded image ready for a model, or the reason it could not be decoded."""

    ref: ImageRef
    sha256: str | None = None
    width: int | None = None  # after EXIF orientation, before downscaling
    height: int | None = None
    image: object | None = None  # PIL.Image.Image in RGB, downscaled to max_side
    error: str | None = None
    detail: str | None = None


def discover_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[ImageRef]]:
    """Roots and every image under them, sorted by (root, path) so shards are stable across runs.

    A folder argument is a root, walked recursively (hidden entries skipped, symlinked folders not
    followed). A file argument belongs to the folder root that contains it, else its parent folder
    becomes a root holding just the files named.
    """
    if not inputs:
        raise ValueError("image_roots: give at least one image folder or file")
    paths = [Path(x).expanduser() for x in inputs]
    for raw, p in zip(inputs, paths, strict=True):
        if not p.exists():
            raise FileNotFoundError(f"image input not found: {raw}")
    roots: list[Path] = []
    for p in paths:  # folders first, in the order given
        if p.is_dir() and p.resolve() not in roots:
            roots.append(p.resolve())
    found: set[tuple[int, str]] = set()
    for p in paths:
        if p.is_dir():
            idx = roots.index(p.resolve())
            for dirpath, dirnames, filenames in os.walk(roots[idx], followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                        found.add((idx, (Path(dirpath) / name).relative_to(roots[idx]).as_posix()))
            continue
        full = p.parent.resolve() / p.name
        owner = next((i for i, r in enumerate(roots) if full.is_relative_to(r)), None)
        if owner is None:
            roots.append(full.parent)
            owner = len(roots) - 1
        found.add((owner, full.relative_to(roots[owner]).as_posix()))
    names = [r.name or str(r) for r in roots]
    if len(roots) > 1 and len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"image_roots: several roots share the folder name {dup}; image ids would collide")
    prefix = len(roots) > 1
    refs = [
        ImageRef(image_id=f"{names[idx]}/{rel}" if prefix else rel, root_index=idx, path=rel)
        for idx, rel in sorted(found)
    ]
    return roots, refs


def _inside(root: Path, rel: str) -> Path | None:
    """The absolute file for ``rel`` if it (after symlinks) stays under ``root``."""
    full = (root / rel).resolve()
    try:
        full.relative_to(root.resolve())
    except ValueError:
        return None
    return full


def load_image(
    root: Path, ref: ImageRef, *, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Read, checksum, validate and decode one image; a bad file gives ``error``, never an exception."""
    out = LoadedImage(ref=ref)
    full = _inside(root, ref.path)
    if full is None:
        out.error, out.detail = "outside-root", "symlink points outside the image root"
        return out
    try:
        data = full.read_bytes()
    except OSError as exc:
        out.error, out.detail = "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}"
        return out
    out.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        out.error, out.detail = "empty-file", "zero bytes"
        return out
    try:
        out.image, out.width, out.height = decode_rgb(data, max_side=max_side, max_pixels=max_pixels)
    except DecodeError as exc:
        out.error, out.detail = exc.reason, str(exc)
    return out


def decode_rgb(data: bytes, *, max_side: int, max_pixels: int):
    """Bytes -> (RGB PIL image no larger than max_side, oriented width, oriented height).

    Raises DecodeError with reason not-an-image / decompression-bomb / truncated / corrupt
    (:func:`seeing_sound.imaging.decode`, the decoder every stage shares).
    """
    from PIL import Image

    decoded = decode(data, max_pixels=max_pixels, draft=(max_side, max_side))  # large JPEGs at reduced scale
    rgb = decoded.image
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if data[:3] == b"\xff\xd8\xff":
        # a back end that sends JPEGs may send the file itself (image_payload.jpeg_as_is checks it still fits)
        rgb.info[SOURCE_BYTES] = data
    return rgb, decoded.width, decoded.height

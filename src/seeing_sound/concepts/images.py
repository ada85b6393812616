"""Find images under roots, give them stable ids, and decode them safely to RGB for a VLM.

A root is a folder or a tar shard (:mod:`seeing_sound.image_sources`: globs and brace ranges of
shards are expanded). ``image_id`` is the POSIX path relative to its folder, or the member name inside
its shard — the name the image had in the folder the shard was made from, so a folder and its shards
give the same ids. With several folder roots a folder's ids are prefixed by its name
(``photos/cats/a.jpg``) so ids stay unique and readable; two roots with the same folder name, or two
shards holding the same name, are refused rather than silently renamed. Files are read in place,
never copied or extracted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seeing_sound.image_sources import (
    IMAGE_SUFFIXES,
    NoBytesError,
    cached_scan,
    is_table,
    is_tar,
    open_table,
    read_member,
    source_paths,
    spec_path,
    table_specs,
    tar_index,
)
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

DEFAULT_MAX_SIDE = 1024  # longest side the VLM sees; LLaVA-1.5 works at 336 px, most APIs cap near 2k
SOURCE_BYTES = "seeing_sound.source_bytes"  # PIL ``info`` key of a decoded JPEG: the file it came from


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives. ``root_index`` points into the roots list given to the run."""

    image_id: str
    root_index: int
    path: str  # POSIX, relative to the root; in a shard, the member name ("@OFFSET": a broken header there)


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
    followed). A ``.tar`` argument (or a glob / brace pattern of them) is one root per shard, its
    images in file order (a worker reads its shard front to back); a broken header becomes one ref
    ``@OFFSET`` that loads as an error row. A file argument belongs to the folder root that contains
    it, else its parent folder becomes a root holding just the files named.
    """
    if not inputs:
        raise ValueError("image_roots: give at least one image folder, file or tar shard")
    paths: list[Path] = []
    tables: list[str] = []
    for raw in inputs:
        if is_table(raw):
            try:
                tables.extend(table_specs(raw))
            except (FileNotFoundError, OSError) as exc:
                raise FileNotFoundError(f"image input not found: {raw} ({exc})") from None
            continue
        try:
            named = source_paths([Path(raw).expanduser()])
        except (FileNotFoundError, ValueError) as exc:
            raise FileNotFoundError(f"image input not found: {raw} ({exc})") from None
        if not all(p.exists() for p in named):
            raise FileNotFoundError(f"image input not found: {raw}")
        paths.extend(named)
    roots: list[Path] = []
    for p in paths:  # folders and shards first, in the order given
        if (p.is_dir() or is_tar(p)) and p.resolve() not in roots:
            roots.append(p.resolve())
    found: set[tuple[int, str]] = set()
    shard_refs: list[tuple[int, int, str]] = []  # (root, offset, member name or "@offset")
    for p in paths:
        if is_tar(p):
            idx = roots.index(p.resolve())
            scan = cached_scan(roots[idx])
            shard_refs.extend((idx, m.offset, m.name) for m in scan.members)
            shard_refs.extend((idx, off, f"@{off}") for off, _reason, _detail in scan.problems)
            continue
        if p.is_dir():
            idx = roots.index(p.resolve())
            for dirpath, dirnames, filenames in os.walk(roots[idx], followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                        found.add((idx, (Path(dirpath) / name).relative_to(roots[idx]).as_posix()))
            continue
        full = p.parent.resolve() / p.name
        owner = next((i for i, r in enumerate(roots) if r.is_dir() and full.is_relative_to(r)), None)
        if owner is None:
            roots.append(full.parent)
            owner = len(roots) - 1
        found.add((owner, full.relative_to(roots[owner]).as_posix()))
    for spec in tables:
        if Path(spec) in roots:
            continue
        roots.append(Path(spec))
        idx = len(roots) - 1
        table = open_table(spec)
        assert not isinstance(table, list)  # table_specs lists a folder's files one by one
        shard_refs.extend((idx, row, image_id) for row, image_id in enumerate(table.ids) if image_id)
        shard_refs.extend((idx, row, f"@{row}") for row, _reason, _detail in table.problems)
    folders = [i for i, r in enumerate(roots) if not (is_tar(r) or is_table(r))]
    names = [roots[i].name or str(roots[i]) for i in folders]
    if len(folders) > 1 and len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"image_roots: several roots share the folder name {dup}; image ids would collide")
    prefix = {i: f"{roots[i].name or roots[i]}/" for i in folders} if len(folders) > 1 else {}
    refs = [ImageRef(f"{prefix.get(idx, '')}{rel}", idx, rel) for idx, rel in sorted(found)]
    refs += [
        ImageRef(f"{spec_path(str(roots[idx])).name}{name}" if name.startswith("@") else name, idx, name)
        for idx, _off, name in sorted(shard_refs)
    ]
    seen: dict[str, int] = {}
    for r in refs:
        if r.image_id in seen:
            a, b = roots[seen[r.image_id]], roots[r.root_index]
            raise ValueError(f"image_roots: {r.image_id} is in both {a} and {b}; image ids would collide")
        seen[r.image_id] = r.root_index
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
    try:
        if is_table(root):
            data = _table_bytes(str(root), ref)
        else:
            data = _shard_bytes(root, ref) if is_tar(root) else _file_bytes(root, ref)
    except _LoadError as exc:
        out.error, out.detail = exc.reason, exc.detail
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


class _LoadError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _file_bytes(root: Path, ref: ImageRef) -> bytes:
    full = _inside(root, ref.path)
    if full is None:
        raise _LoadError("outside-root", "symlink points outside the image root")
    try:
        return full.read_bytes()
    except OSError as exc:
        raise _LoadError("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from None


def _shard_bytes(shard: Path, ref: ImageRef) -> bytes:
    """A member's bytes, or the problem its shard's scan found at ``@OFFSET``."""
    if ref.path.startswith("@"):
        offset = int(ref.path[1:])
        for off, reason, detail in cached_scan(shard).problems:
            if off == offset:
                raise _LoadError(reason, f"{shard.name} at byte {off}: {detail}")
        raise _LoadError("corrupt-archive", f"{shard.name} at byte {offset}")
    member = tar_index(shard).get(ref.path)
    if member is None:
        raise _LoadError("unreadable", f"{ref.path} is no longer an image member of {shard.name}")
    try:
        return read_member(shard, member)
    except OSError as exc:
        raise _LoadError("unreadable", f"{shard.name}: {exc.strerror or exc}") from None


def _table_bytes(spec: str, ref: ImageRef) -> bytes:
    """A table row's image bytes, or the problem the table's scan found at ``@ROW``."""
    table = open_table(spec)
    assert not isinstance(table, list)
    if ref.path.startswith("@"):
        row = int(ref.path[1:])
        reason, detail = next(((r, d) for n, r, d in table.problems if n == row), ("missing_id", f"row {row}"))
        raise _LoadError(reason, detail)
    try:
        return table.read(ref.path)
    except KeyError as exc:
        raise _LoadError("unreadable", str(exc)) from None
    except NoBytesError as exc:
        raise _LoadError(exc.reason, str(exc)) from None


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

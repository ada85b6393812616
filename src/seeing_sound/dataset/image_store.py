"""One way to find a dataset's image by the name it was given: in a folder, tar shards or tables.

A pairs dataset records ``images_root`` in its card and each pair's ``image_path``: a path relative to
the folder, the member name inside a shard, or the id of a table row (:mod:`seeing_sound.image_sources`).
:func:`open_store` turns the root into an :class:`ImageStore` whose :meth:`~ImageStore.source` gives
what the one image decoder (:mod:`seeing_sound.imaging`) reads: a checked path for a folder, the
image's bytes otherwise. Names read from metadata are data: a folder name goes through
:func:`~seeing_sound.dataset.paths.safe_join`, a shard or table name is only ever a key.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.image_sources import (
    Member,
    absolute_spec,
    cached_scan,
    expand_pattern,
    is_pattern,
    is_table,
    is_tar,
    open_table,
    read_member,
    table_specs,
)

__all__ = [
    "ImageNotFoundError",
    "ImageStore",
    "is_folder_root",
    "open_ref",
    "open_store",
    "ref_label",
    "root_spec",
    "source_ref",
]


class ImageNotFoundError(FileNotFoundError):
    """No image of that name in the store."""


def is_folder_root(root: str | os.PathLike) -> bool:
    """``root`` is a plain folder (not shards, a pattern or a table)."""
    text = os.fspath(root)
    return not (is_table(text) or is_tar(text) or is_pattern(text) or text.lower().endswith(".tar"))


def root_spec(images: str | os.PathLike) -> str:
    """What ``--images`` names, made absolute, as a dataset card records it: a folder resolved, a shard
    pattern absolute with its pattern kept, a table spec with its split and columns kept."""
    text = os.fspath(images)
    if is_table(text):
        return absolute_spec(text)
    if is_folder_root(text):
        return str(Path(text).expanduser().resolve())
    return os.path.abspath(os.path.expanduser(text))


class ImageStore:
    """Images by name under one root: a folder, a tar shard or pattern of shards, or table specs."""

    def __init__(self, root: str):
        self.root = root
        self._shards: dict[str, tuple[Path, Member]] | None = None  # member name -> shard, member (tar roots)
        self._tables: dict[str, str] | None = None  # id -> table spec (table roots)

    @property
    def is_folder(self) -> bool:
        return is_folder_root(self.root)

    def _shard_of(self, name: str) -> tuple[Path, Member]:
        """The shard holding ``name`` and where its bytes are: every shard's headers are scanned once
        for the store, so random access (a shuffled training run) never rescans a shard."""
        if self._shards is None:
            shards = expand_pattern(self.root) if is_pattern(self.root) else [Path(self.root)]
            index: dict[str, tuple[Path, Member]] = {}
            for shard in shards:
                for member in cached_scan(shard).members:
                    index.setdefault(member.name, (shard, member))
            self._shards = index
        found = self._shards.get(name)
        if found is None:
            raise ImageNotFoundError(f"{name} is in none of the shards {self.root}")
        return found

    def _table_of(self, name: str) -> str:
        if self._tables is None:
            index: dict[str, str] = {}
            for spec in table_specs(self.root):
                table = open_table(spec)
                assert not isinstance(table, list)
                for image_id in table.index:
                    index.setdefault(image_id, spec)
            self._tables = index
        found = self._tables.get(name)
        if found is None:
            raise ImageNotFoundError(f"{name} is no row of {self.root}")
        return found

    def source(self, name: str) -> Path | bytes:
        """What to decode for image ``name``: a path inside the folder, or the image's bytes.

        Raises :class:`~seeing_sound.dataset.paths.UnsafePathError` for a folder name that leaves the
        folder, :class:`ImageNotFoundError` for a name the store does not hold, ``OSError`` for a
        shard that cannot be read, :class:`~seeing_sound.image_sources.NoBytesError` for a table row
        without bytes.
        """
        if self.is_folder:
            return safe_join(self.root, name)
        if is_table(self.root):
            table = open_table(self._table_of(name))
            assert not isinstance(table, list)
            return table.read(name)
        return read_member(*self._shard_of(name))

    def read(self, name: str) -> bytes:
        """The image's bytes, wherever it lives."""
        src = self.source(name)
        if isinstance(src, Path):
            if not src.is_file():
                raise ImageNotFoundError(f"{name}: no such file under {self.root}")
            return src.read_bytes()
        return src

    def __contains__(self, name: str) -> bool:
        """The store holds an image of that name (no image bytes are read)."""
        try:
            if self.is_folder:
                return safe_join(self.root, name).is_file()
            if is_table(self.root):
                self._table_of(name)
            else:
                self._shard_of(name)
        except (ImageNotFoundError, UnsafePathError, OSError, ValueError):
            return False
        return True


@functools.lru_cache(maxsize=8)
def open_store(root: str) -> ImageStore:
    """The store for ``root`` (indexes built on first use, kept for the process)."""
    return ImageStore(root)


def source_ref(root: str | os.PathLike, name: str) -> str:
    """One string that names one image wherever it lives, for a stage's items (which must be text): the
    checked path of a folder image, else ``["ROOT", "NAME"]`` as JSON. :func:`open_ref` reads it."""
    spec = os.fspath(root)
    if is_folder_root(spec):
        return str(safe_join(spec, name))
    return json.dumps([spec, name])


def open_ref(ref: str) -> Path | bytes:
    """What to decode for a :func:`source_ref`: the path, or the image's bytes from its shard or table."""
    if ref.startswith('["'):
        spec, name = json.loads(ref)
        return open_store(spec).source(name)
    return Path(ref)


def ref_label(ref: str) -> str:
    """A :func:`source_ref` for people: the path, or ``ROOT:NAME``."""
    if ref.startswith('["'):
        spec, name = json.loads(ref)
        return f"{spec}:{name}"
    return ref

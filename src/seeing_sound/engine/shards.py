"""Shard naming and atomic file writes."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


def shard_name(index: int) -> str:
    """Stable shard stem: ``shard-000042``. Six digits sort lexically up to a million shards."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:06d}"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename survives a power cut (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write ``path`` through a temp file in the same folder, renamed into place on success.

    A reader (or a rerun after SIGKILL) sees either the old file or the complete new one,
    never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed mid-write left its temp file behind; whoever writes the same target next
    # removes it (each target has one writer at a time), so reruns leave no debris.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Atomically write ``obj`` as pretty, key-sorted JSON (byte-stable for equal objects)."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")


def move_into_place(src: Path, dst: Path) -> None:
    """Rename a finished scratch file or folder to its final name (same filesystem, atomic).

    A folder left at ``dst`` by an interrupted earlier attempt of the same shard is
    removed first: its shard has no done-marker, so nothing trusts it.
    """
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)


def write_json_shared(path: Path, obj) -> None:
    """Write ``obj`` as JSON where several hosts may write the same bytes at once (temp per host and PID)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.shared")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)

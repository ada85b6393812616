"""Resolve paths that come from metadata, never letting them escape their root."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from seeing_sound.errors import SeeingSoundError


class UnsafePathError(SeeingSoundError):
    """A metadata path that is absolute or climbs out of its root."""


def safe_join(root: str | Path, rel: str) -> Path:
    """``root / rel`` if ``rel`` is a plain relative path that stays inside ``root``.

    Refuses absolute paths (POSIX or Windows), drive letters, ``..`` components, NUL bytes
    and symlinks that resolve outside ``root``; the file is never opened before the check.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise UnsafePathError(f"refusing metadata path {rel!r}: empty or not a string")
    posix, win = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or win.is_absolute() or win.drive or rel.startswith("\\"):
        raise UnsafePathError(f"refusing metadata path {rel!r}: absolute paths are not allowed")
    if ".." in posix.parts or ".." in win.parts:
        raise UnsafePathError(f"refusing metadata path {rel!r}: '..' would leave {root}")
    root_r = Path(root).resolve()
    target = (root_r / posix).resolve()
    if target != root_r and root_r not in target.parents:
        raise UnsafePathError(f"refusing metadata path {rel!r}: resolves outside {root}")
    return target

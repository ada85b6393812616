"""Resolve paths and names that come from data (metadata, benchmark folders), never letting them escape their root."""

from __future__ import annotations

import hashlib
import re
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


#: longest file name component :func:`safe_name` lets through, in UTF-8 bytes: filesystems allow 255,
#: and writers add a suffix (``.png``) and an atomic-write temp name (``.NAME.xxxxxxxx.tmp``) to it
MAX_NAME_BYTES = 200
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _name_problem(text: object) -> str | None:
    """Why ``text`` cannot be one path component as it is, or None."""
    if not isinstance(text, str):
        return f"not text ({type(text).__name__})"
    if not text:
        return "empty"
    if text in (".", ".."):
        return "a relative folder reference"
    if "/" in text or "\\" in text:
        return "holds a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "holds NUL or another control character"
    if text.startswith("."):
        return "starts with '.' (hidden and temp files do)"
    if text != text.strip():
        return "starts or ends with white space"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800")
        return "not valid Unicode"
    if size > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def safe_name(text: str, *, what: str = "name", sanitize: bool = False) -> str:
    """``text`` as one file name component: the one gate for every name or id read from data.

    A name that is fine is returned as it is. Refused (:class:`UnsafePathError`, one line naming
    ``what``): a non-string, empty, ``.``/``..``, a path separator (``/`` or ``\\``), NUL or any
    other control character, a leading ``.``, leading or trailing white space, text that is not
    valid Unicode, more than :data:`MAX_NAME_BYTES` UTF-8 bytes.

    ``sanitize=True`` makes such a name safe instead, deterministically: runs of characters
    outside ``[A-Za-z0-9._-]`` become ``_``, leading dots go, an empty result is ``_``, and a
    name still too long keeps its start plus a hash of the whole text. Two texts can then map
    to one name: callers that sanitize must refuse such a collision.
    """
    problem = _name_problem(text)
    if problem is None:
        return text
    if not sanitize or not isinstance(text, str):
        shown = repr(text) if not isinstance(text, str) or len(text) <= 60 else f"{text[:60]!r}..."
        raise UnsafePathError(f"refusing {what} {shown}: {problem}; it would become a file name")
    name = _UNSAFE_CHARS.sub("_", text).lstrip(".") or "_"
    if len(name) > MAX_NAME_BYTES:  # ASCII by now: characters are bytes
        tag = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[: MAX_NAME_BYTES - len(tag) - 1]}-{tag}"
    return name

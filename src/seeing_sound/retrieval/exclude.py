"""Exclusion lists: the ``exclude_images.txt`` / ``exclude_chunks.txt`` files ``leakage`` writes.

One id a line, UTF-8 (a byte-order mark and ``\\r\\n`` line ends are accepted; blank lines are
skipped). Image ids are matched exactly (the ``image_id`` of a concepts run: the image's POSIX
path under the images folder); chunk ids are integers, the pool manifest's ``chunk_id``. Ids
that match nothing are not an error: the callers count and log them.

A list's identity is the sha256 of its *sorted, distinct* ids written one a line (what
:func:`seeing_sound.leakage.report.write_id_list` writes for them), never its path: moving
the file changes nothing, editing it redoes the stages that read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from seeing_sound.config import ConfigError

KINDS = ("image", "chunk", "pair")  # pair: a pairs dataset's pair_id (exclude_pairs.txt), a string like images


@dataclass(frozen=True)
class IdList:
    """The distinct ids of one exclusion file, sorted (chunk ids numerically), and their digest."""

    kind: str  # 'image', 'chunk' or 'pair'
    path: str  # absolute path of the file read (not part of the digest)
    ids: tuple  # str ids for images and pairs, int ids for chunks; sorted, distinct

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sha256(self) -> str:
        return ids_sha256(self.ids)

    def fingerprint(self) -> str | None:
        """The digest for stage fingerprints; None for an empty list (the same as no list)."""
        return self.sha256 if self.ids else None

    def card(self) -> dict:
        """What a dataset card or ``info.json`` records: the digest and the number of ids."""
        return {"sha256": self.sha256, "ids": len(self.ids)}


def ids_sha256(ids) -> str:
    """sha256 of the sorted, distinct ``ids``, one a line with ``\\n`` after each."""
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(set(ids))).encode("utf-8")).hexdigest()


def read_id_list(path: str | Path | None, field: str, kind: str) -> IdList | None:
    """Read an exclusion file named by config field ``field`` (None: no list).

    Raises :class:`~seeing_sound.config.ConfigError` naming ``field`` when the file is missing,
    unreadable, not UTF-8, or (chunks) holds a line that is not an integer.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, str(path), "no such file (an id list, one id a line, as `leakage` writes)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(field, str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(field, str(path), f"cannot be read ({exc.strerror or exc})") from None
    lines = [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    ids: set
    if kind != "chunk":
        ids = {line for _, line in lines}
    else:
        ids = set()
        for n, line in lines:
            try:
                ids.add(int(line.strip()))
            except ValueError:
                raise ConfigError(field, str(path), f"line {n} is not a chunk id (an integer): {line[:60]!r}") from None
    return IdList(kind, str(p.resolve()), tuple(sorted(ids)))

"""Find source audio files and their optional text descriptions."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seeing_sound.errors import SeeingSoundError
from seeing_sound.tabular import read_jsonl


@dataclass(frozen=True)
class SourceFile:
    """One input file: ``source`` is its stable relative id (``<root label>/<path in root>``).

    ``error`` is set (with ``detail``) for a file that must be recorded as an error row instead
    of being ingested, e.g. a second file claiming an id that is already taken.
    """

    source: str
    path: str
    description: str | None = None
    labels: tuple[str, ...] = ()
    error: str | None = None
    detail: str | None = None


def _root_labels(roots: list[Path]) -> list[str]:
    """One label per root, unique by construction.

    A root is labelled by its folder name (a file root by its parent's). The first root with a
    name keeps it; a later root with the same name gets ``name-2``, ``name-3``, ... skipping every
    label that is taken or that another root is named, so ``d1/x d2/x d3/x-2`` gives ``x, x-3, x-2``.
    """
    bases = [(root.name if root.is_dir() else root.parent.name) or "root" for root in roots]
    reserved = set(bases)
    labels: list[str] = []
    for base in bases:
        label, n = base, 1
        while label in labels or (label != base and label in reserved):
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def _absolute(path: Path) -> str:
    """Resolved path, or the plain absolute one for a link that cannot resolve (a loop): the
    build then records the file as unreadable instead of aborting the walk."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def find_sources(roots: list[str | Path], exclude: Sequence[str | Path] = ()) -> list[SourceFile]:
    """Walk ``roots`` recursively (files are taken as given), sorted by source id.

    Skipped: hidden files and folders (name starting with '.'), every folder and file in
    ``exclude`` (the build's own output root when it lies inside a source folder, the descriptions
    file). Every other file is returned, whatever its extension or state
    (a dangling or looping link included), so the build can record unusable ones: files seen ==
    files ingested + files recorded as errors.
    Two files that would get the same id are never merged: the second one comes back with
    ``error="duplicate_source"`` under an id of its own.
    """
    if not roots:
        raise ValueError("roots must name at least one file or folder")
    paths = [Path(r) for r in roots]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"source not found: {p}")
    skip = {_absolute(Path(e)) for e in exclude}
    out: dict[str, SourceFile] = {}
    for root, label in zip(paths, _root_labels(paths), strict=True):
        if root.is_file():
            files = [(root.name, root)]
        else:
            files = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(
                    d for d in dirnames if not d.startswith(".") and _absolute(Path(dirpath) / d) not in skip
                )
                rel_dir = Path(dirpath).relative_to(root)
                for name in filenames:
                    if not name.startswith("."):
                        files.append((PurePosixPath(*rel_dir.parts, name).as_posix(), Path(dirpath) / name))
        for rel, path in files:
            absolute = _absolute(path)
            if absolute in skip:
                continue
            source = f"{label}/{rel}"
            if source in out:
                first = out[source].path
                n = 2
                while f"{source}#{n}" in out:
                    n += 1
                source = f"{source}#{n}"
                out[source] = SourceFile(source, absolute, error="duplicate_source", detail=f"same id as {first}")
                continue
            out[source] = SourceFile(source=source, path=absolute)
    return [out[k] for k in sorted(out)]


_KEY_COLUMNS = ("source", "path", "file", "fname", "filename", "name", "stem", "id", "ytid")


def load_descriptions(path: str | Path) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Read a CSV or JSONL mapping (source path | file name | stem) -> (description, labels).

    Columns: one key column (any of ``source, path, file, fname, filename, name, stem, id``),
    and ``description`` and/or ``labels`` (a list in JSONL; comma- or semicolon-separated
    in CSV). FSD50K's ``dev.csv`` (fname, labels) and similar files work as they are.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"descriptions file not found: {path}")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = read_jsonl(path)
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    table: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for n, row in enumerate(rows, 1):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        key = next((str(row[k]).strip() for k in _KEY_COLUMNS if row.get(k) not in (None, "")), None)
        if key is None:
            raise SeeingSoundError(f"{path}: row {n} has none of the key columns {', '.join(_KEY_COLUMNS)}")
        desc = row.get("description") or row.get("caption") or row.get("text")
        labels = row.get("labels") or row.get("label") or ()
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.replace(";", ",").split(",")]
        labels = tuple(str(s).strip() for s in labels if str(s).strip())
        table[key] = (str(desc).strip() if desc else None, labels)
    return table


def attach_descriptions(sources: list[SourceFile], table: dict) -> list[SourceFile]:
    """Match each source against the table by full id, path within root, file name, or stem."""
    out = []
    for s in sources:
        rel = s.source.split("/", 1)[1]
        name = PurePosixPath(rel).name
        stem = PurePosixPath(rel).stem
        hit = next((table[k] for k in (s.source, rel, name, stem) if k in table), None)
        description, labels = hit or (None, ())
        out.append(SourceFile(s.source, s.path, description, labels, error=s.error, detail=s.detail))
    return out

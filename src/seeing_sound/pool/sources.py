"""Find source audio files and their optional text descriptions."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seeing_sound.errors import SeeingSoundError
from seeing_sound.tabular import read_jsonl


@dataclass(frozen=True)
class SourceFile:
    """One input file: ``source`` is its stable relative id (``<root label>/<path in root>``)."""

    source: str
    path: str
    description: str | None = None
    labels: tuple[str, ...] = ()


def _root_labels(roots: list[Path]) -> list[str]:
    labels, seen = [], {}
    for root in roots:
        base = (root.name if root.is_dir() else root.parent.name) or "root"
        n = seen.get(base, 0) + 1
        seen[base] = n
        labels.append(base if n == 1 else f"{base}-{n}")
    return labels


def find_sources(roots: list[str | Path]) -> list[SourceFile]:
    """Walk ``roots`` recursively (files are taken as given), sorted by source id.

    Hidden files and folders (name starting with '.') are skipped. Every other regular
    file is returned, whatever its extension, so the build can record unsupported ones.
    """
    if not roots:
        raise ValueError("roots must name at least one file or folder")
    paths = [Path(r) for r in roots]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"source not found: {p}")
    out: dict[str, SourceFile] = {}
    for root, label in zip(paths, _root_labels(paths), strict=True):
        if root.is_file():
            files = [(root.name, root)]
        else:
            files = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel_dir = Path(dirpath).relative_to(root)
                for name in filenames:
                    if not name.startswith("."):
                        files.append((PurePosixPath(*rel_dir.parts, name).as_posix(), Path(dirpath) / name))
        for rel, path in files:
            source = f"{label}/{rel}"
            out[source] = SourceFile(source=source, path=str(path.resolve()))
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
        out.append(SourceFile(s.source, s.path, *(hit or (None, ()))))
    return out

"""Each benchmark's official distribution -> a sorted list of items (one video each).

* ``vggsound``: the official ``vggsound.csv`` (no header: youtube_id, start_seconds, label, split)
  and videos named ``{youtube_id}_{start_seconds:06d}.mp4`` anywhere under ``--src``.
* ``folder``: class-folder videos, ``SRC/CLASS/*.mp4`` or ``SRC/SPLIT/CLASS/*.mp4`` (Landscapes,
  Into the Wild, VEGAS); ``class_from`` / ``split_from`` pick other path components.
* ``greatest-hits``: the official ``*_denoised.mp4`` + ``*_times.txt`` release; one item per whole
  video (center frame, whole audio), labelled with the most frequent annotated material.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from seeing_sound.dataset.paths import safe_name
from seeing_sound.errors import SeeingSoundError

#: file extensions taken as videos when walking a folder
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".3gp"})
VGGSOUND_PATTERN = "{youtube_id}_{start_seconds:06d}.mp4"
GREATEST_HITS_VIDEO = "_denoised.mp4"
GREATEST_HITS_TIMES = "_times.txt"
#: top-level folder names taken as splits by the default class-folder layout SRC/SPLIT/CLASS/file
SPLIT_NAMES = ("train", "training", "val", "valid", "validation", "dev", "test", "testing", "eval")
#: the label of a Greatest Hits video without one annotated material
UNKNOWN_LABEL = "unknown"


@dataclass(frozen=True)
class BenchItem:
    """One video to prepare. ``source`` is relative to ``--src``; ``path`` absolute ('' when missing)."""

    item_id: str
    label: str
    split: str
    source: str
    path: str

    def to_dict(self) -> dict:
        return asdict(self)


def safe_id(text: str) -> str:
    """A file-name-safe item id: path separators become ``__``, other odd characters ``_``; an id longer than
    :data:`~seeing_sound.dataset.paths.MAX_NAME_BYTES` keeps its start and a hash of the whole text.

    Ids name ``audio/<id>.wav`` and ``images/<id>.png``, so the result always passes
    :func:`~seeing_sound.dataset.paths.safe_name` as it is (which ``evaluate`` requires).
    """
    text = text.replace("\\", "/").strip("/")
    text = "__".join(part for part in text.split("/") if part)
    return safe_name(re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip(".") or "item", what="item id", sanitize=True)


def unique_ids(items: Sequence[BenchItem]) -> list[BenchItem]:
    """Items sorted by id; ids made equal by :func:`safe_id` get a short hash of their source appended."""
    counts = Counter(i.item_id for i in items)
    out = []
    for it in items:
        if counts[it.item_id] > 1:
            tag = hashlib.sha256(it.source.encode()).hexdigest()[:8]
            item_id = safe_name(f"{it.item_id}-{tag}", what="item id", sanitize=True)  # still within the length limit
            it = BenchItem(item_id, it.label, it.split, it.source, it.path)
        out.append(it)
    return sorted(out, key=lambda i: i.item_id)


def walk_files(root: Path, extensions: Iterable[str] | None = None) -> list[Path]:
    """Every file under ``root`` (sorted, hidden files and folders skipped), optionally by extension.

    Linked folders are followed (a benchmark made of links to several downloads, e.g. Landscapes + ITW),
    each real folder once, so a link loop cannot recurse forever.
    """
    exts = None if extensions is None else {e.lower() for e in extensions}
    found = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            p = Path(folder) / name
            if exts is None or p.suffix.lower() in exts:
                found.append(p)
    return sorted(found)


def _check_src(src: str | Path) -> Path:
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"src {src} is not a folder")
    return root.resolve()


# --- VGGSound ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    youtube_id: str
    start_seconds: int
    label: str
    split: str


def read_vggsound_csv(path: str | Path) -> list[CsvRow]:
    """The official ``vggsound.csv``: no header; youtube_id, start_seconds, label, split (labels may hold commas)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for n, rec in enumerate(csv.reader(fh), start=1):
            if not rec or not "".join(rec).strip():
                continue
            if len(rec) < 4:
                raise SeeingSoundError(f"{path} line {n}: expected youtube_id,start_seconds,label,split, got {rec}")
            try:
                start = int(float(rec[1]))
            except ValueError:
                if n == 1:  # a header line some copies add
                    continue
                raise SeeingSoundError(f"{path} line {n}: start_seconds {rec[1]!r} is not a number") from None
            rows.append(CsvRow(rec[0].strip(), start, ",".join(rec[2:-1]).strip(), rec[-1].strip()))
    return rows


def vggsound_items(
    src: str | Path, csv_path: str | Path, *, split: str | None = "test", name_pattern: str = VGGSOUND_PATTERN
) -> tuple[list[BenchItem], list[BenchItem]]:
    """(present, missing) items of ``split`` (None: every split): rows whose video is under ``src`` or not.

    Videos are found by file name anywhere under ``src``; ``name_pattern`` may use
    ``{youtube_id}``, ``{start_seconds}``, ``{label}`` and ``{split}``.
    """
    root = _check_src(src)
    rows = [r for r in read_vggsound_csv(csv_path) if split is None or r.split == split]
    if not rows:
        raise SeeingSoundError(f"{csv_path} has no rows for split {split!r}")
    by_name: dict[str, Path] = {}
    for p in walk_files(root):
        by_name.setdefault(p.name, p)
    present: list[BenchItem] = []
    missing: list[BenchItem] = []
    for r in rows:
        try:
            name = name_pattern.format(**asdict(r))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"name_pattern {name_pattern!r} cannot be filled from a CSV row: {exc}") from None
        stem = Path(name).stem
        found = by_name.get(Path(name).name)
        rel = found.relative_to(root).as_posix() if found is not None else name
        item = BenchItem(safe_id(stem), r.label, r.split, rel, str(found) if found is not None else "")
        (present if found is not None else missing).append(item)
    return unique_ids(present), unique_ids(missing)


# --- class folders (Landscapes, Into the Wild, VEGAS) ------------------------------------------


def _component(parts: Sequence[str], index: int, what: str, rel: str) -> str:
    folders = parts[:-1]
    try:
        return folders[index]
    except IndexError:
        raise SeeingSoundError(
            f"{rel}: no folder at position {index} for the {what} ({len(folders)} folder(s) above the file)"
        ) from None


def folder_items(src: str | Path, *, class_from: int | None = None, split_from: int | None = None) -> list[BenchItem]:
    """Videos under ``src`` labelled by their folders.

    Default (``None``): ``SRC/CLASS/x.mp4`` (split ``all``) or ``SRC/SPLIT/CLASS/x.mp4`` where SPLIT is
    one of :data:`SPLIT_NAMES` (anything else is ambiguous and refused). Otherwise
    ``class_from``/``split_from`` index the folders between ``src`` and the file (0 = the first
    folder under ``src``, -1 = the file's own folder), e.g. ``class_from=0`` for
    ``SRC/CLASS/video/x.mp4``.
    """
    root = _check_src(src)
    items = []
    for p in walk_files(root, VIDEO_EXTENSIONS):
        rel = p.relative_to(root).as_posix()
        parts = rel.split("/")
        depth = len(parts) - 1
        if class_from is None and not (depth == 1 or (depth == 2 and parts[0].lower() in SPLIT_NAMES)):
            raise SeeingSoundError(
                f"{rel} is not SRC/CLASS/file or SRC/SPLIT/CLASS/file (SPLIT one of {', '.join(SPLIT_NAMES)}); "
                "pass class_from=N (and split_from=N): the depth of the folder that holds the class"
            )
        label = _component(parts, -1 if class_from is None else class_from, "class", rel)
        if split_from is not None:
            split = _component(parts, split_from, "split", rel)
        elif class_from is None and depth == 2:
            split = parts[0]
        else:
            split = "all"
        items.append(BenchItem(safe_id(Path(rel).with_suffix("").as_posix()), label, split, rel, str(p)))
    if not items:
        raise SeeingSoundError(f"no videos ({', '.join(sorted(VIDEO_EXTENSIONS))}) under {src}")
    return unique_ids(items)


# --- The Greatest Hits -------------------------------------------------------------------------


def read_hit_materials(path: str | Path) -> list[str]:
    """Materials of the annotated hits in a ``*_times.txt`` (one hit a line: time, material, action, reaction).

    ``None`` and missing fields are left out; lines whose first field is not a time are skipped.
    """
    materials = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.replace(",", " ").split()
        if len(fields) < 2:
            continue
        try:
            float(fields[0])
        except ValueError:
            continue
        if fields[1].lower() not in ("none", "null", "nan", "-"):
            materials.append(fields[1])
    return materials


def majority_label(materials: Sequence[str]) -> str:
    """The most frequent material (ties: alphabetically first), or :data:`UNKNOWN_LABEL`."""
    if not materials:
        return UNKNOWN_LABEL
    counts = Counter(materials)
    return min(counts, key=lambda m: (-counts[m], m))


def _split_lists(root: Path) -> dict[str, str]:
    """``train.txt``/``val.txt``/``test.txt`` at the top of the release, if there: video stem -> split."""
    out = {}
    for split in ("train", "val", "test"):
        f = root / f"{split}.txt"
        if f.is_file():
            for line in f.read_text(encoding="utf-8", errors="replace").split():
                name = Path(line.strip()).name
                for suffix in (GREATEST_HITS_VIDEO, GREATEST_HITS_TIMES, ".mp4"):
                    name = name.removesuffix(suffix)
                out[name] = split
    return out


def greatest_hits_items(src: str | Path) -> list[BenchItem]:
    """Every ``*_denoised.mp4`` under ``src``, labelled from the ``*_times.txt`` beside it."""
    root = _check_src(src)
    splits = _split_lists(root)
    items = []
    for p in walk_files(root, {".mp4"}):
        if not p.name.endswith(GREATEST_HITS_VIDEO):
            continue
        stem = p.name.removesuffix(GREATEST_HITS_VIDEO)
        times = p.with_name(stem + GREATEST_HITS_TIMES)
        label = majority_label(read_hit_materials(times)) if times.is_file() else UNKNOWN_LABEL
        rel = p.relative_to(root).as_posix()
        items.append(BenchItem(safe_id(stem), label, splits.get(stem, "all"), rel, str(p)))
    if not items:
        raise SeeingSoundError(f"no *{GREATEST_HITS_VIDEO} videos under {src} (the official Greatest Hits release)")
    return unique_ids(items)

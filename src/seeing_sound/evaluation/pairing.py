"""Which files are scored together: folders paired by stem, or a benchmark folder's metadata.

Every file that does not end up in an item is listed with its reason (unpaired, duplicate stem,
not an image/audio file), never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seeing_sound.audio.io import AUDIO_EXTENSIONS
from seeing_sound.bench.layout import read_card
from seeing_sound.dataset.paths import UnsafePathError, safe_join, safe_name
from seeing_sound.errors import SeeingSoundError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Item:
    """One scored sample: a generated image, and its ground-truth image and audio where the metrics need them."""

    item_id: str
    generated: Path
    reference: Path | None = None
    audio: Path | None = None


@dataclass
class Benchmark:
    """Items to score under one name (a benchmark folder, or the folders given to ``evaluate_folders``)."""

    name: str
    items: list[Item]
    skipped: list[dict]  # {"file": ..., "reason": ...}
    source: dict  # where the items came from (folders, or benchmark.json)


def skip(file: str | Path, reason: str) -> dict:
    return {"file": str(file), "reason": reason}


def files_by_stem(folder: Path, extensions: frozenset[str], role: str) -> tuple[dict[str, Path], list[dict]]:
    """``{stem: file}`` of the ``extensions`` files in ``folder`` (not recursive), and the files left out."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{role} folder {folder} does not exist")
    found: dict[str, list[Path]] = {}
    skipped = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue  # hidden files and our own temp files
        if not p.is_file():
            skipped.append(skip(p, f"not a file (the {role} folder is not searched recursively)"))
        elif p.suffix.lower() not in extensions:
            skipped.append(skip(p, f"not a {role} file (extension {p.suffix or '(none)'!r})"))
        else:
            found.setdefault(p.stem, []).append(p)
    out = {}
    for stem, paths in found.items():
        if len(paths) > 1:
            others = ", ".join(q.name for q in paths)
            skipped += [skip(q, f"several {role} files share the stem {stem!r} ({others})") for q in paths]
        else:
            out[stem] = paths[0]
    return out, skipped


def pair_folders(
    images: str | Path, *, reference: str | Path | None, audio: str | Path | None, name: str | None = None
) -> Benchmark:
    """Items from files with the same stem in ``images`` (generated), ``reference`` and ``audio`` (each optional
    but ``images``): ``dog_01.png`` <-> ``dog_01.jpg`` <-> ``dog_01.wav``."""
    images = Path(images)
    gen, skipped = files_by_stem(images, IMAGE_EXTENSIONS, "image")
    roles: dict[str, dict[str, Path]] = {"generated image": gen}
    if reference is not None:
        roles["reference image"], s = files_by_stem(Path(reference), IMAGE_EXTENSIONS, "image")
        skipped += s
    if audio is not None:
        roles["audio"], s = files_by_stem(Path(audio), AUDIO_EXTENSIONS, "audio")
        skipped += s
    common = set.intersection(*(set(m) for m in roles.values()))
    for files in roles.values():
        for stem, f in sorted(files.items()):
            if stem not in common:
                missing = [r for r, m in roles.items() if stem not in m]
                skipped.append(skip(f, f"unpaired: no {' and no '.join(missing)} with stem {stem!r}"))
    items = [
        Item(
            stem,
            gen[stem],
            roles.get("reference image", {}).get(stem),
            roles.get("audio", {}).get(stem),
        )
        for stem in sorted(common)
    ]
    source = {"images": str(images), "reference": str(reference) if reference else None}
    source["audio"] = str(audio) if audio else None
    return Benchmark(name or images.name or "images", items, skipped, source)


def read_benchmark(folder: str | Path) -> tuple[str, dict, list[dict]]:
    """A benchmark folder's name, its ``benchmark.json`` and the rows of its ``metadata.parquet``
    (``item_id``, ``audio_path``, ``image_path`` relative to the folder, ...).

    The name is data: it becomes a folder only through :func:`benchmark_folder_name`, the rows'
    ids and paths only through :func:`benchmark_rows`. A broken ``benchmark.json`` or
    ``metadata.parquet`` stops the run with one line naming the file.
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta = folder / "metadata.parquet"
    if not meta.is_file():
        raise FileNotFoundError(f"benchmark folder {folder} has no metadata.parquet (see docs/evaluation.md)")
    info_file = folder / "benchmark.json"
    info: dict = read_card(folder) if info_file.is_file() else {}  # one line naming the file if it is not JSON
    if info.get("name") is not None and not isinstance(info["name"], str):
        raise SeeingSoundError(f"{info_file}: 'name' must be a string, got {info['name']!r}"[:300])
    try:
        table = pq.read_table(meta)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SeeingSoundError(f"{meta} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    required = {"item_id", "audio_path", "image_path"}
    if not required <= set(table.column_names):
        raise ValueError(f"{meta} must have columns {sorted(required)}, has {table.column_names}")
    return str(info.get("name") or folder.name), info, table.to_pylist()


def benchmark_folder_name(name: str) -> str:
    """The folder a benchmark's generated images go to: its name if that is a safe file name, else the
    name made safe (:func:`~seeing_sound.dataset.paths.safe_name` with ``sanitize``); callers refuse
    two benchmarks that get one folder."""
    return safe_name(name, what="benchmark name", sanitize=True)


def benchmark_rows(folder: str | Path, rows: list[dict]) -> tuple[list[tuple[str, Path, Path]], list[dict]]:
    """``(item_id, audio, image)`` of the metadata rows that are safe to use, and a skip for every other row.

    An ``item_id`` becomes the file name ``<item_id>.png``: one that is not a safe name
    (:func:`~seeing_sound.dataset.paths.safe_name`) is skipped as ``unsafe_id``, a repeated one as
    ``duplicate_id``; ``audio_path`` and ``image_path`` must stay inside ``folder``
    (:func:`~seeing_sound.dataset.paths.safe_join`), else ``unsafe_path``. Each skip reason starts
    with that key and the row's number (0-based) in ``metadata.parquet``. The files are not checked here.
    """
    folder = Path(folder)
    meta = folder / "metadata.parquet"
    good: list[tuple[str, Path, Path]] = []
    skipped: list[dict] = []
    first: dict[str, int] = {}
    for n, r in enumerate(rows):
        raw = r["item_id"]
        if isinstance(raw, int) and not isinstance(raw, bool):  # an integer id column
            raw = str(raw)
        try:
            item_id = safe_name(raw, what="item id")
        except UnsafePathError as exc:
            skipped.append(skip(meta, f"unsafe_id: row {n}: {exc}"))
            continue
        if item_id in first:
            skipped.append(skip(meta, f"duplicate_id: row {n}: item id {item_id!r} is also row {first[item_id]}'s"))
            continue
        first[item_id] = n
        try:
            audio, image = (safe_join(folder, r[k]) for k in ("audio_path", "image_path"))
        except UnsafePathError as exc:
            skipped.append(skip(meta, f"unsafe_path: row {n}: item {item_id}: {str(exc)[:300]}"))
            continue
        good.append((item_id, audio, image))
    return good, skipped

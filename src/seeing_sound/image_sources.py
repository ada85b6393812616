"""Where images are read from: folders, tar shards, Parquet files and ``datasets`` folders, in place.

What ``--images`` names is a *source*: a folder (walked recursively), one ``.tar`` file, or a pattern
of them — a glob (``shards/*.tar``) or a brace range or list in WebDataset's convention
(``shards/sa_{000000..000999}.tar``, ``{a,b}.tar``); a ``.parquet`` file (or a pattern of them) with
an image-bytes column, as img2dataset writes; or ``hf:PATH[:SPLIT]``, a ``datasets`` folder
(``save_to_disk``) or a folder of Parquet files with an ``Image()`` column. A literal path that exists
is never read as a pattern. Table sources take their columns from a fragment,
``data.parquet#id=key,image=jpg`` (defaults: see :func:`table_columns`). Tar shards are never
extracted: their headers are scanned once (:func:`scan_tar`), and each image is read with one
positioned read of the bytes its header claims, bounded by the bytes the file holds.

Inside a shard an image is named by its member name (``./`` dropped), exactly as it would be named
inside the folder the shard was made from, so concept files and sidecars keyed by file name work for
both, and the same images give the same pairs. In a table it is named by its id column; when that
column holds bare keys and the image column is named after a format (img2dataset's ``key`` and
``jpg``), the id is ``KEY.jpg``, the member name img2dataset gives the same image in its tar output.

Members that are not images (SAM's ``.json``) are skipped; links, devices and folders are not images
either. A header that claims more bytes than the file holds, or that cannot be parsed, is reported as
a problem with its offset (an error row for the caller), and the scan of that shard stops there:
nothing after a broken header can be trusted. Plain (uncompressed) tars only: a compressed tar has no
random access. In a table, a row with an empty or repeated id is a problem row.
"""

from __future__ import annotations

import bisect
import functools
import glob
import os
import re
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "TAR_SUFFIXES",
    "Member",
    "NoBytesError",
    "TableSource",
    "TarScan",
    "expand_pattern",
    "is_pattern",
    "is_tar",
    "member_bytes",
    "open_table",
    "read_member",
    "scan_tar",
    "source_paths",
    "table_columns",
    "table_specs",
    "tar_index",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
TAR_SUFFIXES = (".tar",)
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_BRACE_EXPANSION = 1_000_000  # names one pattern may expand to (a typo must not eat the memory)


def is_pattern(spec: str | os.PathLike) -> bool:
    """``spec`` is a glob or brace pattern rather than a path that exists."""
    text = os.fspath(spec)
    return not Path(text).exists() and any(c in text for c in "*?[{")


def _braces(text: str) -> list[str]:
    """WebDataset's brace expansion: ``a{000..002}b`` -> a000b a001b a002b; ``{x,y}`` -> x y; nested left to right."""
    m = _BRACE.search(text)
    if m is None:
        return [text]
    body, head, tail = m.group(1), text[: m.start()], text[m.end() :]
    rng = _RANGE.match(body)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        if hi < lo:
            raise ValueError(f"brace range {{{body}}} runs backwards")
        if hi - lo + 1 > MAX_BRACE_EXPANSION:
            raise ValueError(f"brace range {{{body}}} names more than {MAX_BRACE_EXPANSION:,} files")
        width = len(rng.group(1)) if rng.group(1).startswith("0") else 0
        parts = [str(i).zfill(width) for i in range(lo, hi + 1)]
    else:
        parts = body.split(",")
    out: list[str] = []
    for p in parts:
        out.extend(_braces(head + p + tail))
        if len(out) > MAX_BRACE_EXPANSION:
            raise ValueError(f"pattern names more than {MAX_BRACE_EXPANSION:,} files")
    return out


def expand_pattern(spec: str | os.PathLike) -> list[Path]:
    """The files a pattern names, in the order given (brace order, each glob sorted); existing ones only.

    Raises FileNotFoundError when nothing matches: a pattern that names no file is a typo.
    """
    text = os.fspath(spec)
    found: list[Path] = []
    seen: set[Path] = set()
    for name in _braces(text):
        hits = sorted(glob.glob(name)) if any(c in name for c in "*?[") else ([name] if Path(name).exists() else [])
        for h in hits:
            p = Path(h)
            if p not in seen:
                seen.add(p)
                found.append(p)
    if not found:
        raise FileNotFoundError(f"no file matches {text}")
    return found


def source_paths(specs: Iterable[str | os.PathLike]) -> list[Path]:
    """Every path the specs name: existing paths as given, patterns expanded."""
    out: list[Path] = []
    for s in specs:
        out.extend(expand_pattern(s) if is_pattern(s) else [Path(s)])
    return out


def is_tar(path: str | os.PathLike) -> bool:
    """A plain tar file by name (``.tar``); compressed tars are refused where they are opened."""
    return Path(path).suffix.lower() in TAR_SUFFIXES and Path(path).is_file()


@dataclass(frozen=True)
class Member:
    """One image inside a shard: its name, where its bytes start, and how many its header claims."""

    name: str
    offset: int
    size: int


@dataclass
class TarScan:
    """What :func:`scan_tar` found: the image members in file order, and problems as (offset, reason, detail)."""

    members: list[Member] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def scan_tar(path: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> TarScan:
    """Scan one plain tar's headers (no data is read): its image members and its problems.

    A member whose claimed data runs past the end of the file is a ``truncated`` problem; a header
    tarfile cannot parse is ``corrupt-archive``; both end the scan of this shard. A compressed tar
    raises ValueError (no random access into it).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
        raise ValueError(f"{path} is a compressed tar; images are read in place from plain .tar shards")
    scan = TarScan()
    try:
        with tarfile.open(path, mode="r:") as tf:
            while True:
                try:
                    info = tf.next()
                except tarfile.TarError as exc:
                    scan.problems.append((tf.offset, "corrupt-archive", f"{type(exc).__name__}: {exc}"))
                    break
                if info is None:  # the end, or a header tarfile gave up on (it stops there silently)
                    junk = _first_data_after(path, tf.offset)
                    if junk is not None:
                        scan.problems.append((tf.offset, "corrupt-archive", f"unreadable header at byte {junk}"))
                    break
                if info.offset_data + info.size > size:
                    present = max(0, size - info.offset_data)
                    detail = f"{_clean(info.name)}: header claims {info.size} bytes, {present} present"
                    scan.problems.append((info.offset, "truncated", detail))
                    break
                if info.isfile() and _clean(info.name).lower().endswith(suffixes):
                    scan.members.append(Member(_clean(info.name), info.offset_data, info.size))
    except tarfile.ReadError as exc:  # not a tar at all (or empty)
        if size:
            scan.problems.append((0, "corrupt-archive", f"not a tar archive: {exc}"))
    return scan


def _first_data_after(path: Path, offset: int, chunk: int = 1 << 20) -> int | None:
    """Offset of the first non-zero byte at or after ``offset`` (a real end of archive is all zeros)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        while block := fh.read(chunk):
            stripped = block.lstrip(b"\0")
            if stripped:
                return offset + len(block) - len(stripped)
            offset += len(block)
    return None


@functools.lru_cache(maxsize=64)
def _scan(path: str, size: int, mtime_ns: int) -> tuple[TarScan, dict[str, Member]]:
    scan = scan_tar(path)
    index: dict[str, Member] = {}
    for m in scan.members:
        index.setdefault(m.name, m)  # a repeated name: the first wins, as tar extraction order would not
    return scan, index


def _cached(path: str | os.PathLike) -> tuple[TarScan, dict[str, Member]]:
    st = os.stat(path)
    return _scan(os.fspath(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def cached_scan(path: str | os.PathLike) -> TarScan:
    """:func:`scan_tar` of one shard, once per process (scanned again if the file changes): discovery,
    the stage reading its images and a dataset's image store share it."""
    return _cached(path)[0]


def tar_index(path: str | os.PathLike) -> dict[str, Member]:
    """Member name -> :class:`Member` of one shard, from :func:`cached_scan`."""
    return _cached(path)[1]


def read_member(path: str | os.PathLike, member: Member) -> bytes:
    """The member's bytes, with one positioned read; OSError if fewer bytes are there than its header claims."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, member.size, member.offset)
    finally:
        os.close(fd)
    if len(data) != member.size:
        raise OSError(f"{member.name}: {len(data)} of {member.size} bytes present (the shard shrank)")
    return data


def member_bytes(path: str | os.PathLike, name: str) -> bytes:
    """The bytes of image ``name`` inside shard ``path``; KeyError if the shard holds no such image."""
    member = tar_index(path).get(name)
    if member is None:
        raise KeyError(f"{name} is not an image member of {path}")
    return read_member(path, member)


# --- tables: Parquet files and ``datasets`` folders ---------------------------------------------

ID_COLUMNS = ("image_id", "key", "file_name", "filename", "id", "path")
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "img", "bytes")
_FORMAT_COLUMNS = {"jpg", "jpeg", "png", "webp"}


def is_table(spec: str | os.PathLike) -> bool:
    """``spec`` names a table source: ``hf:...``, or a ``.parquet`` file (optionally with ``#columns``)."""
    text = os.fspath(spec)
    return text.startswith("hf:") or text.split("#", 1)[0].lower().endswith(".parquet")


def spec_path(spec: str | os.PathLike) -> Path:
    """The filesystem path a source spec names: ``hf:PATH[:SPLIT]`` -> PATH, ``X.parquet#...`` -> X.parquet."""
    text = os.fspath(spec)
    if text.startswith("hf:"):
        body = text[3:].split("#", 1)[0]
        path, _, split = body.rpartition(":")
        return Path(path if path and split and "/" not in split and not Path(body).exists() else body)
    return Path(text.split("#", 1)[0]) if is_table(text) else Path(text)


def _split_of(spec: str) -> str | None:
    body = spec[3:].split("#", 1)[0]
    path, _, split = body.rpartition(":")
    return split if path and split and "/" not in split and not Path(body).exists() else None


def _fragment(spec: str) -> dict[str, str]:
    if "#" not in spec:
        return {}
    out: dict[str, str] = {}
    for part in spec.split("#", 1)[1].split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("id", "image") or not value.strip():
            raise ValueError(f"{spec}: the fragment names columns as #id=COLUMN,image=COLUMN, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def _is_image_type(t) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return True
    return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0


def table_columns(schema, spec: str = "") -> tuple[str | None, str]:
    """(id column or None, image column) of a table: the fragment's, else the first of
    :data:`ID_COLUMNS` / :data:`IMAGE_COLUMNS` present (an image column holds bytes, or an ``Image()``
    struct with ``bytes``), else the only bytes column. ValueError naming the columns otherwise.

    Without an id column, an ``Image()`` column's ``path`` (the file name ``datasets`` saved the image
    with, as ``imagefolder`` records it) names each row; without that, the row number does."""
    names = list(schema.names)
    chosen = _fragment(spec)
    image = chosen.get("image") or next(
        (c for c in IMAGE_COLUMNS if c in names and _is_image_type(schema.field(c).type)), None
    )
    if image is None:
        binary = [c for c in names if _is_image_type(schema.field(c).type)]
        image = binary[0] if len(binary) == 1 else None
    if image is None or image not in names or not _is_image_type(schema.field(image).type):
        raise ValueError(f"{spec}: no image-bytes column (name one with #image=COLUMN); columns: {names}")
    ident = chosen.get("id") or next((c for c in ID_COLUMNS if c in names and c != image), None)
    if ident is not None and ident not in names:
        raise ValueError(f"{spec}: no column {ident!r}; columns: {names}")
    return ident, image


class TableSource:
    """One table of images: ids in row order, and each image's bytes by id (one row at a time).

    ``ids[i]`` names row i; ``problems`` are (row, reason, detail) of rows that cannot be images (a
    null or duplicate id). Parquet is read one row group at a time (the last one is kept, so a worker
    reading its rows in order decodes each group once); a ``datasets`` folder is memory-mapped.
    """

    def __init__(self, spec: str, table_rows, image_col: str, ids: list[str], problems: list[tuple[int, str, str]]):
        self.spec, self._rows, self.image_col = spec, table_rows, image_col
        self.ids, self.problems = ids, problems
        self.index = {i: n for n, i in enumerate(ids) if i}

    def read(self, image_id: str) -> bytes:
        """The image's bytes; KeyError if no row has this id, ValueError if the row holds no bytes."""
        row = self.index.get(image_id)
        if row is None:
            raise KeyError(f"{image_id} is not a row of {self.spec}")
        value = self._rows(row)
        if isinstance(value, dict):
            if value.get("bytes") is None and value.get("path"):
                # a path written in a table is data, not a file to open: embed the images instead
                raise NoBytesError(
                    "no-bytes", f"row {row} refers to a file by path ({value['path']!r}) instead of holding its "
                    "bytes; save the dataset with its images embedded (datasets: embed_external_files=True)",
                )  # fmt: skip
            value = value.get("bytes")
        if not value:
            raise NoBytesError("empty-file", f"row {row} of {self.spec} holds no image bytes")
        return bytes(value)


class NoBytesError(ValueError):
    """A table row without image bytes; ``reason`` is ``empty-file`` or ``no-bytes`` (a path instead)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _has_path(t) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(t) and t.get_field_index("path") >= 0


def _ids(values: list, ident: str | None, image_col: str) -> tuple[list[str], list[tuple[int, str, str]]]:
    suffix = f".{image_col}" if image_col in _FORMAT_COLUMNS else ""
    ids: list[str] = []
    problems: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for row, v in enumerate(values):
        text = f"{row:08d}{suffix}" if ident is None else ("" if v is None else str(v))
        if text and suffix and not text.lower().endswith(IMAGE_SUFFIXES):
            text += suffix
        if not text:
            problems.append((row, "missing_id", f"row {row}: the id column {ident!r} is empty"))
        elif text in seen:
            problems.append((row, "duplicate_id", f"row {row}: id {text!r} appears earlier"))
            text = ""
        seen.add(text)
        ids.append(text)
    return ids, problems


#: the Parquet row group last read (its image column, as Arrow): reading a table in row order decodes
#: each group once; random access decodes a group per image (see docs/image-sources.md)
_ROW_GROUP: dict = {}
_ROW_GROUP_LOCK = threading.Lock()


def _parquet(spec: str) -> TableSource:
    import pyarrow.parquet as pq

    path = spec_path(spec)
    pf = pq.ParquetFile(path)
    ident, image_col = table_columns(pf.schema_arrow, spec)
    if ident:
        values = pf.read(columns=[ident]).column(0).to_pylist()
    elif _has_path(pf.schema_arrow.field(image_col).type):  # an Image() column: the file name it was saved with
        values = pf.read(columns=[f"{image_col}.path"]).column(0).combine_chunks().field("path").to_pylist()
        ident = f"{image_col}.path"
    else:
        values = [None] * pf.metadata.num_rows
    ids, problems = _ids(values, ident, image_col)
    starts = [0]
    for g in range(pf.num_row_groups):
        starts.append(starts[-1] + pf.metadata.row_group(g).num_rows)

    def row(i: int):
        g = bisect.bisect_right(starts, i) - 1
        key = (spec, g)
        with _ROW_GROUP_LOCK:  # one row group of one table in memory per process, whatever the tables
            if _ROW_GROUP.get("key") != key:
                _ROW_GROUP.clear()
                _ROW_GROUP.update(key=key, values=pf.read_row_group(g, columns=[image_col]).column(0))
            return _ROW_GROUP["values"][i - starts[g]].as_py()

    return TableSource(spec, row, image_col, ids, problems)


def _hf(spec: str) -> list[str] | TableSource:
    """A ``datasets`` folder as one table, or a folder of Parquet files as the list of their specs."""
    path, split = spec_path(spec), _split_of(spec)
    frag = spec.split("#", 1)[1] if "#" in spec else ""
    if path.is_file():  # one Parquet export file
        return [f"{path}#{frag}" if frag else str(path)]
    if not (path / "state.json").exists() and not (path / "dataset_dict.json").exists():
        files = sorted(p for p in path.rglob("*.parquet") if split is None or split in p.relative_to(path).parts
                       or p.name.startswith(f"{split}-"))  # fmt: skip
        if not files:
            raise FileNotFoundError(f"{spec}: neither a datasets folder (save_to_disk) nor Parquet files")
        return [f"{f}#{frag}" if frag else str(f) for f in files]
    try:
        import datasets
    except ImportError as exc:
        raise ImportError("hf: image sources need the datasets package: pip install 'seeing-sound[hub]'") from exc
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1 and "train" not in ds:
                raise ValueError(f"{spec}: name a split (hf:PATH:SPLIT), one of {sorted(ds)}")
            split = "train" if "train" in ds else next(iter(ds))
        if split not in ds:
            raise ValueError(f"{spec}: no split {split!r}; splits: {sorted(ds)}")
        ds = ds[split]
    ds = ds.with_format("arrow")
    ident, image_col = table_columns(ds.features.arrow_schema, spec)
    if ident:
        values = ds[ident].to_pylist()
    elif _has_path(ds.features.arrow_schema.field(image_col).type):  # Image(): the file name it was saved with
        values = ds[image_col].combine_chunks().field("path").to_pylist()
        ident = f"{image_col}.path"
    else:
        values = [None] * len(ds)
    ids, problems = _ids(values, ident, image_col)

    def row(i: int):
        return ds[i : i + 1][image_col][0].as_py()

    return TableSource(spec, row, image_col, ids, problems)


@functools.lru_cache(maxsize=16)
def _open_table(spec: str, mtime_ns: int) -> list[str] | TableSource:
    return _hf(spec) if spec.startswith("hf:") else _parquet(spec)


def absolute_spec(spec: str | os.PathLike) -> str:
    """A table spec with its path made absolute (``hf:data`` -> ``hf:/abs/data``), fragment and split kept."""
    text = os.fspath(spec)
    path = spec_path(text)
    head = "hf:" if text.startswith("hf:") else ""
    body = text[len(head) :]
    rest = body[len(os.fspath(path)) :] if body.startswith(os.fspath(path)) else ""
    return f"{head}{path.resolve()}{rest}"


def table_specs(spec: str | os.PathLike) -> list[str]:
    """The tables a spec names, each an absolute spec: a Parquet pattern expanded, an ``hf:`` folder of
    Parquet files listed, a ``datasets`` folder as itself."""
    text = os.fspath(spec)
    frag = "#" + text.split("#", 1)[1] if "#" in text else ""
    if not text.startswith("hf:"):
        base = text.split("#", 1)[0]
        files = expand_pattern(base) if is_pattern(base) else [Path(base)]
        return [absolute_spec(f"{f}{frag}") for f in files]
    opened = open_table(absolute_spec(text))
    return opened if isinstance(opened, list) else [absolute_spec(text)]


def open_table(spec: str) -> list[str] | TableSource:
    """The table a spec names, opened once per process (reopened if its file changes). ``hf:`` folders
    of Parquet files open as the list of their files' specs, each a table of its own."""
    return _open_table(spec, spec_path(spec).stat().st_mtime_ns)

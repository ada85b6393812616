"""Precomputed features beside a dataset: ``DATASET/features/<kind>-<key>/``.

One safetensors file per metadata shard (``shard-000003.safetensors``) holding ``rows`` (int64
dataset row indices of the items that succeeded) and the feature tensors (fp16):

* ``ast``: ``embeds`` ``(n, tokens, dim)`` — AST last hidden state (optionally time-pooled);
* ``vae``: ``mean`` and ``std`` ``(n, 4, h, w)`` — the latent posterior, already multiplied by the
  VAE's ``scaling_factor``; training draws ``mean + std * noise`` with a per-step seed.

``features.json`` records the model, options and shapes; the training code checks it.

Stages write a shard batch by batch through :class:`ShardWriter` (fp16 rows appended to scratch
files, the safetensors header and data assembled at the end by streaming), so a stage's memory
depends on its batch size, not its shard size; the bytes equal :func:`write_shard`'s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.errors import SeeingSoundError

KINDS = ("ast", "vae")


def model_slug(name_or_path: str) -> str:
    """A folder-safe short name: the last path component of a hub id or path."""
    tail = Path(str(name_or_path).rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)


def feature_dir(root: str | Path, kind: str, key: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Path(root) / "features" / f"{kind}-{key}"


def write_shard(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write one feature shard (a safetensors file; deterministic bytes for equal inputs).

    The bytes are ``safetensors.numpy.save_file``'s with the metadata keys sorted (see
    :func:`safetensors_header`); :class:`ShardWriter` writes the same bytes batch by batch.
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    header, order = safetensors_header({k: (a.dtype, a.shape) for k, a in arrays.items()}, metadata)
    with open(path, "wb") as fh:
        fh.write(header)
        for name in order:
            fh.write(arrays[name].tobytes())


# safetensors' Rust writer orders tensors by dtype (this enum order, reversed), then by name.
_DTYPE_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]
_DTYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "U8",
    np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16",
    np.dtype(np.uint16): "U16",
    np.dtype(np.float16): "F16",
    np.dtype(np.int32): "I32",
    np.dtype(np.uint32): "U32",
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
    np.dtype(np.int64): "I64",
    np.dtype(np.uint64): "U64",
}


def safetensors_header(
    tensors: dict[str, tuple[np.dtype, tuple[int, ...]]], metadata: dict[str, str] | None
) -> tuple[bytes, list[str]]:
    """The bytes before the data of a safetensors file, and the order the tensors' data follow in.

    ``tensors``: name -> (dtype, shape). Reproduces ``safetensors.numpy.save`` exactly: the
    8-byte little-endian header length, compact JSON with ``__metadata__`` first and the
    tensors in data order, padded with spaces to a multiple of 8 bytes. One difference: the
    metadata keys are sorted, where safetensors (0.8) emits them in a Rust ``HashMap``'s
    per-process random order, so its bytes vary between runs when there are several keys.
    """
    codes = {name: _DTYPES[np.dtype(dt)] for name, (dt, _) in tensors.items()}
    order = sorted(tensors, key=lambda name: (-_DTYPE_ORDER.index(codes[name]), name))
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    offset = 0
    for name in order:
        dtype, shape = tensors[name]
        size = int(np.dtype(dtype).itemsize) * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": codes[name], "shape": [int(x) for x in shape], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw, order


class ShardWriter:
    """Write one feature shard incrementally: :meth:`append` batches, :meth:`close` assembles the file.

    ``columns``: name -> (dtype, per-row shape); every tensor has a leading row axis. Each column's
    rows go to a scratch file beside ``path`` as they arrive (cast to the column's dtype at once);
    ``close`` writes the safetensors header and copies the scratch files after it in blocks, so
    memory stays at one batch. The result is byte-identical to :func:`write_shard` on the
    concatenated arrays. Use as a context manager: on an exception the scratch files are removed
    and no shard is written.
    """

    def __init__(self, path: Path, columns: dict[str, tuple[np.dtype, tuple[int, ...]]], metadata: dict[str, str]):
        self.path = Path(path)
        self.columns = {k: (np.dtype(dt), tuple(int(x) for x in shape)) for k, (dt, shape) in columns.items()}
        self.metadata = metadata
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._parts = {k: self.path.with_name(f".{self.path.name}.{k}.part") for k in self.columns}
        self._files = {k: open(p, "wb") for k, p in self._parts.items()}  # noqa: SIM115  (closed in close/abort)

    def append(self, **arrays: np.ndarray) -> None:
        """Add ``n`` rows to every column (all columns at once, equal ``n``)."""
        if set(arrays) != set(self.columns):
            raise ValueError(f"append needs exactly the columns {sorted(self.columns)}, got {sorted(arrays)}")
        counts = {len(a) for a in arrays.values()}
        if len(counts) != 1:
            raise ValueError(f"columns have different row counts: { {k: len(a) for k, a in arrays.items()} }")
        for name, arr in arrays.items():
            dtype, shape = self.columns[name]
            arr = np.ascontiguousarray(arr, dtype=dtype)
            if arr.shape[1:] != shape:
                raise ValueError(f"column {name!r} rows have shape {arr.shape[1:]}, expected {shape}")
            self._files[name].write(arr.tobytes())
        self.rows += counts.pop()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        specs = {k: (dt, (self.rows, *shape)) for k, (dt, shape) in self.columns.items()}
        header, order = safetensors_header(specs, self.metadata)
        with open(self.path, "wb") as out:
            out.write(header)
            for name in order:
                with open(self._parts[name], "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        self._remove_parts()

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._remove_parts()

    def _remove_parts(self) -> None:
        for p in self._parts.values():
            if p.exists():
                os.unlink(p)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class BadShardError(SeeingSoundError):
    """A feature shard (or its folder's card) that training cannot read as ``seeing-sound features`` wrote it."""


#: the feature tensors of each kind's shards (besides ``rows``); the first one's shape is the reference
_FEATURE_TENSORS = {"ast": ("embeds",), "vae": ("mean", "std")}
#: bytes per element of each safetensors dtype code (the format's full list, 0.8)
_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
#: safetensors' own bound on the header (``MAX_HEADER_SIZE``): a larger length is never a real file
MAX_HEADER_BYTES = 100_000_000


def _dtype_name(code: str) -> str:
    """``F16`` -> ``float16 (F16)``: the numpy name users know, and the code the file holds."""
    names = {v: k.name for k, v in _DTYPES.items()} | {"BF16": "bfloat16"}
    return f"{names[code]} ({code})" if code in names else repr(code)


def _fix_hint(folder: Path) -> str:
    """How to rewrite a feature folder: ``seeing-sound features DATASET --overwrite``."""
    folder = Path(folder)
    dataset = folder.parent.parent if folder.parent.name == "features" else "DATASET"
    return f"recompute the features with `seeing-sound features {dataset} --overwrite`"


def read_safetensors_header(path: str | Path) -> dict[str, dict]:
    """The tensors of a safetensors file (name -> ``dtype``, ``shape``, ``data_offsets``), checked.

    Reads the 8-byte header length and the JSON header only, the length bounded by the file's size
    before anything is read, and checks what ``safetensors`` checks when it opens the file (known
    dtypes, each tensor's bytes matching its shape, the tensors' data tiling the rest of the file
    exactly), so a file that passes opens; one that does not raises :class:`BadShardError` naming
    the file and what is wrong, not the library's message naming no file.
    """
    path = Path(path)
    fix = _fix_hint(path.parent)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            raise BadShardError(
                f"{path}: not a safetensors file ({size} bytes, shorter than its 8-byte header length); {fix}"
            )
        n = int.from_bytes(fh.read(8), "little")
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise BadShardError(
                f"{path}: not a safetensors file (its header length says {n} bytes, the file has {size}); {fix}"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadShardError(f"{path}: not a safetensors file (its header is not JSON: {exc}); {fix}") from None
    if not isinstance(header, dict):
        raise BadShardError(f"{path}: not a safetensors file (its header is not a JSON object); {fix}")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise BadShardError(f"{path}: corrupt safetensors header (__metadata__ is not a map of strings); {fix}")
    data = size - 8 - n
    tensors: dict[str, dict] = {}
    for name, entry in header.items():
        ok = isinstance(entry, dict) and entry.get("dtype") in _ITEMSIZE
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(_natural(x) for x in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(_natural(x) for x in offsets)
        if not ok:
            raise BadShardError(
                f"{path}: corrupt safetensors header (tensor {name!r} is {json.dumps(entry)[:200]}, "
                f"expected a known dtype, a shape and two data offsets); {fix}"
            )
        tensors[name] = {"dtype": entry["dtype"], "shape": shape, "data_offsets": offsets}
    end = 0
    for name, t in sorted(tensors.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = t["data_offsets"]
        if stop > data:
            raise BadShardError(
                f"{path}: truncated or corrupt: tensor {name!r} ends at byte {8 + n + stop}, past the end of the "
                f"file ({size} bytes); {fix}"
            )
        if begin != end or stop < begin:
            raise BadShardError(
                f"{path}: corrupt safetensors header (tensor {name!r} spans bytes {begin}..{stop} of the data, "
                f"expected it to start at {end}); {fix}"
            )
        expect = _ITEMSIZE[t["dtype"]] * int(np.prod(t["shape"], dtype=object))
        if stop - begin != expect:
            raise BadShardError(
                f"{path}: corrupt safetensors header (tensor {name!r} of shape {t['shape']} and dtype "
                f"{t['dtype']} needs {expect} bytes, its offsets span {stop - begin} bytes); {fix}"
            )
        end = stop
    if end != data:
        raise BadShardError(
            f"{path}: corrupt safetensors file ({data - end} bytes after the last tensor's data); {fix}"
        )
    return tensors


def _natural(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


@dataclass
class FeatureSet:
    """Read access to one ``features/<kind>-<key>`` folder."""

    path: Path
    card: dict
    shards: list[Path] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path) -> FeatureSet:
        path = Path(path)
        card_path = path / "features.json"
        if not card_path.is_file():
            raise SeeingSoundError(f"{path} holds no features.json; run `seeing-sound features` first")
        try:
            card = json.loads(card_path.read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise SeeingSoundError(f"{card_path} is not JSON ({exc}); {_fix_hint(path)}") from None
        if not isinstance(card, dict):
            raise SeeingSoundError(
                f"{card_path} holds {type(card).__name__}, expected a JSON object; {_fix_hint(path)}"
            )
        return cls(path=path, card=card, shards=sorted(path.glob("shard-*.safetensors")))

    @property
    def kind(self) -> str:
        return self.card["kind"]

    def check(self, kind: str) -> None:
        """Raise :class:`BadShardError` (one line naming the file) unless every shard is one training can read.

        Reads each shard's safetensors header only (:func:`read_safetensors_header`, bounded by the
        file's size), never its data: ``kind`` matches the card; the tensors ``rows`` (int64) and
        ``embeds`` (``ast``, float16 ``(n, tokens, dim)``) or ``mean``/``std`` (``vae``, float16
        ``(n, *latent_shape)``) are there with those dtypes and shapes, ``tokens``/``dim``/
        ``latent_shape`` being the card's (or, where the card has none, the first shard's).
        """
        card_path = self.path / "features.json"
        if self.card.get("kind") != kind:
            raise BadShardError(
                f"{card_path} describes {self.card.get('kind')!r} features, expected {kind!r}; "
                f"pass a {kind} feature folder or {_fix_hint(self.path)}"
            )
        names = _FEATURE_TENSORS[kind]
        keys = ("tokens", "dim") if kind == "ast" else ("latent_shape",)
        tail: tuple[int, ...] | None = None
        if all(key in self.card for key in keys):
            values = [self.card[key] for key in keys]
            flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
            if not flat or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in flat):
                raise BadShardError(
                    f"{card_path}: {' and '.join(keys)} {values} are not positive whole numbers; {_fix_hint(self.path)}"
                )
            tail = tuple(flat)
        source = f"{card_path}'s {'/'.join(keys)}"
        for shard in self.shards:
            tensors = read_safetensors_header(shard)
            fix = _fix_hint(self.path)
            for name in ("rows", *names):
                if name not in tensors:
                    held = ", ".join(sorted(tensors)) or "no tensors"
                    raise BadShardError(
                        f"{shard}: no {name!r} tensor (it holds {held}; a {kind} feature shard holds "
                        f"{', '.join(('rows', *names))}); {fix}"
                    )
                want = "I64" if name == "rows" else "F16"
                got = tensors[name]["dtype"]
                if got != want:
                    raise BadShardError(
                        f"{shard}: {name!r} is {_dtype_name(got)}, expected {_dtype_name(want)} "
                        f"as `seeing-sound features` writes it; {fix}"
                    )
            rows = tensors["rows"]["shape"]
            if len(rows) != 1:
                raise BadShardError(f"{shard}: 'rows' has shape {rows}, expected one axis [n]; {fix}")
            n = rows[0]
            if tail is None:  # no card values: the first shard sets what the others must match
                tail, source = tuple(tensors[names[0]]["shape"][1:]), f"the first shard {shard.name}"
            for name in names:
                shape = tensors[name]["shape"]
                if shape[:1] != [n]:
                    raise BadShardError(
                        f"{shard}: 'rows' holds {n} rows but {name!r} has shape {shape} (expected {n} first); {fix}"
                    )
                if tuple(shape[1:]) != tail:
                    raise BadShardError(
                        f"{shard}: {name!r} has shape {shape}, expected {[n, *tail]} (from {source}); {fix}"
                    )

    def row_index(self) -> dict[int, tuple[int, int]]:
        """dataset row -> (position in ``shards``, position inside that shard)."""
        from safetensors import safe_open

        index: dict[int, tuple[int, int]] = {}
        for s, shard in enumerate(self.shards):
            with safe_open(str(shard), framework="np") as fh:
                for pos, row in enumerate(fh.get_tensor("rows").tolist()):
                    index[int(row)] = (s, pos)
        return index


def find_feature_set(root: str | Path, kind: str, name: str | None = None) -> FeatureSet:
    """The ``kind`` feature folder of a dataset: ``name`` (folder name) or the only one there is."""
    base = Path(root) / "features"
    if name:
        path = base / name if (base / name).is_dir() else Path(name)
        return FeatureSet.open(path)
    found = sorted(p for p in base.glob(f"{kind}-*") if (p / "features.json").is_file())
    if not found:
        raise SeeingSoundError(f"no {kind.upper()} features under {base}; run `seeing-sound features {root}` first")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise SeeingSoundError(
            f"several {kind.upper()} feature sets under {base} ({names}); choose one with --{kind}-features"
        )
    return FeatureSet.open(found[0])

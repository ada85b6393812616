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
        card = json.loads(card_path.read_text())
        return cls(path=path, card=card, shards=sorted(path.glob("shard-*.safetensors")))

    @property
    def kind(self) -> str:
        return self.card["kind"]

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

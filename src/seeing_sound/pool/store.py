"""Read access to a finished pool: manifest, chunk ids, memory-mapped chunk audio."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool import layout


class AudioPool:
    """A standardized audio pool on disk.

    ``chunk_id`` is the row number over all shards in order (0..N-1). Chunk audio is
    memory-mapped 16-bit PCM (with a per-chunk scale, see ``layout``), so reading one
    chunk by id is a page lookup and one multiply, not a decode.
    """

    def __init__(self, root: Path, info: dict):
        self.root = Path(root)
        self.info = info
        self.sample_rate: int = int(info["sample_rate"])
        self.chunk_samples: int = int(info["chunk_samples"])
        self.chunk_seconds: float = float(info["chunk_seconds"])
        counts = np.array([s["chunks"] for s in info["shards"]], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._maps: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, path: str | Path) -> AudioPool:
        root = Path(path)
        meta = layout.pool_json(root)
        if not meta.exists():
            hint = (
                " (an unfinished build: rerun `seeing-sound pool build` to finish it)"
                if (root / "_stages").exists()
                else ""
            )
            raise SeeingSoundError(f"{root} is not an audio pool: {meta.name} missing{hint}")
        info = json.loads(meta.read_text())
        if info.get("format") != layout.POOL_FORMAT:
            raise SeeingSoundError(f"{meta} is not a seeing-sound pool description")
        if info.get("format_version", 0) > layout.POOL_FORMAT_VERSION:
            raise SeeingSoundError(f"{root} was written by a newer seeing-sound (format {info['format_version']})")
        return cls(root, info)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"AudioPool({str(self.root)!r}, chunks={len(self)})"

    @cached_property
    def manifest(self) -> pa.Table:
        """All chunks' rows (pyarrow Table) with a ``chunk_id`` column first."""
        tables = [pq.read_table(self.root / layout.manifest_rel(s["index"])) for s in self.info["shards"]]
        table = pa.concat_tables(tables) if tables else pa.table({})
        ids = pa.array(np.arange(table.num_rows, dtype=np.int64))
        return table.add_column(0, "chunk_id", ids)

    @cached_property
    def errors(self) -> pa.Table:
        """Every source file that was skipped, with its reason."""
        tables = [pq.read_table(self.root / layout.errors_rel(s["index"])) for s in self.info["shards"]]
        return pa.concat_tables(tables)

    @cached_property
    def _factors(self) -> np.ndarray:
        """Per-chunk int16 -> float32 factor (pcm_scale / 32767), shape (N,)."""
        scale = self.manifest.column("pcm_scale").to_numpy().astype(np.float32)
        return scale / np.float32(layout.PCM_FULL_SCALE)

    def _shard_array(self, shard: int) -> np.ndarray:
        arr = self._maps.get(shard)
        if arr is None:
            n = int(self._offsets[shard + 1] - self._offsets[shard])
            path = self.root / layout.chunks_rel(self.info["shards"][shard]["index"])
            arr = (
                np.memmap(path, dtype=layout.CHUNK_DTYPE, mode="r", shape=(n, self.chunk_samples))
                if n
                else np.zeros((0, self.chunk_samples), dtype=layout.CHUNK_DTYPE)
            )
            self._maps[shard] = arr
        return arr

    def _check_ids(self, ids: np.ndarray) -> None:
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise IndexError(f"chunk_id {int(bad)} out of range for a pool of {len(self)} chunks")

    def chunk(self, chunk_id: int) -> np.ndarray:
        """Audio of one chunk: float32 (chunk_samples,) at ``sample_rate``."""
        cid = int(chunk_id)
        self._check_ids(np.array([cid]))
        shard = int(np.searchsorted(self._offsets, cid, side="right") - 1)
        row = self._shard_array(shard)[cid - self._offsets[shard]]
        return np.multiply(row, self._factors[cid], dtype=np.float32)

    def pcm_rows(self, ids) -> tuple[list[np.ndarray], np.ndarray]:
        """The stored int16 rows of ``ids`` (memory-mapped views, no copy) and their float32
        factors: ``row * factor`` is what :meth:`chunk` returns. For code that scales the
        chunks anyway (mixing), folding the factor into its own gain saves a full pass."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_ids(ids)
        shards = np.searchsorted(self._offsets, ids, side="right") - 1
        rows = ids - self._offsets[shards]
        return [self._shard_array(int(s))[r] for s, r in zip(shards, rows, strict=True)], self._factors[ids]

    def chunks(self, ids) -> np.ndarray:
        """Audio of many chunks: float32 (n, chunk_samples), in the order of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_ids(ids)
        out = np.empty((ids.size, self.chunk_samples), dtype=np.float32)
        shards = np.searchsorted(self._offsets, ids, side="right") - 1
        rows = ids - self._offsets[shards]
        factors = self._factors[ids]
        for j in range(ids.size):  # one pass per row straight into ``out``: no gathered temporaries
            np.multiply(self._shard_array(int(shards[j]))[rows[j]], factors[j], out=out[j])
        return out

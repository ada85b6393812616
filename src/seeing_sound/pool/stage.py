"""``pool build``: source audio -> 16 kHz mono 5 s chunks with loudness, as a resumable stage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.audio.chunking import Chunker
from seeing_sound.audio.io import BadAudio, file_checksum, stream_mono
from seeing_sound.audio.loudness import BLOCK_SECONDS, integrated_loudness, is_silent
from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment
from seeing_sound.pool import layout
from seeing_sound.pool.config import PoolBuildConfig
from seeing_sound.pool.sources import SourceFile

log = logging.getLogger(__name__)

_MANIFEST_FIELDS: list[tuple[str, pa.DataType]] = [
    ("source", pa.string()),
    ("source_checksum", pa.string()),
    ("chunk_in_source", pa.int32()),
    ("offset_s", pa.float64()),
    ("real_samples", pa.int64()),
    ("real_seconds", pa.float64()),
    ("loudness_lufs", pa.float64()),
    ("peak", pa.float32()),
    ("pcm_scale", pa.float32()),
    ("silent", pa.bool_()),
    ("short", pa.bool_()),
    ("truncated", pa.bool_()),  # the source broke off mid-stream or ended before its header's length: what decoded
    ("description", pa.string()),
    ("labels", pa.list_(pa.string())),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)
ERRORS_SCHEMA = pa.schema([("source", pa.string()), ("reason", pa.string()), ("detail", pa.string())])
#: chunks measured per loudness call: bounds memory for hour-long files
LOUDNESS_BATCH = 64


PoolConfig = PoolBuildConfig  # the old name, kept importable


def quantize_chunks(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store chunks as 16-bit PCM without clipping.

    Args:
        chunks: (n, S) float32.
    Returns:
        pcm (n, S) int16, scale (n,) float32 >= 1, values (n, S) float32: exactly what
        readers get back (``pcm * scale / 32767``), which loudness and peak are measured on.
    """
    if not chunks.size:
        return chunks.astype(layout.CHUNK_DTYPE), np.ones(chunks.shape[0], np.float32), chunks
    peak = np.maximum(chunks.max(axis=1), -chunks.min(axis=1))
    scale = np.maximum(peak, 1.0).astype(np.float32)
    scaled = chunks * (np.float32(layout.PCM_FULL_SCALE) / scale)[:, None]
    np.rint(scaled, out=scaled)  # |scaled| <= 32767 (+ float32 rounding < 0.01): no clip needed
    pcm = scaled.astype(layout.CHUNK_DTYPE)
    values = np.multiply(pcm, (scale / np.float32(layout.PCM_FULL_SCALE))[:, None], dtype=np.float32)
    return pcm, scale, values


class _ChunkFile:
    """Append-only raw int16 chunk file that can roll back a failed source file."""

    def __init__(self, path: Path, chunk_samples: int):
        self.fh = open(path, "wb")  # noqa: SIM115  (closed by close()/rollback(), across many calls)
        self.row_bytes = chunk_samples * 2
        self.rows = 0

    def write(self, chunks: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(chunks, dtype=layout.CHUNK_DTYPE).tobytes())
        self.rows += chunks.shape[0]

    def rollback(self, rows: int) -> None:
        self.fh.flush()
        self.fh.truncate(rows * self.row_bytes)
        self.fh.seek(rows * self.row_bytes)
        self.rows = rows

    def close(self) -> None:
        self.fh.close()


def measure_chunks(chunks: np.ndarray, real: np.ndarray, rate: int) -> np.ndarray:
    """Loudness (LUFS) of each stored chunk's real audio.

    Args:
        chunks: (n, S) float32 as stored (after 16-bit quantization).
        real: (n,) unpadded sample counts.
    Full chunks are measured in one batch. A padded tail is measured on its unpadded
    samples; one with less than 0.4 s of real audio (shorter than a BS.1770 block) is
    measured over its first 0.4 s, i.e. its momentary loudness, and flagged ``short``.
    """
    out = np.empty(chunks.shape[0], dtype=np.float64)
    full = real == chunks.shape[1]
    if full.any():
        out[full] = integrated_loudness(chunks[full], rate)
    block = round(BLOCK_SECONDS * rate)
    for i in np.flatnonzero(~full):
        out[i] = integrated_loudness(chunks[i, : max(int(real[i]), block)], rate)
    return out


def plan_build(files: Sequence[SourceFile], shard_files: int) -> list[ShardTask]:
    """Shards of ``shard_files`` consecutive source files; each task carries only its own files."""
    return [ShardTask(i, tuple(files[s : s + shard_files])) for i, s in enumerate(range(0, len(files), shard_files))]


@dataclass
class PoolBuildStage(Stage):
    """Config only (O(1) in the number of files): the files travel in each shard's task (:func:`plan_build`)."""

    config: PoolBuildConfig
    name: str = "build"

    def outputs(self, index: int) -> list[str]:
        return [layout.chunks_rel(index), layout.manifest_rel(index), layout.errors_rel(index)]

    def fingerprint(self) -> dict:
        return {"config": self.config.fingerprint(), "format": layout.POOL_FORMAT_VERSION}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        cfg = self.config
        (scratch / "chunks").mkdir(parents=True)
        sink = _ChunkFile(scratch / layout.chunks_rel(task.index), cfg.chunk_samples)
        rows: list[dict] = []
        errors: list[dict] = []
        try:
            for src in task.items:
                if src.error:  # found bad while listing (duplicate id, unreadable link): an error row
                    errors.append({"source": src.source, "reason": src.error, "detail": src.detail or ""})
                    continue
                mark, n_rows = sink.rows, len(rows)
                try:
                    rows.extend(self._ingest(src, sink))
                except BadAudio as exc:
                    sink.rollback(mark)
                    del rows[n_rows:]
                    errors.append({"source": src.source, "reason": exc.reason, "detail": exc.detail})
                except (OSError, MemoryError) as exc:  # unreadable mid-way: record, keep going
                    reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                    sink.rollback(mark)
                    del rows[n_rows:]
                    errors.append({"source": src.source, "reason": "io_error", "detail": str(exc)[:200]})
        finally:
            sink.close()
        (scratch / "manifest").mkdir()
        (scratch / "errors").mkdir()
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), scratch / layout.manifest_rel(task.index))
        pq.write_table(pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA), scratch / layout.errors_rel(task.index))
        reasons: dict[str, int] = {}
        for e in errors:
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        files_ok = len({r["source"] for r in rows})
        return ShardStats(
            shard=task.index,
            items_in=len(task.items),
            items_out=files_ok,
            errors=reasons,
            extra={
                "chunks": len(rows),
                "silent_chunks": sum(r["silent"] for r in rows),
                "real_seconds": round(sum(r["real_seconds"] for r in rows), 6),
                "truncated_files": len({r["source"] for r in rows if r["truncated"]}),
            },
        )

    def _ingest(self, src: SourceFile, sink: _ChunkFile) -> list[dict]:
        cfg = self.config
        try:
            checksum = file_checksum(src.path)
        except OSError as exc:
            raise BadAudio("unreadable", str(exc)[:200]) from None
        chunker = Chunker(cfg.chunk_samples, cfg.min_tail_samples)
        rows: list[dict] = []
        pending: list = []

        def flush() -> None:
            stored, scales, values = quantize_chunks(np.stack([c.samples for c in pending]))
            real = np.array([c.real_samples for c in pending])
            lufs = measure_chunks(values, real, cfg.sample_rate)
            silent = is_silent(lufs)
            peaks = np.abs(values).max(axis=1)
            for c, l_, s_, p_, k_ in zip(pending, lufs, silent, peaks, scales, strict=True):
                rows.append(
                    {
                        "source": src.source,
                        "source_checksum": checksum,
                        "chunk_in_source": c.index,
                        "offset_s": c.index * cfg.chunk_seconds,
                        "real_samples": c.real_samples,
                        "real_seconds": c.real_samples / cfg.sample_rate,
                        "loudness_lufs": float(l_),
                        "peak": float(p_),
                        "pcm_scale": float(k_),
                        "silent": bool(s_),
                        "short": c.real_samples < BLOCK_SECONDS * cfg.sample_rate,
                        "truncated": False,  # set for the whole file once it is read to the end
                        "description": src.description,
                        "labels": list(src.labels),
                    }
                )
            sink.write(stored)
            pending.clear()

        status: dict = {}
        for block in stream_mono(src.path, cfg.sample_rate, status=status):
            for chunk in chunker.feed(block):
                pending.append(chunk)
                if len(pending) == LOUDNESS_BATCH:
                    flush()
        pending.extend(chunker.finish())
        if pending:
            flush()
        if not rows:
            raise BadAudio("too_short", f"{chunker.total_samples} samples, under min_tail_seconds")
        if status.get("truncated"):
            for r in rows:
                r["truncated"] = True
        return rows

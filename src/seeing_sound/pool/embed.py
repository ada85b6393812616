"""``pool embed``: one encoder's embedding of every usable pool chunk, stored beside the pool.

Layout (``<key>`` from :func:`seeing_sound.encoders.embedding_key`, so several encoders
live side by side)::

    POOL/embeddings/<key>/info.json                  encoder, model, revision, dim, dtype, counts
    POOL/embeddings/<key>/shard-000000.npy           float16|float32 (n, D) unit rows
    POOL/embeddings/<key>/shard-000000.ids.npy       int64 (n,) chunk_id of each row
    POOL/embeddings/<key>/shard-000000.skipped.parquet   chunk_id, reason (not embedded)
    POOL/_stages/embed-<key>/                         resume state (engine)

Skipped, with a recorded reason: silent chunks (``silent``; they carry no sound to match),
and for the text encoder chunks with neither description nor labels (``no_text``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.engine import ShardStats, ShardTask, Stage, run_stage, shard_name
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)

EMBED_DTYPES = ("float32", "float16")
AUDIO_READ_BATCH = 256  # chunks read from the pool at a time: 256 x 5 s x 16 kHz float32 = 82 MB


def embeddings_root(pool_root: str | Path, key: str) -> Path:
    return Path(pool_root) / "embeddings" / key


def vectors_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.npy"


def ids_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.ids.npy"


def skipped_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.skipped.parquet"


def chunk_text(description: str | None, labels) -> str:
    """The text that stands for a chunk on the pool side of ``--encoder text``.

    Description and labels together ("Dog barking far away. Dog, Bark"); either alone when
    the other is missing; empty when both are.
    """
    parts = []
    if description and str(description).strip():
        parts.append(str(description).strip())
    labs = [str(x).strip() for x in (labels or []) if x is not None and str(x).strip()]
    if labs:
        parts.append(", ".join(labs))
    return ". ".join(parts)


def pool_digest(pool) -> str:
    """Identity of a pool's content: its description file and every chunk's source checksum/offset."""
    h = hashlib.sha256((pool.root / "pool.json").read_bytes())
    m = pool.manifest
    for name in ("source_checksum", "offset_s"):
        if name in m.column_names:
            h.update("\n".join(map(str, m.column(name).to_pylist())).encode())
    return h.hexdigest()[:16]


@dataclass
class EmbedStage(Stage):
    """Embed pool chunks ``[start, stop)`` per shard with one encoder (config only: picklable)."""

    pool_root: str
    encoder: str
    model: str
    key: str
    ranges: tuple  # ((start, stop), ...) chunk-id ranges, one per shard
    identity: dict  # EncoderInfo.to_dict(): checked by resume
    dtype: str = "float32"
    device: str = "auto"
    fp16: bool = False
    batch_size: int | None = None
    digest: str = ""
    name: str = field(init=False, default="embed")

    def __post_init__(self):
        self.name = f"embed-{self.key}"

    def plan(self) -> list[ShardTask]:
        return [ShardTask(index=i, items=(a, b)) for i, (a, b) in enumerate(self.ranges)]

    def outputs(self, index: int) -> list[str]:
        return [vectors_rel(self.key, index), ids_rel(self.key, index), skipped_rel(self.key, index)]

    def fingerprint(self) -> dict:
        return {"encoder": self.identity, "dtype": self.dtype, "pool": self.digest, "fp16": self.fp16}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from seeing_sound.encoders import load_encoder
        from seeing_sound.pool import AudioPool

        start, stop = task.items
        pool = AudioPool.open(self.pool_root)
        rows = pool.manifest.slice(start, stop - start)
        ids = np.arange(start, stop, dtype=np.int64)
        silent = np.asarray(rows.column("silent").to_pylist(), dtype=bool)
        reasons = np.where(silent, "silent", "").astype(object)
        enc = load_encoder(self.encoder, self.model, device=self.device, fp16=self.fp16, batch_size=self.batch_size)
        if enc.info.to_dict() != self.identity:
            raise SeeingSoundError(f"encoder {self.model} changed while embedding (revision {enc.info.revision}, "
                                   f"expected {self.identity['revision']}); rerun with --overwrite")
        if self.encoder == "text":
            texts = [chunk_text(d, l) for d, l in zip(rows.column("description").to_pylist(), rows.column("labels").to_pylist())]
            reasons[(reasons == "") & np.array([not t for t in texts], dtype=bool)] = "no_text"
            keep = np.flatnonzero(reasons == "")
            vecs = enc.embed_text([texts[i] for i in keep])
        else:
            keep = np.flatnonzero(reasons == "")
            parts = [enc.embed_audio(pool.chunks(ids[keep[s : s + AUDIO_READ_BATCH]]), pool.sample_rate)
                     for s in range(0, keep.size, AUDIO_READ_BATCH)]
            vecs = np.concatenate(parts) if parts else np.zeros((0, enc.info.dim), np.float32)
        bad = ~np.isfinite(vecs).all(axis=1) | (np.abs(vecs).sum(axis=1) == 0)
        reasons[keep[bad]] = "bad_embedding"  # NaN/zero output (e.g. fp16 overflow): never indexed
        keep, vecs = keep[~bad], vecs[~bad]
        out = scratch / "embeddings" / self.key
        out.mkdir(parents=True, exist_ok=True)
        np.save(scratch / vectors_rel(self.key, task.index), np.ascontiguousarray(vecs.astype(self.dtype)))
        np.save(scratch / ids_rel(self.key, task.index), ids[keep])
        skipped = np.flatnonzero(reasons != "")
        pq.write_table(pa.table({"chunk_id": pa.array(ids[skipped], pa.int64()),
                                 "reason": pa.array([str(r) for r in reasons[skipped]], pa.string())}),
                       scratch / skipped_rel(self.key, task.index))
        errors: dict[str, int] = {}
        for r in reasons[skipped]:
            errors[str(r)] = errors.get(str(r), 0) + 1
        return ShardStats(shard=task.index, items_in=stop - start, items_out=int(keep.size), errors=errors)


@dataclass
class EmbedReport:
    """What ``pool embed`` did."""

    root: Path
    key: str
    info: dict
    chunks: int
    embedded: int
    skipped: dict[str, int]
    shards_run: int
    shards_skipped: int
    seconds: float


def embed_pool(pool: str | Path, encoder: str = "clap", model: str | None = None, *, device: str = "auto",
               fp16: bool = False, batch_size: int | None = None, dtype: str = "float32", shard_chunks: int = 4096,
               workers: int = 1, overwrite: bool = False, progress: bool = True) -> EmbedReport:
    """Embed every usable chunk of the pool at ``pool`` with ``encoder`` (resumable); write ``info.json``."""
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool

    if dtype not in EMBED_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(EMBED_DTYPES)}, got {dtype!r}")
    if shard_chunks < 1:
        raise ValueError(f"shard_chunks must be >= 1, got {shard_chunks}")
    ap = AudioPool.open(pool)
    enc = load_encoder(encoder, model, device=device, fp16=fp16, batch_size=batch_size)
    if encoder == "clap" and "audio" not in enc.modalities:
        raise ValueError(f"encoder {encoder!r} cannot embed audio")
    key = enc.info.key
    info_path = embeddings_root(ap.root, key) / "info.json"
    if info_path.exists() and not overwrite:
        old = json.loads(info_path.read_text())
        if old.get("encoder_info") != enc.info.to_dict() or old.get("dtype") != dtype:
            raise SeeingSoundError(
                f"{info_path.parent} holds embeddings from {old.get('encoder_info', {}).get('model')} "
                f"(revision {old.get('encoder_info', {}).get('revision')}, {old.get('dtype')}); "
                "pass --overwrite to replace them")
    n = len(ap)
    ranges = tuple((a, min(n, a + shard_chunks)) for a in range(0, n, shard_chunks))
    stage = EmbedStage(pool_root=str(ap.root), encoder=encoder, model=enc.info.model, key=key, ranges=ranges,
                       identity=enc.info.to_dict(), dtype=dtype, device=device, fp16=fp16, batch_size=batch_size,
                       digest=pool_digest(ap))
    log.info("pool embed: %d chunks in %d shards with %s -> %s", n, len(ranges), enc.info.model, info_path.parent)
    report = run_stage(stage, ap.root, workers=workers, overwrite=overwrite, progress=progress)
    info = {
        "format": "seeing-sound-embeddings", "format_version": 1, "encoder_info": enc.info.to_dict(),
        "key": key, "dtype": dtype, "pool": stage.digest, "normalized": True,
        "pool_text": "description. labels" if encoder == "text" else None,
        "counts": {"chunks": report.items_in, "embedded": report.items_out, "skipped": report.errors},
        "shards": [{"index": s.shard, "rows": s.items_out} for s in report.shards],
    }
    write_json_atomic(info_path, info)
    return EmbedReport(root=info_path.parent, key=key, info=info, chunks=report.items_in, embedded=report.items_out,
                       skipped=report.errors, shards_run=report.ran, shards_skipped=report.skipped,
                       seconds=report.seconds)

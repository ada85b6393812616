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
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.engine import ShardStats, ShardTask, Stage
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool.config import EmbedConfig
from seeing_sound.pool.layout import ids_rel, skipped_rel, vectors_rel

log = logging.getLogger(__name__)

AUDIO_READ_BATCH = 256  # chunks read from the pool at a time: 256 x 5 s x 16 kHz float32 = 82 MB


def chunk_text(description: str | None, labels) -> str:
    """The text that stands for a chunk on the pool side of the text encoder.

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
    """Embed pool chunks ``[start, stop)`` per shard with one encoder (config only: O(1), picklable).

    Shards are ``config.shard_chunks`` consecutive chunk ids of the ``n_chunks`` in the pool;
    :meth:`setup` loads the encoder and opens the pool once per worker.
    """

    config: EmbedConfig  # its model is the resolved id that every worker loads
    pool_root: str
    key: str
    n_chunks: int
    identity: dict  # EncoderInfo.to_dict(): checked by resume
    digest: str = ""
    name: str = field(init=False, default="embed")

    def __post_init__(self):
        self.name = f"embed-{self.key}"

    def plan(self) -> list[ShardTask]:
        step, n = self.config.shard_chunks, self.n_chunks
        return [ShardTask(index=i, items=(a, min(n, a + step))) for i, a in enumerate(range(0, n, step))]

    def task_size(self, task: ShardTask) -> int:
        start, stop = task.items  # a chunk range: the bar counts chunks, as the shard's stats do
        return int(stop) - int(start)

    def setup(self) -> None:
        from seeing_sound.encoders import load_encoder
        from seeing_sound.pool import AudioPool

        cfg = self.config
        self.pool = AudioPool.open(self.pool_root)
        self.encoder = load_encoder(
            cfg.encoder,
            cfg.model,
            device=cfg.device,
            fp16=cfg.fp16,
            batch_size=cfg.batch_size,
            audio_prep=cfg.audio_prep,
        )
        if self.encoder.info.to_dict() != self.identity:
            raise SeeingSoundError(
                f"encoder {cfg.model} changed while embedding (revision {self.encoder.info.revision}, "
                f"expected {self.identity['revision']}); rerun with overwrite=True"
            )

    def outputs(self, index: int) -> list[str]:
        return [vectors_rel(self.key, index), ids_rel(self.key, index), skipped_rel(self.key, index)]

    def fingerprint(self) -> dict:
        # The encoder's identity stands for encoder + model (+ revision); the rest of the config as is.
        cfg = {k: v for k, v in self.config.fingerprint().items() if k not in ("encoder", "model")}
        return {"encoder": self.identity, "pool": self.digest, **cfg}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        self.ensure_setup()
        start, stop = task.items
        pool, enc = self.pool, self.encoder
        rows = pool.manifest.slice(start, stop - start)
        ids = np.arange(start, stop, dtype=np.int64)
        silent = np.asarray(rows.column("silent").to_pylist(), dtype=bool)
        reasons = np.where(silent, "silent", "").astype(object)
        cfg = self.config
        if cfg.encoder == "text":
            texts = [
                chunk_text(desc, labels)
                for desc, labels in zip(
                    rows.column("description").to_pylist(), rows.column("labels").to_pylist(), strict=True
                )
            ]
            reasons[(reasons == "") & np.array([not t for t in texts], dtype=bool)] = "no_text"
            keep = np.flatnonzero(reasons == "")
            vecs = enc.embed_text([texts[i] for i in keep])
        else:
            keep = np.flatnonzero(reasons == "")
            parts = [
                enc.embed_audio(pool.chunks(ids[keep[s : s + AUDIO_READ_BATCH]]), pool.sample_rate)
                for s in range(0, keep.size, AUDIO_READ_BATCH)
            ]
            vecs = np.concatenate(parts) if parts else np.zeros((0, enc.info.dim), np.float32)
        bad = ~np.isfinite(vecs).all(axis=1) | (np.abs(vecs).sum(axis=1) == 0)
        reasons[keep[bad]] = "bad_embedding"  # NaN/zero output (e.g. fp16 overflow): never indexed
        keep, vecs = keep[~bad], vecs[~bad]
        out = scratch / "embeddings" / self.key
        out.mkdir(parents=True, exist_ok=True)
        np.save(scratch / vectors_rel(self.key, task.index), np.ascontiguousarray(vecs.astype(cfg.dtype)))
        np.save(scratch / ids_rel(self.key, task.index), ids[keep])
        skipped = np.flatnonzero(reasons != "")
        pq.write_table(
            pa.table(
                {
                    "chunk_id": pa.array(ids[skipped], pa.int64()),
                    "reason": pa.array([str(r) for r in reasons[skipped]], pa.string()),
                }
            ),
            scratch / skipped_rel(self.key, task.index),
        )
        errors: dict[str, int] = {}
        for r in reasons[skipped]:
            errors[str(r)] = errors.get(str(r), 0) + 1
        return ShardStats(shard=task.index, items_in=stop - start, items_out=int(keep.size), errors=errors)

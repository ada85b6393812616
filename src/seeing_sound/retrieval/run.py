"""``seeing-sound retrieve``: concepts file -> Parquet of retrieved chunks, resumable.

Layout under ``OUT``::

    OUT/retrieval/shard-000000.parquet   results (RESULT_SCHEMA), sorted by image_id, concept_index
    OUT/retrieval/skipped.parquet        input rows not retrieved for, with reason
    OUT/retrieval/info.json              encoder, model, revision, topk, ssr, seed, counts
    OUT/_stages/retrieve/                resume state; inputs/ holds each shard's concept rows

Shards group *unique concept strings* (sorted), with all their occurrences, so a string
used by thousands of images is embedded and searched once overall, not once per shard.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seeing_sound.config import resolve
from seeing_sound.engine import atomic_write, run_stage
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.retrieval.inputs import normalize_concepts, read_concept_file
from seeing_sound.retrieval.stage import RetrieveStage, inputs_rel, open_index

log = logging.getLogger(__name__)


@dataclass
class RetrieveReport:
    out: Path
    rows_in: int
    retrieved: int
    skipped: dict[str, int]
    unique_concepts: int
    shards_run: int
    shards_skipped: int
    seconds: float
    stats: dict | None = None


def _shard_inputs(table: pa.Table, shard_rows: int) -> list[pa.Table]:
    """Split rows into shards of whole unique-concept groups (sorted by concept), ~``shard_rows`` rows each."""
    order = pc.sort_indices(
        table, sort_keys=[("concept", "ascending"), ("image_id", "ascending"), ("concept_index", "ascending")]
    )
    table = table.take(order)
    concepts = table.column("concept").to_pylist()
    shards, start = [], 0
    for i in range(1, len(concepts) + 1):
        boundary = i == len(concepts) or concepts[i] != concepts[i - 1]
        if boundary and (i - start >= shard_rows or i == len(concepts)):
            shards.append(table.slice(start, i - start))
            start = i
    return shards


def retrieve(
    pool: str | Path,
    concepts: str | Path,
    out: str | Path,
    config: RetrieveConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    **options,
) -> RetrieveReport:
    """Retrieve a pool chunk for every concept row in ``concepts`` into ``out`` (resumable).

    ``config`` holds the settings (defaults: :class:`RetrieveConfig`); keyword ``options`` (its
    field names, e.g. ``topk=10``) override single fields.
    """
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool
    from seeing_sound.retrieval.stats import usage_stats

    cfg = resolve(RetrieveConfig, config, options)
    ap = AudioPool.open(pool)
    table, skipped = normalize_concepts(read_concept_file(concepts))
    enc = load_encoder(cfg.encoder, cfg.model, device=cfg.device, fp16=cfg.fp16, batch_size=cfg.batch_size)
    index = open_index(ap.root, enc.info, kind=cfg.index_kind, engine=cfg.engine)  # fail early on missing embeddings
    out = Path(out)
    shards = _shard_inputs(table, cfg.shard_rows)
    digest = hashlib.sha256()
    for i, shard in enumerate(shards):
        path = out / inputs_rel(i)
        with atomic_write(path) as fh:
            pq.write_table(shard, fh)
        digest.update(path.read_bytes())
    stage = RetrieveStage(
        config=cfg,
        out=str(out),
        pool_root=str(ap.root),
        identity=enc.info.to_dict(),
        counts=tuple(s.num_rows for s in shards),
        inputs_digest=digest.hexdigest()[:16],
    )
    log.info(
        "retrieve: %d concept rows (%d unique) in %d shards against %d indexed chunks",
        table.num_rows,
        len(set(table.column("concept").to_pylist())),
        len(shards),
        len(index),
    )
    report = run_stage(stage, out, workers=workers, overwrite=overwrite, progress=progress)
    with atomic_write(out / "retrieval" / "skipped.parquet") as fh:
        pq.write_table(skipped, fh)
    reasons: dict[str, int] = {}
    for r in skipped.column("reason").to_pylist():
        reasons[r] = reasons.get(r, 0) + 1
    # Usage diversity is cheap (one int column) and always recorded in info.json.
    ids = [
        pq.read_table(out / p, columns=["chunk_id"]).column("chunk_id").to_numpy()
        for i in range(len(shards))
        for p in stage.outputs(i)
    ]
    usage = usage_stats(np.concatenate(ids) if ids else np.zeros(0, np.int64), pool_size=len(index))
    write_json_atomic(
        out / "retrieval" / "info.json",
        {
            "encoder_info": enc.info.to_dict(),
            "topk": cfg.topk,
            "ssr": cfg.ssr,
            "seed": cfg.seed,
            "index": cfg.index_kind,
            "index_recall_at_10": index.recall,
            "pool": str(ap.root),
            "counts": {"rows_in": table.num_rows + skipped.num_rows, "retrieved": report.items_out, "skipped": reasons},
            "usage": usage,
        },
    )
    return RetrieveReport(
        out=out,
        rows_in=table.num_rows + skipped.num_rows,
        retrieved=report.items_out,
        skipped=reasons,
        unique_concepts=len(set(table.column("concept").to_pylist())),
        shards_run=report.ran,
        shards_skipped=report.skipped,
        seconds=report.seconds,
        stats=usage if cfg.stats else None,
    )

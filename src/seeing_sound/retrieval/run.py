"""``seeing-sound retrieve``: concepts file -> Parquet of retrieved chunks, resumable.

Layout under ``OUT``::

    OUT/retrieval/shard-000000.parquet   results (RESULT_SCHEMA), sorted by image_id, concept_index
    OUT/retrieval/skipped.parquet        input rows not retrieved for, with reason
    OUT/retrieval/info.json              encoder, model, revision, topk, ssr, seed, counts, exclusions
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
from seeing_sound.engine import EngineConfig, Outcome, Run, atomic_write, command_run
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.retrieval.exclude import IdList, read_id_list
from seeing_sound.retrieval.inputs import normalize_concepts, read_concept_file
from seeing_sound.retrieval.stage import RetrieveStage, inputs_rel, open_config_index, plan_retrieve

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
    complete: bool = True  # False after a shard slice: info.json is written by the finishing run


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


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_inputs(out: Path, shards: list[pa.Table], shard_slice: tuple[int, int] | None) -> str:
    """Write each shard's concept rows to shared storage (a slice writes only its own); return their digest.

    The digest is over the Parquet bytes of every shard, computed in memory, so every slice of a
    run agrees on it without reading the files the others wrote.
    """
    digest = hashlib.sha256()
    for i, shard in enumerate(shards):
        data = _parquet_bytes(shard)
        digest.update(data)
        if shard_slice is None or i % shard_slice[1] == shard_slice[0]:
            with atomic_write(out / inputs_rel(i)) as fh:
                fh.write(data)
    return digest.hexdigest()[:16]


def retrieve(
    pool: str | Path,
    concepts: str | Path,
    out: str | Path,
    config: RetrieveConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> RetrieveReport:
    """Retrieve a pool chunk for every concept row in ``concepts`` into ``out`` (resumable).

    ``config`` holds the settings (defaults: :class:`RetrieveConfig`); keyword ``options`` (its
    field names, e.g. ``topk=10``) override single fields; ``exclude_chunks`` (a file of chunk ids)
    is read before anything starts and its chunks are never retrieved. ``engine_config``: engine (local or
    Ray), shard slice and retries; a slice retrieves for its shards only, and a last run without
    the slice writes ``skipped.parquet`` and ``info.json``.
    """
    cfg = resolve(RetrieveConfig, config, options)
    exclude = read_id_list(cfg.exclude_chunks, "exclude_chunks", "chunk")  # before any work: a missing file fails
    if exclude is not None:  # workers read the list again, from wherever they run
        cfg = cfg.replace(exclude_chunks=exclude.path)
    with command_run(
        "retrieve", out, inputs={"pool": pool}, engine_config=engine_config, workers=workers, overwrite=overwrite,
        progress=progress,
    ) as run:  # fmt: skip
        return _retrieve(run, pool, concepts, cfg, exclude)


def _retrieve(run: Run, pool, concepts, cfg: RetrieveConfig, exclude: IdList | None) -> RetrieveReport:
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool
    from seeing_sound.pool.layout import embeddings_root
    from seeing_sound.retrieval.index import load_embeddings
    from seeing_sound.retrieval.stats import usage_stats

    out, eng = run.out, run.engine
    ap = AudioPool.open(pool)
    table, skipped = normalize_concepts(read_concept_file(concepts))
    enc = load_encoder(cfg.encoder, cfg.model, device=cfg.device, fp16=cfg.fp16, batch_size=cfg.batch_size)
    index = None
    if eng.engine == "local":  # opened here once: fails early on missing embeddings, then lent to the stage
        index = open_config_index(ap.root, enc.info, cfg, exclude)
    elif not (embeddings_root(ap.root, enc.info.key) / "info.json").exists():
        load_embeddings(ap.root, enc.info)  # raises, naming the `pool embed` command to run
    shards = _shard_inputs(table, cfg.shard_rows)
    stage = RetrieveStage(
        config=cfg,
        out=str(out),
        pool_root=str(ap.root),
        identity=enc.info.to_dict(),
        inputs_digest=write_inputs(out, shards, eng.slice),
        exclude_chunks_sha256=None if exclude is None else exclude.fingerprint(),
    )
    if index is not None:
        stage.provide(encoder=enc, pool=ap, index=index)
    log.info(
        "retrieve: %d concept rows (%d unique) in %d shards",
        table.num_rows,
        len(set(table.column("concept").to_pylist())),
        len(shards),
    )
    tasks = plan_retrieve([s.num_rows for s in shards])
    report = run.stage(stage, tasks=tasks)
    reasons: dict[str, int] = {}
    for r in skipped.column("reason").to_pylist():
        reasons[r] = reasons.get(r, 0) + 1
    rows_in = table.num_rows + skipped.num_rows
    unique = len(set(table.column("concept").to_pylist()))
    if not run.finishing:  # the summary files are the finishing run's
        run.slice_done(f"{out / 'retrieval'} (info.json, skipped.parquet)", report)
        return RetrieveReport(out, rows_in, report.items_out, reasons, unique, report.ran, report.skipped,
                              report.seconds, complete=False)  # fmt: skip
    with atomic_write(out / "retrieval" / "skipped.parquet") as fh:
        pq.write_table(skipped, fh)
    indexed, recall, excluded = _index_facts(report, index, ap, enc, cfg, exclude)
    # Usage diversity is cheap (one int column) and always recorded in info.json.
    ids = [
        pq.read_table(out / p, columns=["chunk_id"]).column("chunk_id").to_numpy()
        for i in range(len(shards))
        for p in stage.outputs(i)
    ]
    usage = usage_stats(np.concatenate(ids) if ids else np.zeros(0, np.int64), pool_size=indexed)
    write_json_atomic(
        out / "retrieval" / "info.json",
        {
            "encoder_info": enc.info.to_dict(),
            "topk": cfg.topk,
            "ssr": cfg.ssr,
            "seed": cfg.seed,
            "index": cfg.index_kind,
            "index_recall_at_10": recall,
            "pool": str(ap.root),
            "counts": {"rows_in": rows_in, "retrieved": report.items_out, "skipped": reasons},
            "usage": usage,
            # the list's digest and size, and how many of its ids were pool chunks (taken out of the search)
            **({} if exclude is None else {"exclude_chunks": exclude.card() | {"matched": excluded}}),
        },
    )
    retrieved = RetrieveReport(
        out=out,
        rows_in=rows_in,
        retrieved=report.items_out,
        skipped=reasons,
        unique_concepts=unique,
        shards_run=report.ran,
        shards_skipped=report.skipped,
        seconds=report.seconds,
        stats=usage if cfg.stats else None,
    )
    failed = sum(reasons.values())
    outcome = Outcome(rows_in, report.items_out, failed, rows_in - report.items_out - failed, reasons)
    run.finish(outcome, noun="concept", report=retrieved)
    return retrieved


def _index_facts(report, index, ap, enc, cfg: RetrieveConfig, exclude) -> tuple[int, float | None, int]:
    """(indexed chunks, recall@10, excluded chunks) of the index the shards searched: the driver's or a shard's."""
    if index is not None:
        return len(index), index.recall, index.excluded
    for s in report.shards:
        if "indexed" in s.extra and ("excluded_chunks" in s.extra or exclude is None):
            return int(s.extra["indexed"]), s.extra.get("index_recall_at_10"), int(s.extra.get("excluded_chunks", 0))
    # no shard ran here and the markers are older than these facts: open it once
    index = open_config_index(ap.root, enc.info, cfg, exclude)
    return len(index), index.recall, index.excluded

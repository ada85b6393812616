"""The retrieve stage: one pool chunk per sounding concept (Algorithm 1 with real encoders).

:func:`retrieve_concepts` does it in memory for a table of concept rows; :class:`RetrieveStage`
runs it shard by shard under the engine (see :mod:`seeing_sound.retrieval.run`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.config import resolve
from seeing_sound.engine import ShardStats, ShardTask, Stage, shard_name
from seeing_sound.errors import SeeingSoundError
from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET
from seeing_sound.retrieval.config import DEFAULT_TOPK, RetrieveConfig
from seeing_sound.retrieval.exclude import IdList, read_id_list
from seeing_sound.retrieval.inputs import CONCEPT_SCHEMA, normalize_concepts, sort_rows
from seeing_sound.seeding import concept_seeds

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TOPK",
    "RESULT_SCHEMA",
    "RetrieveStage",
    "open_config_index",
    "open_index",
    "plan_retrieve",
    "retrieve_concepts",
]

_RESULT_FIELDS: list[tuple[str, pa.DataType]] = [
    ("image_id", pa.string()),
    ("concept_index", pa.int32()),
    ("model", pa.string()),
    ("concept", pa.string()),
    ("chunk_id", pa.int64()),
    ("source", pa.string()),
    ("offset_s", pa.float64()),
    ("cosine", pa.float64()),
    ("score", pa.float64()),
    ("threshold", pa.float64()),
    ("n_candidates", pa.int32()),
]
RESULT_SCHEMA = pa.schema(_RESULT_FIELDS)


def open_index(
    pool_root: str | Path,
    encoder_info,
    *,
    kind: str = "exact",
    engine: str = "auto",
    memory_budget: int | None = None,
    device: str | None = None,
    exclude=None,
):
    """The :class:`PoolIndex` of a pool for an encoder (loading 500K vectors takes seconds: keep it).

    ``exclude``: chunk ids never to retrieve (see :class:`PoolIndex`). Not cached:
    :class:`RetrieveStage` opens it once per worker in :meth:`RetrieveStage.setup`.
    """
    from seeing_sound.retrieval.index import PoolIndex, load_embeddings

    emb = load_embeddings(pool_root, encoder_info)
    return PoolIndex(
        emb, exclude=exclude, kind=kind, engine=engine, memory_budget=memory_budget or DEFAULT_BUDGET, device=device
    )


def open_config_index(pool_root: str | Path, encoder_info, cfg: RetrieveConfig, exclude: IdList | None = None):
    """:func:`open_index` with a config's index, engine, search device and chunk exclusion list.

    ``exclude``: the list already read from ``cfg.exclude_chunks`` (read here when None).
    """
    if exclude is None:
        exclude = read_id_list(cfg.exclude_chunks, "exclude_chunks", "chunk")
    return open_index(
        pool_root,
        encoder_info,
        kind=cfg.index_kind,
        engine=cfg.engine,
        device=cfg.search_device,
        exclude=None if exclude is None else exclude.ids,
    )


def retrieve_concepts(
    pool,
    concept_rows: pa.Table,
    config: RetrieveConfig | None = None,
    *,
    encoder=None,
    index=None,
    **options,
) -> pa.Table:
    """One retrieved chunk per (image_id, concept_index) row of ``concept_rows``.

    ``pool``: an :class:`AudioPool` or its path (embedded beforehand with ``pool embed``).
    ``concept_rows``: columns image_id, concept[, concept_index, model]; rows that cannot be
    retrieved for are left out (use :func:`normalize_concepts` to see why). ``config`` holds the
    settings (defaults: :class:`RetrieveConfig`); keyword ``options`` (its field names) override
    single fields. ``encoder``: a name (the config's ``encoder``) or a loaded encoder object,
    used as is; ``index``: an open :class:`PoolIndex` (else opened with ``config.exclude_chunks``
    applied). Identical concept strings are embedded and searched once; each occurrence then
    draws its own choice from ``concept_seed(seed, image_id, concept_index)``, so results never
    depend on batching. Returns a table in :data:`RESULT_SCHEMA`, sorted by (image_id, concept_index).
    """
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool

    if isinstance(encoder, str):
        options["encoder"], encoder = encoder, None
    cfg = resolve(RetrieveConfig, config, options)
    ap = pool if isinstance(pool, AudioPool) else AudioPool.open(pool)
    if concept_rows.schema != CONCEPT_SCHEMA:
        concept_rows, _ = normalize_concepts(concept_rows)
    if concept_rows.num_rows == 0:
        return RESULT_SCHEMA.empty_table()
    enc = encoder or load_encoder(cfg.encoder, cfg.model, device=cfg.device, fp16=cfg.fp16, batch_size=cfg.batch_size)
    if index is None:
        index = open_config_index(ap.root, enc.info, cfg)
    if cfg.topk > len(index) // 4:
        log.warning(
            "topk %d is over a quarter of the %d indexed chunks: the threshold mean(topk) admits weak "
            "matches; a smaller topk keeps retrieval specific",
            cfg.topk,
            len(index),
        )
    concepts = concept_rows.column("concept").to_pylist()
    uniq, which = np.unique(np.array(concepts, dtype=object), return_inverse=True)
    queries = enc.embed_text([str(u) for u in uniq])
    cands = index.candidate_sets(queries, cfg.topk, ssr=cfg.ssr)
    image_ids = concept_rows.column("image_id").to_pylist()
    cidx = concept_rows.column("concept_index").to_pylist()
    m = cands.draw(which.reshape(-1), concept_seeds(cfg.seed, image_ids, cidx))
    manifest = ap.manifest
    src = manifest.column("source").take(pa.array(m.index)) if len(m) else pa.array([], pa.string())
    off = manifest.column("offset_s").take(pa.array(m.index)) if len(m) else pa.array([], pa.float64())
    out = pa.table(
        {
            "image_id": concept_rows.column("image_id"),
            "concept_index": concept_rows.column("concept_index"),
            "model": concept_rows.column("model"),
            "concept": concept_rows.column("concept"),
            "chunk_id": pa.array(m.index, pa.int64()),
            "source": src.cast(pa.string()),
            "offset_s": off.cast(pa.float64()),
            "cosine": pa.array(m.cosine),
            "score": pa.array(m.score),
            "threshold": pa.array(m.threshold),
            "n_candidates": pa.array(m.n_candidates.astype(np.int32)),
        },
        schema=RESULT_SCHEMA,
    )
    return sort_rows(out)


def inputs_rel(index: int) -> str:
    return f"_stages/retrieve/inputs/{shard_name(index)}.parquet"


def plan_retrieve(counts: Sequence[int]) -> list[ShardTask]:
    """One task per input shard: the path of its concept rows (relative to the output root) and their count."""
    return [ShardTask(index=i, items=(inputs_rel(i),), count=int(n)) for i, n in enumerate(counts)]


@dataclass
class RetrieveStage(Stage):
    """Retrieve for each shard's concept rows: config only (O(1) in the number of rows).

    Each task names its input file on shared storage (written by :func:`~seeing_sound.retrieval.retrieve`
    before the stage runs); :meth:`setup` loads the query encoder, the pool and its index once per worker.
    ``counts`` (rows per shard) is only for callers that plan with ``stage.plan()``.
    """

    config: RetrieveConfig
    out: str
    pool_root: str
    identity: dict  # EncoderInfo.to_dict() of the query encoder
    inputs_digest: str
    counts: tuple | None = None
    exclude_chunks_sha256: str | None = None  # of config.exclude_chunks' ids (None: no list, or an empty one)
    name: str = field(init=False, default="retrieve")

    def plan(self) -> list[ShardTask]:
        if self.counts is None:
            return list(super().plan())
        return plan_retrieve(self.counts)

    def outputs(self, index: int) -> list[str]:
        return [f"retrieval/{shard_name(index)}.parquet"]

    def fingerprint(self) -> dict:
        # The encoder's identity stands for encoder + model (+ revision); fp16 query embeddings
        # differ from fp32 ones, so fp16 is part of the config's fingerprint: never mixed in one run.
        cfg = {k: v for k, v in self.config.fingerprint().items() if k not in ("encoder", "model")}
        # The exclusion list counts by its ids' digest, never its path (a field left out above).
        excluded = {} if self.exclude_chunks_sha256 is None else {"exclude_chunks": self.exclude_chunks_sha256}
        # Queries are text: how CLAP prepares *audio* (extra.audio_prep) never changes them.
        extra = {k: v for k, v in self.identity.get("extra", {}).items() if k != "audio_prep"}
        return {
            "encoder": {**self.identity, "extra": extra},
            "inputs": self.inputs_digest,
            "pool": str(Path(self.pool_root).resolve()),
            **cfg,
            **excluded,
        }

    def setup(self) -> None:
        from seeing_sound.encoders import load_encoder
        from seeing_sound.pool import AudioPool

        cfg = self.config
        self.encoder = load_encoder(cfg.encoder, cfg.model, device=cfg.device, fp16=cfg.fp16, batch_size=cfg.batch_size)
        self.pool = AudioPool.open(self.pool_root)
        exclude = read_id_list(cfg.exclude_chunks, "exclude_chunks", "chunk")
        if (None if exclude is None else exclude.fingerprint()) != self.exclude_chunks_sha256:
            raise SeeingSoundError(
                f"exclude_chunks={cfg.exclude_chunks} changed since this retrieve run started; "
                "rerun it to plan with the new list"
            )
        self.index = open_config_index(self.pool_root, self.encoder.info, cfg, exclude)

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        self.ensure_setup()
        rel = task.items[0] if task.items and isinstance(task.items[0], str) else inputs_rel(task.index)
        rows = pq.read_table(Path(self.out) / rel)
        result = retrieve_concepts(self.pool, rows, self.config, encoder=self.encoder, index=self.index)
        dest = scratch / self.outputs(task.index)[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result, dest)
        return ShardStats(
            shard=task.index,
            items_in=rows.num_rows,
            items_out=result.num_rows,
            extra={
                "unique_concepts": len(set(rows.column("concept").to_pylist())),
                "indexed": len(self.index),
                "index_recall_at_10": self.index.recall,
                "excluded_chunks": self.index.excluded,
            },
        )

"""The retrieve stage: one pool chunk per sounding concept (Algorithm 1 with real encoders).

:func:`retrieve_concepts` does it in memory for a table of concept rows; :class:`RetrieveStage`
runs it shard by shard under the engine (see :mod:`seeing_sound.retrieval.run`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.engine import ShardStats, ShardTask, Stage, shard_name
from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET, check_k
from seeing_sound.retrieval.inputs import CONCEPT_SCHEMA, normalize_concepts, sort_rows
from seeing_sound.seeding import concept_seeds

log = logging.getLogger(__name__)

# The paper does not give k. 100 keeps the candidate set inside one sound class of a
# 500K-chunk pool (AudioSet/FSD50K/BBC classes hold hundreds to thousands of chunks),
# while leaving room for SSR to spread usage over tens of near-equal matches; it costs
# no more search time than k = 10. See docs/readme/retrieval.md.
DEFAULT_TOPK = 100

RESULT_SCHEMA = pa.schema(
    [
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
)

_INDEXES: dict[tuple, object] = {}


def open_index(
    pool_root: str | Path, encoder_info, *, kind: str = "exact", engine: str = "auto", memory_budget: int | None = None
):
    """The :class:`PoolIndex` of a pool for an encoder, cached per process (loading 500K vectors takes seconds)."""
    from seeing_sound.retrieval.index import PoolIndex, load_embeddings

    key = (str(Path(pool_root).resolve()), encoder_info.key, encoder_info.revision, kind, engine, memory_budget)
    if key not in _INDEXES:
        _INDEXES.clear()  # one pool index per process at a time: they are large
        emb = load_embeddings(pool_root, encoder_info)
        _INDEXES[key] = PoolIndex(emb, kind=kind, engine=engine, memory_budget=memory_budget or DEFAULT_BUDGET)
    return _INDEXES[key]


def retrieve_concepts(
    pool,
    concept_rows: pa.Table,
    *,
    encoder="clap",
    model: str | None = None,
    topk: int = DEFAULT_TOPK,
    ssr: bool = True,
    seed: int = 0,
    index=None,
    index_kind: str = "exact",
    engine: str = "auto",
    device: str = "auto",
    fp16: bool = False,
    batch_size: int | None = None,
) -> pa.Table:
    """One retrieved chunk per (image_id, concept_index) row of ``concept_rows``.

    ``pool``: an :class:`AudioPool` or its path (embedded beforehand with ``pool embed``).
    ``concept_rows``: columns image_id, concept[, concept_index, model]; rows that cannot be
    retrieved for are left out (use :func:`normalize_concepts` to see why). ``encoder``: a
    name ('clap', 'text') or an encoder object. Identical concept strings are embedded and
    searched once; each occurrence then draws its own choice from
    ``concept_seed(seed, image_id, concept_index)``, so results never depend on batching.
    Returns a table in :data:`RESULT_SCHEMA`, sorted by (image_id, concept_index).
    """
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool

    check_k(topk, "topk")
    ap = pool if isinstance(pool, AudioPool) else AudioPool.open(pool)
    if concept_rows.schema != CONCEPT_SCHEMA:
        concept_rows, _ = normalize_concepts(concept_rows)
    if concept_rows.num_rows == 0:
        return RESULT_SCHEMA.empty_table()
    enc = (
        load_encoder(encoder, model, device=device, fp16=fp16, batch_size=batch_size)
        if isinstance(encoder, str)
        else encoder
    )
    if index is None:
        index = open_index(ap.root, enc.info, kind=index_kind, engine=engine)
    if int(topk) > len(index) // 4:
        log.warning(
            "topk %d is over a quarter of the %d indexed chunks: the threshold mean(topk) admits weak "
            "matches; a smaller --topk keeps retrieval specific",
            topk,
            len(index),
        )
    concepts = concept_rows.column("concept").to_pylist()
    uniq, which = np.unique(np.array(concepts, dtype=object), return_inverse=True)
    queries = enc.embed_text([str(u) for u in uniq])
    cands = index.candidate_sets(queries, int(topk), ssr=ssr)
    image_ids = concept_rows.column("image_id").to_pylist()
    cidx = concept_rows.column("concept_index").to_pylist()
    m = cands.draw(which.reshape(-1), concept_seeds(seed, image_ids, cidx))
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


@dataclass
class RetrieveStage(Stage):
    """Retrieve for each shard's concept rows (config only: picklable)."""

    out: str
    pool_root: str
    encoder: str
    model: str | None
    identity: dict  # EncoderInfo.to_dict() of the query encoder
    counts: tuple  # rows per shard
    inputs_digest: str
    topk: int
    ssr: bool
    seed: int
    index_kind: str = "exact"
    engine: str = "auto"
    device: str = "auto"
    fp16: bool = False
    batch_size: int | None = None
    name: str = field(init=False, default="retrieve")

    def plan(self) -> list[ShardTask]:
        return [ShardTask(index=i, items=range(n)) for i, n in enumerate(self.counts)]  # range: len() for progress

    def outputs(self, index: int) -> list[str]:
        return [f"retrieval/{shard_name(index)}.parquet"]

    def fingerprint(self) -> dict:
        return {
            "encoder": self.identity,
            "inputs": self.inputs_digest,
            "topk": self.topk,
            "ssr": self.ssr,
            "seed": self.seed,
            "index": self.index_kind,
            "pool": str(Path(self.pool_root).resolve()),
            "fp16": self.fp16,
        }  # fp16 query embeddings differ from fp32 ones: never mix them in one run

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from seeing_sound.encoders import load_encoder

        rows = pq.read_table(Path(self.out) / inputs_rel(task.index))
        enc = load_encoder(self.encoder, self.model, device=self.device, fp16=self.fp16, batch_size=self.batch_size)
        index = open_index(self.pool_root, enc.info, kind=self.index_kind, engine=self.engine)
        result = retrieve_concepts(
            self.pool_root, rows, encoder=enc, topk=self.topk, ssr=self.ssr, seed=self.seed, index=index
        )
        dest = scratch / self.outputs(task.index)[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result, dest)
        return ShardStats(
            shard=task.index,
            items_in=rows.num_rows,
            items_out=result.num_rows,
            extra={"unique_concepts": len(set(rows.column("concept").to_pylist()))},
        )

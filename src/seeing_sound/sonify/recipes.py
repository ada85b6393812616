"""Join retrieval results, concepts and the pool manifest into per-pair mixing recipes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seeing_sound.audio.mix import target_lufs
from seeing_sound.dataset.schema import COMPONENT
from seeing_sound.seeding import concept_seeds

#: one row per component; pair-level fields repeat on each of the pair's rows
_PAIR_FIELDS: list[tuple[str, pa.DataType]] = [
    ("pair_id", pa.string()),
    ("image_id", pa.string()),
    ("image_path", pa.string()),
    ("image_sha256", pa.string()),
    ("scene", pa.string()),
]
# One row per component: the pair's columns, then a dataset component's fields (its gain comes at mixing).
_RECIPE_FIELDS = _PAIR_FIELDS + [(f.name, f.type) for f in COMPONENT if f.name != "gain_db"]
RECIPE_SCHEMA = pa.schema(_RECIPE_FIELDS)
#: recipes of CLIP-checked concepts (docs/grounding.md) carry each concept's grounding too
GROUNDED_RECIPE_SCHEMA = RECIPE_SCHEMA.append(pa.field("grounding", pa.float32()))


def read_retrieval(out: Path) -> pa.Table | None:
    """The retrieve stage's result shards as one table, or None when there are none."""
    files = sorted((Path(out) / "retrieval").glob("shard-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def build_recipes(
    retrieved: pa.Table | None,
    concepts: pa.Table,
    images: pa.Table,
    manifest: pa.Table,
    *,
    seed: int,
    lufs_range: tuple[float, float],
) -> pa.Table:
    """One row per mixture component, sorted by (pair_id, concept_index); columnar throughout.

    A pair is an image and one VLM's concepts (``scene``); with a single VLM there is one
    pair per image and ``pair_id`` is the image id, else ``<image_id>::<model>``. Targets
    γ are drawn here from (seed, image_id, concept_index) only.
    """
    if retrieved is None or retrieved.num_rows == 0:
        return RECIPE_SCHEMA.empty_table()
    r = retrieved
    models = pc.unique(r.column("model").drop_null())
    model_col = pc.fill_null(r.column("model"), "") if len(models) > 1 else None
    pair_id = (
        pc.binary_join_element_wise(r.column("image_id"), model_col, "::")
        if model_col is not None
        else r.column("image_id")
    )
    ids = r.column("chunk_id").to_numpy().astype(np.int64)
    seeds = concept_seeds(seed, r.column("image_id").to_pylist(), r.column("concept_index").to_pylist())
    # Columns mix Arrays and ChunkedArrays (pa.table takes both; the stubs only list Arrays).
    columns: dict[str, Any] = {
        "pair_id": pair_id,
        "image_id": r.column("image_id"),
        "scene": r.column("model"),
        "concept_index": r.column("concept_index").cast(pa.int32()),
        "model": r.column("model"),
        "concept": r.column("concept"),
        "chunk_id": pa.array(ids),
        "chunk_source": r.column("source"),
        "chunk_offset_s": r.column("offset_s"),
        "chunk_description": manifest.column("description").take(pa.array(ids)),
        "cosine": r.column("cosine").cast(pa.float32()),
        "score": r.column("score").cast(pa.float32()),
        "threshold": r.column("threshold").cast(pa.float32()),
        "n_candidates": r.column("n_candidates").cast(pa.int32()),
        "chunk_lufs": pa.array(manifest.column("loudness_lufs").to_numpy()[ids]),
        "target_lufs": pa.array(target_lufs(seeds, lufs_range)),
    }
    table = pa.table(columns)
    # the concepts' CLIP grounding joins the recipes only when it was measured, so a dataset made without
    # --grounding has the recipes (and their digest, which a resumed mix checks) it always had
    grounded = "grounding" in concepts.column_names and concepts.column("grounding").null_count < concepts.num_rows
    extra = ["grounding"] if grounded else []
    table = _left_join(table, concepts, ["image_id", "concept_index"], ["object", "sound", *extra])
    image_cols = (
        images.select([c for c in ("image_id", "path", "sha256") if c in images.column_names])
        if images is not None
        else pa.table({"image_id": pa.array([], pa.string())})
    )
    image_cols = image_cols.rename_columns(
        [{"path": "image_path", "sha256": "image_sha256"}.get(c, c) for c in image_cols.column_names]
    )
    table = _left_join(table, image_cols, ["image_id"], ["image_path", "image_sha256"])
    table = table.set_column(
        table.column_names.index("image_path"),
        "image_path",
        pc.coalesce(table.column("image_path"), table.column("image_id")),
    )
    schema = GROUNDED_RECIPE_SCHEMA if grounded else RECIPE_SCHEMA
    table = table.select(schema.names).cast(schema)
    return table.take(pc.sort_indices(table, sort_keys=[("pair_id", "ascending"), ("concept_index", "ascending")]))


def _left_join(table: pa.Table, other: pa.Table | None, keys: list[str], columns: list[str]) -> pa.Table:
    """``table`` with ``columns`` looked up in ``other`` by ``keys`` (null where absent or missing)."""
    present = [c for c in columns if other is not None and c in other.column_names]
    if present and other is not None:
        right = other.select(keys + present)
        right = right.cast(
            pa.schema(
                [
                    pa.field(k, table.schema.field(k).type) if k in keys else right.schema.field(k)
                    for k in right.column_names
                ]
            )
        )
        table = table.join(right, keys=keys, join_type="left outer")
    for c in columns:
        if c not in table.column_names:
            kind = GROUNDED_RECIPE_SCHEMA.field(c).type if c in GROUNDED_RECIPE_SCHEMA.names else pa.string()
            table = table.append_column(c, pa.nulls(table.num_rows, kind))
    return table


def split_pairs(recipes: pa.Table, pairs_per_shard: int) -> list[pa.Table]:
    """Consecutive whole pairs, ``pairs_per_shard`` per shard (stable numbering)."""
    pair_ids = recipes.column("pair_id").to_pylist()
    shards, start, count = [], 0, 0
    for i in range(1, len(pair_ids) + 1):
        if i == len(pair_ids) or pair_ids[i] != pair_ids[i - 1]:
            count += 1
            if count == pairs_per_shard or i == len(pair_ids):
                shards.append(recipes.slice(start, i - start))
                start, count = i, 0
    return shards


def table_digest(table: pa.Table) -> str:
    """sha256 of the table's Arrow IPC bytes (chunks combined first, so equal tables hash equal)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue()).hexdigest()

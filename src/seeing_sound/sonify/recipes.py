"""Join retrieval results, concepts and the pool manifest into per-pair mixing recipes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seeing_sound.audio.mix import target_lufs
from seeing_sound.retrieval.seeds import concept_seeds

#: one row per component; pair-level fields repeat on each of the pair's rows
RECIPE_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("image_id", pa.string()), ("image_path", pa.string()), ("image_sha256", pa.string()),
    ("scene", pa.string()), ("concept_index", pa.int32()), ("model", pa.string()), ("object", pa.string()),
    ("sound", pa.string()), ("concept", pa.string()), ("chunk_id", pa.int64()), ("chunk_source", pa.string()),
    ("chunk_offset_s", pa.float64()), ("chunk_description", pa.string()), ("cosine", pa.float32()),
    ("score", pa.float32()), ("threshold", pa.float32()), ("n_candidates", pa.int32()),
    ("chunk_lufs", pa.float64()), ("target_lufs", pa.float64()),
])


def read_retrieval(out: Path) -> pa.Table:
    files = sorted((Path(out) / "retrieval").glob("shard-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def build_recipes(retrieved: pa.Table, concepts: pa.Table, images: pa.Table, manifest: pa.Table, *,
                  seed: int, lufs_range: tuple[float, float]) -> pa.Table:
    """One row per mixture component, sorted by (pair_id, concept_index).

    A pair is an image and one VLM's concepts (``scene``); with a single VLM there is one
    pair per image and ``pair_id`` is the image id, else ``<image_id>::<model>``. Targets
    γ are drawn here from (seed, image_id, concept_index) only.
    """
    if retrieved is None or retrieved.num_rows == 0:
        return RECIPE_SCHEMA.empty_table()
    r = retrieved.to_pydict()
    n = len(r["image_id"])
    ckey = {}
    if concepts is not None:
        cols = {name: (concepts.column(name).to_pylist() if name in concepts.column_names else [None] * concepts.num_rows)
                for name in ("image_id", "concept_index", "object", "sound")}
        ckey = {(i, int(c)): (o, s) for i, c, o, s in zip(cols["image_id"], cols["concept_index"], cols["object"], cols["sound"])}
    img = {}
    if images is not None:
        for row in images.select([c for c in ("image_id", "path", "sha256") if c in images.column_names]).to_pylist():
            img[row["image_id"]] = (row.get("path") or row["image_id"], row.get("sha256"))
    models = sorted({m for m in r["model"] if m is not None}) or [None]
    multi = len(models) > 1
    ids = np.asarray(r["chunk_id"], dtype=np.int64)
    lufs = manifest.column("loudness_lufs").to_numpy()[ids]
    descr = manifest.column("description").take(pa.array(ids)).to_pylist()
    seeds = concept_seeds(seed, r["image_id"], r["concept_index"])
    targets = target_lufs(seeds, lufs_range)
    rows = []
    for k in range(n):
        image_id, model = r["image_id"][k], r["model"][k]
        path, sha = img.get(image_id, (image_id, None))
        obj, snd = ckey.get((image_id, int(r["concept_index"][k])), (None, None))
        rows.append({
            "pair_id": f"{image_id}::{model}" if multi else image_id, "image_id": image_id, "image_path": path,
            "image_sha256": sha, "scene": model, "concept_index": r["concept_index"][k], "model": model,
            "object": obj, "sound": snd, "concept": r["concept"][k], "chunk_id": int(ids[k]),
            "chunk_source": r["source"][k], "chunk_offset_s": r["offset_s"][k], "chunk_description": descr[k],
            "cosine": r["cosine"][k], "score": r["score"][k], "threshold": r["threshold"][k],
            "n_candidates": r["n_candidates"][k], "chunk_lufs": float(lufs[k]), "target_lufs": float(targets[k]),
        })
    table = pa.Table.from_pylist(rows, schema=RECIPE_SCHEMA)
    return table.take(pc.sort_indices(table, sort_keys=[("pair_id", "ascending"), ("concept_index", "ascending")]))


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
    h = hashlib.sha256()
    for batch in table.to_batches():
        for col in batch.columns:
            h.update(repr(col.to_pylist()).encode())
    return h.hexdigest()

"""Read concept rows for ``retrieve``: a ``concepts`` output folder, or a JSONL/CSV/Parquet file.

Every input becomes one table with columns ``image_id`` (str), ``concept_index`` (int32),
``concept`` (str), ``model`` (str, nullable). Rows that cannot be retrieved for are set
aside with a reason (``missing_image_id``, ``empty_concept``, ``duplicate_concept_index``),
never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seeing_sound.tabular import read_jsonl

# typed lists: a bare literal mixing pa.string() and pa.int32() is inferred as list[object]
_CONCEPT_FIELDS: list[tuple[str, pa.DataType]] = [
    ("image_id", pa.string()),
    ("concept_index", pa.int32()),
    ("concept", pa.string()),
    ("model", pa.string()),
]
_SKIP_FIELDS: list[tuple[str, pa.DataType]] = [
    ("image_id", pa.string()),
    ("concept_index", pa.int32()),
    ("reason", pa.string()),
]
CONCEPT_SCHEMA = pa.schema(_CONCEPT_FIELDS)
SKIP_SCHEMA = pa.schema(_SKIP_FIELDS)


def read_concept_file(path: str | Path) -> pa.Table:
    """The raw rows of a concepts folder or file, as a pyarrow Table (columns as found)."""
    path = Path(path)
    if path.is_dir():
        shards = sorted((path / "concepts").glob("shard-*.parquet")) or sorted(path.glob("shard-*.parquet"))
        if not shards:
            raise FileNotFoundError(f"{path} holds no concepts/shard-*.parquet (output of `seeing-sound concepts`)")
        return pa.concat_tables([pq.read_table(s) for s in shards], promote_options="default")
    if not path.exists():
        raise FileNotFoundError(f"concepts file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path)
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types={"image_id": pa.string(), "concept": pa.string(), "model": pa.string()},
                strings_can_be_null=True,
            ),
        )
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = read_jsonl(path)
        if any(not isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: every line must be a JSON object with image_id and concept")
        keys = ["image_id", "concept", "concept_index", "model"]
        return pa.table({k: [r.get(k) for r in rows] for k in keys if any(k in r for r in rows)})
    raise ValueError(f"concepts must be a folder or a .jsonl/.csv/.parquet file, got {path}")


def normalize_concepts(raw: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Raw rows -> (concept rows in CONCEPT_SCHEMA, skipped rows in SKIP_SCHEMA).

    ``concept_index`` defaults to the row's position among its image's rows (input order).
    """
    for col in ("image_id", "concept"):
        if col not in raw.column_names:
            raise ValueError(f"concept rows need columns image_id and concept; found {', '.join(raw.column_names)}")
    n = raw.num_rows
    image = [None if v is None else str(v) for v in raw.column("image_id").to_pylist()]
    concept = [None if v is None else str(v).strip() for v in raw.column("concept").to_pylist()]
    model = (
        [None if v is None else str(v) for v in raw.column("model").to_pylist()]
        if "model" in raw.column_names
        else [None] * n
    )
    if "concept_index" in raw.column_names and raw.column("concept_index").null_count < n:
        given = raw.column("concept_index").to_pylist()
    else:
        given = [None] * n
    # rows without an image id are numbered too (as one group); they are set aside below
    seen_per_image: dict[str | None, int] = {}
    index = []
    for img, g in zip(image, given, strict=True):
        pos = seen_per_image.get(img, 0)
        seen_per_image[img] = pos + 1
        index.append(int(g) if g is not None else pos)
    reasons: list[str | None] = []
    used: set = set()
    for img, ci, text in zip(image, index, concept, strict=True):
        if img is None or img == "":
            reasons.append("missing_image_id")
        elif (img, ci) in used:
            reasons.append("duplicate_concept_index")
        elif not text:
            reasons.append("empty_concept")
        else:
            reasons.append(None)
        used.add((img, ci))
    ok = np.array([r is None for r in reasons], dtype=bool)
    table = pa.table(
        {
            "image_id": image,
            "concept_index": pa.array(index, pa.int32()),
            "concept": concept,
            "model": pa.array(model, pa.string()),
        },
        schema=CONCEPT_SCHEMA,
    )
    skipped = pa.table(
        {
            "image_id": pa.array(image, pa.string()),
            "concept_index": pa.array(index, pa.int32()),
            "reason": pa.array(reasons, pa.string()),
        },
        schema=SKIP_SCHEMA,
    )
    return table.filter(pa.array(ok)), skipped.filter(pa.array(~ok))


def sort_rows(table: pa.Table) -> pa.Table:
    """Rows by (image_id, concept_index): a stable, readable output order."""
    return table.take(pc.sort_indices(table, sort_keys=[("image_id", "ascending"), ("concept_index", "ascending")]))

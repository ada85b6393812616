"""Read concept rows for ``retrieve``: a ``concepts`` output folder, or a JSONL/CSV/Parquet file.

A file holds one of two forms (rows of both may be mixed):

- one row per concept: ``image_id``, ``concept`` [, ``concept_index``] [, ``model``];
- one row per image, as a sidecar (the bundled ``demo_data/concepts.jsonl``): a key column
  (``image_id``, ``path``, ``file``, ``filename`` or ``image``: the row's first non-empty one) and
  ``concepts``, a list (items in list order: ``concept_index`` 0, 1, ...; an ``{"object", "sound"}``
  item is ``"object: sound"``) or a VLM's answer as text (parsed as the concepts stage parses one,
  :func:`seeing_sound.concepts.parse.parse_concepts`) [, ``model``]; other columns (``caption``) are
  ignored.

Every input becomes one table with columns ``image_id`` (str), ``concept_index`` (int32),
``concept`` (str), ``model`` (str, nullable). Rows that cannot be retrieved for are set
aside with a reason (``missing_image_id``, ``empty_concept``, ``duplicate_concept_index``,
``no_concepts: <parser's reason>`` for an answer with no concept in it), never dropped silently.
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

#: key columns of a row per image, in the order they are tried (the sidecar back end's)
KEY_COLUMNS = ("image_id", "path", "file", "filename", "image")
#: the column of an unparseable answer's reason, between exploding and normalizing
_PARSE_ERROR = "_parse_error"
#: an answer's concepts are all kept (the concepts stage caps them with ``--max-concepts``)
_NO_CAP = 1_000_000


def _forms_error(found, where: str | Path | None = None) -> ValueError:
    """Which columns were found, and the two forms that are read (one line)."""
    names = ", ".join(str(c) for c in found) or "none"
    return ValueError(
        f"{f'{where}: ' if where else ''}concept rows need columns image_id and concept (one row per concept), "
        f"or concepts (a list or a VLM answer) and one of {', '.join(KEY_COLUMNS)} (one row per image); "
        f"found columns: {names}"
    )


def _list_item(value) -> str | None:
    if isinstance(value, dict):  # {"object": ..., "sound": ...}, as a sidecar's list may hold
        obj, sound = value.get("object"), value.get("sound") or value.get("concept")
        if isinstance(sound, str) and sound.strip():
            return f"{obj.strip()}: {sound.strip()}" if isinstance(obj, str) and obj.strip() else sound.strip()
        return None
    return None if value is None else str(value)


def explode_rows(rows: list[dict]) -> list[dict]:
    """Rows of either form -> one row per concept (``image_id``, ``concept``, ``concept_index``, ``model``).

    A row with ``concepts`` and no ``concept`` is one image's: its key is the first non-empty of
    :data:`KEY_COLUMNS`; a list gives one row per item, numbered in list order; text is parsed as a
    VLM answer (an answer without a concept gives one row with the parser's reason, set aside by
    :func:`normalize_concepts`). Other rows pass through.
    """
    from seeing_sound.concepts.parse import parse_concepts

    out: list[dict] = []
    for row in rows:
        if "concepts" not in row or "concept" in row:
            out.append(row)
            continue
        key = next((row[k] for k in KEY_COLUMNS if row.get(k) not in (None, "")), None)
        image_id = None if key is None else str(key).strip()
        base = {"image_id": image_id, "model": row.get("model")}
        value = row["concepts"]
        if isinstance(value, (list, tuple)):
            items = [_list_item(v) for v in value]
            out += [{**base, "concept": item, "concept_index": i} for i, item in enumerate(items)]
            continue
        parsed = parse_concepts(None if value is None else str(value), max_items=_NO_CAP)
        if parsed.ok:
            out += [{**base, "concept": c.text, "concept_index": i} for i, c in enumerate(parsed.concepts)]
        else:
            out.append({**base, "concept": None, "concept_index": 0, _PARSE_ERROR: parsed.error})
    return out


def _table_of(rows: list[dict]) -> pa.Table:
    keys = ["image_id", "concept", "concept_index", "model", _PARSE_ERROR]
    return pa.table({k: [r.get(k) for r in rows] for k in keys if any(k in r for r in rows)})


def _explode_table(table: pa.Table, where: str | Path | None = None) -> pa.Table:
    """A table with a ``concepts`` column in the row-per-concept form; others as they are."""
    columns = table.column_names
    if "concepts" not in columns:
        return table
    if not any(k in columns for k in KEY_COLUMNS):
        raise _forms_error(columns, where)
    rows = table.to_pylist()
    if "concept" in columns:  # both forms in one table: a row is an image's where it has concepts, no concept
        rows = [_without_concept(r) if r["concept"] is None and r["concepts"] is not None else r for r in rows]
    return _table_of(explode_rows(rows))


def _without_concept(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "concept"}


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
    if suffix in (".parquet", ".csv"):
        if suffix == ".parquet":
            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            text = {k: pa.string() for k in ("image_id", "concept", "concepts", "model", *KEY_COLUMNS)}
            table = pcsv.read_csv(
                path, convert_options=pcsv.ConvertOptions(column_types=text, strings_can_be_null=True)
            )
        table = _explode_table(table, path)
        _check_columns(table.column_names, path)
        return table
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = read_jsonl(path)
        if any(not isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: every line must be a JSON object (a concept row, or an image's concepts)")
        found = list(dict.fromkeys(k for r in rows for k in r))
        exploded = explode_rows(rows)
        if rows:
            _check_columns({k for r in exploded for k in r}, path, found)
        return _table_of(exploded)
    raise ValueError(f"concepts must be a folder or a .jsonl/.csv/.parquet file, got {path}")


def _check_columns(columns, where: str | Path | None = None, found=None) -> None:
    """Raise :func:`_forms_error` (naming ``found``, default ``columns``) unless image_id and concept are there."""
    if not {"image_id", "concept"} <= set(columns):
        raise _forms_error(columns if found is None else found, where)


def normalize_concepts(raw: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Raw rows -> (concept rows in CONCEPT_SCHEMA, skipped rows in SKIP_SCHEMA).

    ``concept_index`` defaults to the row's position among its image's rows (input order). Rows of one
    image with a ``concepts`` list or answer are exploded first (:func:`explode_rows`).
    """
    raw = _explode_table(raw)
    _check_columns(raw.column_names)
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
    errors = raw.column(_PARSE_ERROR).to_pylist() if _PARSE_ERROR in raw.column_names else [None] * n
    reasons: list[str | None] = []
    used: set = set()
    for img, ci, text, error in zip(image, index, concept, errors, strict=True):
        if img is None or img == "":
            reasons.append("missing_image_id")
        elif error is not None:
            reasons.append(f"no_concepts: {error}")
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

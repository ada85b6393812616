"""Precomputed concepts and/or captions from a JSONL, JSON, CSV/TSV or Parquet file.

Rows are matched to images by a key column (``image_id``, ``path``, ``file``, ``filename`` or
``image``, or the one named by ``sidecar_key``) equal to the image id, its path relative to the
root, or that path without its extension. Concepts come from a ``concepts`` column (a list, or
raw model text that goes through the normal parser), or one concept per row from ``concept`` or
``object`` + ``sound``. An optional ``caption`` column feeds the silent-image filter; an
optional ``model`` column names the model that produced each row (several models per image are
fine: their concepts are numbered in file order).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec
from seeing_sound.errors import SeeingSoundError
from seeing_sound.tabular import read_jsonl

log = logging.getLogger(__name__)

KEY_COLUMNS = ("image_id", "path", "file", "filename", "image")
CONCEPT_COLUMNS = ("concepts", "concept", "sound")


def read_sidecar_rows(path: str | Path) -> list[dict]:
    """All rows of a sidecar file as dicts; SeeingSoundError names the file and line when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sidecar file not found: {path}")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" or text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except ValueError as exc:
                raise SeeingSoundError(f"sidecar {path}: not valid JSON ({exc})") from exc
            if not isinstance(rows, list):
                raise SeeingSoundError(f"sidecar {path}: a .json sidecar must hold a list of objects")
        else:
            rows = read_jsonl(path)
    elif suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        raise ValueError(f"sidecar must be .jsonl, .json, .csv, .tsv or .parquet, got {path.name!r}")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise SeeingSoundError(f"sidecar {path}: row {bad + 1} is not an object")
    return rows


def _norm_key(value) -> str:
    key = str(value).strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


class SidecarBackend:
    def __init__(self, spec: VLMSpec):
        self.spec = spec
        rows = read_sidecar_rows(spec.model)
        columns = {k for r in rows for k in r}
        keys = (spec.sidecar_key,) if spec.sidecar_key else tuple(k for k in KEY_COLUMNS if k in columns)
        if not keys or keys[0] not in columns:
            wanted = spec.sidecar_key or " / ".join(KEY_COLUMNS)
            raise SeeingSoundError(f"sidecar {spec.model}: no key column ({wanted}); columns are {sorted(columns)}")
        self.provides_captions = "caption" in columns
        self.provides_concepts = any(c in columns for c in CONCEPT_COLUMNS)
        if not (self.provides_captions or self.provides_concepts):
            raise SeeingSoundError(f"sidecar {spec.model}: needs a concepts/concept/object+sound or caption column")
        self.rows = rows
        self.index: dict[str, list[int]] = {}
        unkeyed = 0
        for i, row in enumerate(rows):
            # Each row is keyed by its first non-empty key column, so files may mix ids and paths.
            key = next((row[k] for k in keys if row.get(k) not in (None, "")), None)
            if key is None:
                unkeyed += 1
                continue
            self.index.setdefault(_norm_key(key), []).append(i)
        if unkeyed:
            log.warning("sidecar %s: %d rows have no key (%s) and are ignored", Path(spec.model).name, unkeyed, keys)
        log.info(
            "sidecar %s: %d rows, %d keys (%s)", Path(spec.model).name, len(rows), len(self.index), ", ".join(keys)
        )

    def _rows_for(self, request: VLMRequest) -> list[dict]:
        rel = PurePosixPath(request.path)
        for candidate in (request.image_id, request.path, str(rel.with_suffix(""))):
            hit = self.index.get(_norm_key(candidate))
            if hit:
                return [self.rows[i] for i in hit]
        return []

    def generate(self, requests: Sequence[VLMRequest], task: str) -> list[list[Generation]]:
        return [self._captions(r) if task == "caption" else self._concepts(r) for r in requests]

    def _missing(self, what: str) -> list[Generation]:
        return [
            Generation(self.spec.model_id, error="sidecar-missing", detail=f"no {what} for this image in the sidecar")
        ]

    def _captions(self, request: VLMRequest) -> list[Generation]:
        for row in self._rows_for(request):
            caption = row.get("caption")
            if isinstance(caption, str) and caption.strip():
                return [Generation(str(row.get("model") or self.spec.model_id), text=caption.strip())]
        return self._missing("caption")

    def _concepts(self, request: VLMRequest) -> list[Generation]:
        groups: dict[str, dict] = {}  # model -> {"texts": [...], "items": [...]}, in file order
        for row in self._rows_for(request):
            model = str(row.get("model") or self.spec.model_id)
            group = groups.setdefault(model, {"texts": [], "items": []})
            value = row.get("concepts")
            if isinstance(value, str) and value.strip():
                group["texts"].append(value)
            elif isinstance(value, (list, tuple)):
                group["items"].extend(_as_item(v) for v in value if _as_item(v))
            if isinstance(row.get("concept"), str) and row["concept"].strip():
                group["items"].append(row["concept"])
            elif isinstance(row.get("sound"), str) and row["sound"].strip():
                obj = row.get("object")
                group["items"].append(
                    f"{obj}: {row['sound']}" if isinstance(obj, str) and obj.strip() else row["sound"]
                )
        out = []
        for model, group in groups.items():
            if group["items"]:
                raw = json.dumps(group["items"], ensure_ascii=False)
                out.append(Generation(model, text=raw, items=tuple(group["items"])))
            for text in group["texts"]:
                out.append(Generation(model, text=text))
        return out or self._missing("concepts")


def _as_item(value) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        obj, sound = value.get("object"), value.get("sound") or value.get("concept")
        if isinstance(sound, str) and sound.strip():
            return f"{obj}: {sound}" if isinstance(obj, str) and obj.strip() else sound
    return ""

"""The library function behind ``seeing-sound score``: a quality score for every pair of a dataset.

``score_pairs(DATASET, OUT)`` runs :class:`~seeing_sound.scoring.stage.PairScoreStage` over the
dataset's metadata shards (resumable, sliceable, locked like every command), then merges the parts
into ``OUT/scores.parquet`` and writes ``OUT/report.json``, ``OUT/report.md`` and
``OUT/histogram.svg``. The file format is :mod:`seeing_sound.model.training.pair_scores`'s.

The score is a property of the pair, not of a dataset: the dataset is never rewritten, and models
are a *key* (``w2c-<sha>-clip-<sha>``, from the weights' digests). Scoring the same OUT again with
other models adds their parts beside the first ones; ``pair_score`` is then the newest run's, and
each key keeps its own ``ais_<key>`` column, which ``train --score-column`` can choose.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.config import resolve
from seeing_sound.engine import EngineConfig, Run, command_run
from seeing_sound.engine.shards import atomic_write, write_json_atomic
from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.pair_scores import (
    CARD_VERSION,
    DEFAULT_COLUMN,
    FORMAT,
    IDENTITY_COLUMNS,
    KEY_PREFIX,
    META_KEY,
    SCORES_FILE,
    dataset_pairs,
    pairs_sha256,
)
from seeing_sound.scoring.config import ScoreConfig
from seeing_sound.scoring.report import histogram, score_stats, write_markdown
from seeing_sound.scoring.stage import PART_SCHEMA, PairScoreStage, load_encoders, part_rel

log = logging.getLogger(__name__)

#: written beside a key's parts: the models that key stands for
MODELS_FILE = "models.json"


@dataclasses.dataclass
class ScoreReport:
    """What a ``score`` run wrote (``complete`` False for a shard slice: nothing merged yet)."""

    out: Path
    score_key: str
    models: dict
    pairs: int = 0
    scored: int = 0
    failed: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    columns: list[str] = dataclasses.field(default_factory=list)
    complete: bool = True

    def summary(self) -> str:
        if not self.complete:
            return f"score: slice done ({self.out}); run once without the shard slice to merge the scores"
        s = self.stats
        spread = (
            f"; pair_score mean {s['mean']:.4f}, median {s['quantiles']['0.5']:.4f}, "
            f"min {s['min']:.4f}, max {s['max']:.4f}"
            if s.get("n")
            else ""
        )
        errors = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "none"
        return (
            f"{self.scored} of {self.pairs} pairs scored ({self.failed} failed: {errors}){spread} "
            f"-> {self.out / SCORES_FILE} (score key {self.score_key})"
        )


def score_key(enc) -> str:
    """``w2c-<8 hex>-clip-<8 hex>`` from the weights' digests: equal models, equal key, wherever they live."""
    from seeing_sound.encoders.common import embedding_key

    w2c = str(enc.wav2clip.info["revision"]).split(":")[-1][:8]
    clip_rev = str(enc.clip.info["revision"])
    clip = clip_rev.split(":")[-1][:8] if clip_rev.startswith("sha256:") else embedding_key("clip", enc.clip.model_id)
    return f"w2c-{w2c}-clip-{clip}"


def score_pairs(
    dataset: str | Path,
    out: str | Path,
    config: ScoreConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> ScoreReport:
    """Score every pair of ``dataset`` (AIS of its mixture and image) into ``out``; returns the report.

    ``config`` holds the models and settings (:class:`ScoreConfig`); keyword ``options`` (its field
    names) override single fields. ``engine_config``: engine, shard slice and retries; a slice
    scores its shards only (its report is not ``complete``) and a last run without it merges them.
    ``out`` may be ``DATASET/scores``, where ``train --min-pair-score`` looks by default.
    """
    from seeing_sound.dataset import PairsDataset

    cfg = resolve(ScoreConfig, config, options)
    with command_run(
        "score", out, inputs={"dataset": dataset},
        engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress,
    ) as run:  # fmt: skip
        ds = PairsDataset.open(dataset, images_root=cfg.images_root)  # a non-dataset fails before any model loads
        enc = load_encoders(cfg)  # a missing checkpoint or mismatched models stop the run here
        return _score(run, ds, enc, cfg)


def _score(run: Run, ds, enc, cfg: ScoreConfig) -> ScoreReport:
    out = run.out
    key = score_key(enc)
    models = enc.identities()
    stage = PairScoreStage(str(ds.root.resolve()), key, models, cfg)
    stage.provide(ds=ds, enc=enc)  # loaded above: a worker of this process does not load them again
    report = run.stage(stage)
    result = ScoreReport(out=out, score_key=key, models=models, pairs=len(ds))
    if not (run.finishing and report.complete):
        result.complete = False
        run.slice_done(f"{out / SCORES_FILE}", report)
        return result
    write_json_atomic(out / "parts" / key / MODELS_FILE, models)
    table = merge(out, ds, key, models)
    with atomic_write(out / SCORES_FILE) as fh:
        pq.write_table(table, fh)
    scores = table.column(DEFAULT_COLUMN).to_numpy(zero_copy_only=False)
    finite = np.asarray([v for v in scores if v is not None and math.isfinite(v)], dtype=np.float64)
    result.scored = int(finite.size)
    result.failed = len(ds) - result.scored
    reasons: dict[str, int] = {}
    for reason in table.column("error").to_pylist():  # the merged rows, every shard's (this run's or not)
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    result.errors = dict(sorted(reasons.items()))
    result.stats = score_stats(finite)
    result.columns = table.column_names
    hist = histogram(finite, cfg.bins)
    card = _card(table)
    summary = {
        "command": "score",
        "dataset": card["dataset_root"],
        "pairs": len(ds),
        "scored": result.scored,
        "failed": result.failed,
        "errors": result.errors,
        "score_key": key,
        "models": models,
        "keys": card["keys"],
        "columns": [c for c in table.column_names if c == DEFAULT_COLUMN or c.startswith(KEY_PREFIX)],
        "pair_score": result.stats,
        "histogram": hist,
        "retrieval": _retrieval_relation(table),
        "config": cfg.to_dict(),
    }
    write_json_atomic(out / "report.json", summary)
    write_markdown(out, summary)
    run.finish(report.outcome, noun="pair", hint="check that the pairs' files are readable", report=result)
    return result


def _key_parts(out: Path, key: str, n_shards: int) -> list[Path] | None:
    parts = [out / part_rel(key, k) for k in range(n_shards)]
    return parts if all(p.is_file() for p in parts) else None


def _identities(table: pa.Table) -> list[tuple]:
    """``(pair_id, mixture_sha256, image_sha256)`` of each row of a parts table."""
    return list(zip(*(table.column(c).to_pylist() for c in IDENTITY_COLUMNS), strict=True))


def merge(out: Path, ds, key: str, models: dict) -> pa.Table:
    """``scores.parquet``'s table: this key's parts in row order, ``pair_score`` = their AIS, plus an
    ``ais_<key>`` column for every complete key scored into ``out`` (this one included).

    Every key's rows must be the dataset's pairs, in order, with the same mixture and image digests:
    this key's otherwise raise (its parts are not the dataset's), another key's are left out with a
    warning (they scored the dataset before it changed). The card's ``pairs_sha256`` is the digest of
    the rows written."""
    want = [tuple(p) for p in dataset_pairs(ds.metadata)]
    parts = _key_parts(out, key, ds.num_shards) or []
    tables = [pq.read_table(p, schema=PART_SCHEMA) for p in parts]
    current = pa.concat_tables(tables) if tables else PART_SCHEMA.empty_table()  # a dataset of no pairs
    rows = _identities(current)
    if rows != want:
        raise SeeingSoundError(
            f"{out / 'parts' / key} holds scores of other pairs than {ds.root} (the dataset changed, or parts were "
            "copied in): refusing to merge them; score again with overwrite=True"
        )
    cols: dict[str, Any] = {
        name: current.column(name) for name in ("pair_id", "row", "image_id", *IDENTITY_COLUMNS[1:])
    }
    cols[DEFAULT_COLUMN] = current.column("ais")
    for name in PART_SCHEMA.names[PART_SCHEMA.get_field_index("ais") :]:
        cols[name] = current.column(name)
    keys: dict[str, dict] = {key: models}
    for folder in sorted((out / "parts").iterdir()) if (out / "parts").is_dir() else []:
        other = folder.name
        if other == key or not folder.is_dir():
            continue
        found = _key_parts(out, other, ds.num_shards)
        if found is None:
            log.warning("score: %s holds an unfinished run of models %s: left out of %s", folder, other, SCORES_FILE)
            continue
        try:
            table = pa.concat_tables([pq.read_table(p, schema=PART_SCHEMA) for p in found])
        except Exception as exc:  # parts of an older version (another schema)
            log.warning("score: the parts of %s cannot be read (%s): left out", other, type(exc).__name__)
            continue
        if _identities(table) != rows:
            log.warning("score: the parts of %s scored other pairs (the dataset changed): left out", other)
            continue
        cols[f"{KEY_PREFIX}{other}"] = table.column("ais")
        info = folder / "models.json"
        keys[other] = json.loads(info.read_text()) if info.is_file() else {}
    cols[f"{KEY_PREFIX}{key}"] = current.column("ais")
    extra = sorted(k for k in cols if k.startswith(KEY_PREFIX))
    ordered = {k: v for k, v in cols.items() if not k.startswith(KEY_PREFIX)}
    ordered.update({k: cols[k] for k in extra})
    card = {
        "format": FORMAT,
        "version": CARD_VERSION,
        "score_key": key,
        "keys": dict(sorted(keys.items())),
        "dataset_root": str(ds.root.resolve()),
        "pairs": current.num_rows,
        "pairs_sha256": pairs_sha256(rows),  # of the rows merged, which are the dataset's (checked above)
        "metric": "AIS: cosine of the mixture's Wav2CLIP embedding and the image's CLIP embedding (paper: 4.2)",
    }
    return pa.table(ordered).replace_schema_metadata({META_KEY: json.dumps(card, sort_keys=True)})


def _card(table: pa.Table) -> dict:
    return json.loads((table.schema.metadata or {})[META_KEY])


def _retrieval_relation(table: pa.Table) -> dict:
    """Pearson correlation of ``pair_score`` with each stored retrieval summary (where both are present)."""
    score = table.column(DEFAULT_COLUMN).to_pylist()
    out: dict[str, Any] = {}
    for name in ("retrieval_cosine_mean", "retrieval_score_mean"):
        other = table.column(name).to_pylist()
        both = [(a, b) for a, b in zip(score, other, strict=True) if a is not None and b is not None]
        r = None
        if len(both) >= 3:
            x, y = np.asarray(both, dtype=np.float64).T
            if x.std() > 0 and y.std() > 0:
                r = float(np.corrcoef(x, y)[0, 1])
        out[name] = {"pearson_r": r, "n": len(both)}
    return out

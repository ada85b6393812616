"""``seeing-sound sonify``: concepts -> filter -> retrieve -> mix -> pairs dataset (paper Sec. 3)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.config import ConfigError, field_names, resolve
from seeing_sound.dataset.image_store import is_folder_root, open_store, root_spec
from seeing_sound.engine import EngineConfig, Outcome, Run, atomic_write, command_run
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool.config import EmbedConfig
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.retrieval.exclude import read_id_list
from seeing_sound.sonify.config import SonifyConfig
from seeing_sound.sonify.exclusions import Exclusions
from seeing_sound.sonify.recipes import build_recipes, read_retrieval, split_pairs, table_digest
from seeing_sound.sonify.stage import MixStage, inputs_rel, plan_mix

log = logging.getLogger(__name__)


@dataclass
class SonifyReport:
    """The final summary of a sonify run."""

    out: Path
    images_in: int = 0
    filtered: dict[str, int] = field(default_factory=dict)  # keyword, "depiction", "ungrounded", ... -> images dropped
    failed: dict[str, int] = field(default_factory=dict)  # reason -> images
    pairs: int = 0
    unique_chunks: int = 0
    # per concept: {"in", "out" (sent to retrieval), "filtered": reason -> n, "failed": reason -> n}
    concepts: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    complete: bool = True  # False after a shard slice: the finishing run writes the card

    def to_dict(self) -> dict:
        return {
            "images_in": self.images_in,
            "filtered": self.filtered,
            "failed": self.failed,
            "pairs": self.pairs,
            "unique_chunks": self.unique_chunks,
            "concepts": self.concepts,
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        lines = [
            f"dataset     {self.out}",
            f"images in   {self.images_in}",
            "filtered    " + (", ".join(f"{k}: {v}" for k, v in sorted(self.filtered.items())) or "none"),
            "failed      " + (", ".join(f"{k}: {v}" for k, v in sorted(self.failed.items())) or "none"),
            f"pairs       {self.pairs} written, {self.unique_chunks} unique chunks used",
            *self._concept_lines(),
            "seconds     " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()),
        ]
        return "\n".join(lines)

    def _concept_lines(self) -> list[str]:
        c = self.concepts
        if not c:
            return []
        parts = [f"{k}: {v}" for k, v in sorted({**c.get("filtered", {}), **c.get("failed", {})}.items())]
        return [
            f"concepts    {c['in']} in, {c['out']} to retrieval" + (f", dropped {', '.join(parts)}" if parts else "")
        ]


def _bump(d: dict, key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def _load_concepts(source: Path) -> tuple[pa.Table, pa.Table | None]:
    from seeing_sound.concepts import read_concepts
    from seeing_sound.retrieval.inputs import normalize_concepts, read_concept_file

    if source.is_dir():
        return read_concepts(source)
    concepts, _ = normalize_concepts(read_concept_file(source))
    return concepts, None


def _images_from_ids(ids: list[str], images_root: str | None) -> pa.Table:
    """Image table for a plain concepts file: the id is the path under ``images_root`` (or the member
    name in its shards, the row id in its tables)."""
    from seeing_sound.dataset.paths import UnsafePathError, safe_join

    store = open_store(images_root) if images_root is not None else None
    rows = []
    for image_id in sorted(set(ids)):
        error = None
        try:
            if images_root is not None and is_folder_root(images_root):
                safe_join(images_root, image_id)  # an id that leaves the folder is refused by name
            if store is not None and image_id not in store:
                error = "image_missing"
        except UnsafePathError:
            error = "unsafe_path"
        rows.append({"image_id": image_id, "path": image_id, "filtered": False, "filter_word": None, "error": error})
    return pa.Table.from_pylist(rows)


def sonify_config(config: SonifyConfig | None = None, **options) -> SonifyConfig:
    """``config`` (or the defaults) with ``options`` applied: :class:`SonifyConfig` field names, or
    :class:`ConceptsConfig` ones (``vlms=...``, ``no_filter=True``) for its ``concepts_config``;
    ``concept_options`` (a dict of the latter) is accepted too. Unknown names raise ``TypeError``."""
    own = set(field_names(SonifyConfig))
    nested = dict(options.pop("concept_options", None) or {})
    nested |= {k: options.pop(k) for k in list(options) if k not in own and k in set(field_names(ConceptsConfig))}
    if nested.get("vlms", ()) is None:
        del nested["vlms"]  # vlms=None: the default back end
    cfg = resolve(SonifyConfig, config, options)
    return cfg.replace(concepts_config=cfg.concepts_config.replace(**nested)) if nested else cfg


def sonify(
    images: str | Path | None,
    pool: str | Path,
    out: str | Path,
    config: SonifyConfig | None = None,
    *,
    concepts: str | Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> SonifyReport:
    """Sonify the images under ``images`` with audio from ``pool`` into a pairs dataset at ``out``.

    Every stage is resumable: rerun the same call after a crash. ``concepts`` starts from an
    existing concepts run folder or a JSONL/CSV/Parquet file of (image_id, concept) rows
    instead of running the VLMs. ``config`` holds the settings (defaults: :class:`SonifyConfig`);
    keyword ``options`` override single fields (see :func:`sonify_config`). Every setting is
    checked before the first stage starts, and the exclusion lists are read then:
    ``exclude_images`` (a file of image ids) drops those images before retrieval (counted in
    ``filtered["excluded"]``), ``exclude_chunks`` (a file of pool chunk ids) keeps those chunks out of
    retrieval. ``engine_config``: engine (local or Ray), shard slice
    and retries for every stage. A slice (``shard_slice="I/N"``) runs its shards of each stage
    and waits for the other slices between stages (``slice_wait_s``); the pool must be embedded
    beforehand (``pool embed``, which can run as slices too); a last run without the slice
    checks every shard and writes the dataset card.
    """
    # 1. Every setting, of every stage, before any work.
    cfg = sonify_config(config, **options)
    exclusions = Exclusions(
        read_id_list(cfg.exclude_images, "exclude_images", "image"),
        read_id_list(cfg.exclude_chunks, "exclude_chunks", "chunk"),
    )
    if images is None and concepts is None:
        raise ValueError("give images (a folder) or concepts (a file or concepts run)")
    if cfg.copy_images and images is None:
        raise ConfigError("copy_images", True, "needs the images folder (images)")
    if concepts is not None and cfg.concepts_config.grounding is not None:
        raise ConfigError(
            "grounding", cfg.concepts_config.grounding,
            "runs inside the concepts stage, which concepts= skips: run `concepts --grounding` and pass its folder",
        )  # fmt: skip
    embed_cfg = cfg.project(EmbedConfig)  # encoder, model, device, audio_prep
    exclude_chunks = None if exclusions.chunks is None else exclusions.chunks.path
    retrieve_cfg = cfg.project(RetrieveConfig, exclude_chunks=exclude_chunks)  # encoder, model, topk, ssr, seed, device
    with command_run(
        "sonify", out, inputs={"images": images, "concepts": concepts, "pool": pool}, engine_config=engine_config,
        workers=workers, overwrite=overwrite, progress=progress, barrier=True,  # each stage needs all of the one before
    ) as run:  # fmt: skip
        return _run_stages(run, images, pool, cfg, embed_cfg, retrieve_cfg, concepts, exclusions)


def _run_stages(
    run: Run,
    images: str | Path | None,
    pool: str | Path,
    cfg: SonifyConfig,
    embed_cfg: EmbedConfig,
    retrieve_cfg: RetrieveConfig,
    concepts: str | Path | None,
    exclusions: Exclusions,
) -> SonifyReport:
    """Concepts, embed, retrieve and mix on ``run.out`` (one run, its lock held across all four stages)."""
    out, eng, workers, overwrite, progress = run.out, run.engine, run.workers, run.overwrite, run.progress
    from seeing_sound.concepts import run_concepts
    from seeing_sound.dataset.writer import write_card
    from seeing_sound.pool import AudioPool
    from seeing_sound.pool.run import embed_pool
    from seeing_sound.retrieval import retrieve

    out.mkdir(parents=True, exist_ok=True)
    audio_pool = AudioPool.open(pool)
    # a folder, tar shards, Parquet or a datasets folder (seeing_sound.image_sources), made absolute
    images_root = root_spec(images) if images is not None else None
    report = SonifyReport(out=out)

    t0 = time.perf_counter()
    if concepts is None:
        if images_root is None or (is_folder_root(images_root) and not Path(images_root).is_dir()):
            raise FileNotFoundError(f"images folder not found: {images}")
        run_concepts(
            [images_root], out, cfg.concepts_config, workers=workers, overwrite=overwrite, progress=progress,
            engine_config=eng,
        )  # fmt: skip
        concept_source = out
    else:
        concept_source = Path(concepts)
        if not concept_source.exists():
            raise FileNotFoundError(f"concepts not found: {concepts}")
    concept_rows, image_rows = _load_concepts(concept_source)
    if image_rows is None:
        image_rows = _images_from_ids(concept_rows.column("image_id").to_pylist(), images_root)
    report.seconds["concepts"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    if eng.slice is None:
        embed_pool(audio_pool.root, config=embed_cfg, overwrite=overwrite, progress=progress, engine_config=eng)
    else:
        _check_embedded(audio_pool.root, embed_cfg)  # slices must not take the pool's lock: embed it first
    report.seconds["embed"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    excluded = exclusions.matched_images(image_rows)
    usable = image_rows.filter(
        pc.and_(
            pc.and_(
                pc.invert(pc.fill_null(image_rows.column("filtered"), False)), pc.is_null(image_rows.column("error"))
            ),
            pc.invert(pc.is_in(image_rows.column("image_id"), value_set=pa.array(sorted(excluded), pa.string()))),
        )
    )
    keep = pc.is_in(concept_rows.column("image_id"), value_set=usable.column("image_id"))
    kept_concepts = concept_rows.filter(keep)
    name = "concepts.parquet" if eng.slice is None else f"concepts.slice-{eng.slice[0]}-of-{eng.slice[1]}.parquet"
    concepts_file = out / "_stages" / "sonify" / name
    with atomic_write(concepts_file) as fh:  # each slice its own copy: no two writers of one file
        pq.write_table(
            kept_concepts.select(
                [c for c in ("image_id", "concept_index", "model", "concept") if c in kept_concepts.column_names]
            ),
            fh,
        )
    retrieve(
        audio_pool.root, concepts_file, out, retrieve_cfg, workers=1 if eng.engine == "local" else workers,
        overwrite=overwrite, progress=progress, engine_config=eng,
    )  # fmt: skip
    report.seconds["retrieve"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    recipes = build_recipes(
        read_retrieval(out), kept_concepts, image_rows, audio_pool.manifest, seed=cfg.seed, lufs_range=cfg.lufs_range
    )
    shards = split_pairs(recipes, cfg.pairs_per_shard)
    for i, table in enumerate(shards):
        if eng.slice is None or i % eng.slice[1] == eng.slice[0]:  # a slice writes the recipes it mixes
            with atomic_write(out / inputs_rel(i)) as fh:
                pq.write_table(table, fh)
    stage = MixStage(
        config=cfg,
        out=str(out),
        pool_root=str(audio_pool.root.resolve()),
        images_root=str(images_root or ""),
        inputs_digest=table_digest(recipes),
        exclusions=exclusions.fingerprint(),
    )
    tasks = plan_mix([len(set(t.column("pair_id").to_pylist())) for t in shards])
    mixed = run.stage(stage, tasks=tasks, engine_config=eng.replace(barrier=False))
    report.seconds["mix"] = round(time.perf_counter() - t0, 2)
    if not run.finishing:  # the card describes every shard: the finishing run writes it
        run.slice_done("the dataset (its card)", mixed)
        report.pairs = mixed.items_out
        report.complete = False
        return report

    _tally(report, image_rows, usable, kept_concepts, recipes, mixed, excluded)
    report.concepts = _concept_counts(concept_rows, image_rows, kept_concepts, excluded)
    retrieval_info = out / "retrieval" / "info.json"
    write_card(
        out,
        images_root=str(images_root or ""),
        sample_rate=audio_pool.sample_rate,
        audio_format=cfg.audio_format,
        shards=[{"index": s.shard, "pairs": s.items_out} for s in mixed.shards],
        pool={"root": str(audio_pool.root.resolve()), "chunks": len(audio_pool)},
        retrieval=json.loads(retrieval_info.read_text()) if retrieval_info.exists() else {},
        concepts=_concepts_card(concept_rows, image_rows, None if concepts is None else concept_source)
        | _grounding_card(concept_source),
        # every setting that shapes the pairs (the config's fingerprint; the concepts stage has its own card)
        params={**{k: v for k, v in cfg.fingerprint().items() if k != "concepts_config"}, **exclusions.card()},
        counts=report.to_dict() | {"seconds": None},  # timings vary run to run; the card must not
    )
    if not report.pairs and not report.images_in:
        raise SeeingSoundError("no images to sonify")
    failed = sum(report.failed.values())
    outcome = Outcome(report.images_in, report.pairs, failed, report.images_in - report.pairs - failed, report.failed)
    run.finish(
        outcome, noun="image", hint="check that the images are under images= and the pool has audio", report=report
    )
    return report


def _check_embedded(pool_root: Path, embed_cfg: EmbedConfig) -> None:
    """Refuse a slice run on a pool without finished embeddings for the encoder (one line with the fix)."""
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool.layout import embeddings_root

    enc = load_encoder(embed_cfg.encoder, embed_cfg.model, device=embed_cfg.device, audio_prep=embed_cfg.audio_prep)
    if not (embeddings_root(pool_root, enc.info.key) / "info.json").exists():
        raise SeeingSoundError(
            f"sonify with a shard slice needs the pool embedded first: "
            f"`seeing-sound pool embed {pool_root} --encoder {embed_cfg.encoder}` (slices work there too)"
        )


def _tally(
    report: SonifyReport,
    image_rows: pa.Table,
    usable: pa.Table,
    kept_concepts: pa.Table,
    recipes: pa.Table,
    mixed,
    excluded: set[str],
) -> None:
    """Account for every image: a pair, filtered (by word, or ``excluded`` by the list) or failed (by reason)."""
    report.images_in = image_rows.num_rows
    for row in image_rows.select(["image_id", "filtered", "filter_word", "error"]).to_pylist():
        if row["image_id"] in excluded:  # the list wins: the image is left out whatever else it had
            _bump(report.filtered, "excluded")
        elif row["error"]:
            _bump(report.failed, row["error"])
        elif row["filtered"]:
            _bump(report.filtered, row["filter_word"] or "?")
    with_concepts = set(kept_concepts.column("image_id").to_pylist())
    no_concepts = set(usable.column("image_id").to_pylist()) - with_concepts
    no_match = with_concepts - set(recipes.column("image_id").to_pylist())
    if no_concepts:
        _bump(report.failed, "no_concepts", len(no_concepts))
    if no_match:
        _bump(report.failed, "no_chunk_retrieved", len(no_match))
    for reason, n in mixed.errors.items():
        _bump(report.failed, reason, n)
    report.pairs = mixed.items_out
    report.unique_chunks = len({c for s in mixed.shards for c in s.extra.get("chunks", [])})
    if report.pairs == 0:
        log.warning("sonify wrote no pairs")


def _concept_counts(concepts: pa.Table, images: pa.Table, kept: pa.Table, excluded: set[str]) -> dict:
    """Account for every concept: sent to retrieval, filtered (by the grounding/depiction checks, or
    with its image) or failed with its image; ``in == out + filtered + failed``."""
    filtered: dict[str, int] = {}
    failed: dict[str, int] = {}
    dropped = 0
    if "dropped_concepts" in images.column_names:  # the concepts stage's CLIP checks (docs/grounding.md)
        for lst in images.column("dropped_concepts").to_pylist():
            for d in lst or []:
                _bump(filtered, d["reason"] or "?")
                dropped += 1
    state = {
        r["image_id"]: r
        for r in images.select(
            [c for c in ("image_id", "filtered", "filter_word", "error") if c in images.column_names]
        ).to_pylist()
    }
    kept_keys = set(kept.column("image_id").to_pylist())
    for iid in concepts.column("image_id").to_pylist():
        if iid in kept_keys:
            continue
        row = state.get(iid, {})
        if iid in excluded:
            _bump(filtered, "excluded")
        elif row.get("error"):
            _bump(failed, row["error"])
        else:
            _bump(filtered, row.get("filter_word") or "no_image")
    return {"in": concepts.num_rows + dropped, "out": kept.num_rows, "filtered": filtered, "failed": failed}


def _unique(table: pa.Table, column: str) -> list:
    if table is None or column not in table.column_names:
        return []
    return sorted(v for v in set(table.column(column).to_pylist()) if v is not None)


def _grounding_card(source: Path) -> dict:
    """``{"grounding": settings}`` of the CLIP checks the concepts went through, as the concepts run
    (this run's own stage, or a run folder given as ``concepts``) recorded them in its card, the CLIP's
    weights digest included; ``{}`` when there were none or the concepts came from a file."""
    from seeing_sound.concepts.run import CARD

    card = source / CARD
    settings = None
    if source.is_dir() and card.is_file():
        settings = (json.loads(card.read_text()).get("settings") or {}).get("grounding")
    return {"grounding": settings} if settings else {}


def _concepts_card(concepts: pa.Table, images: pa.Table, source: Path | None) -> dict:
    """Which models and prompts produced the concepts and captions (recorded per row upstream)."""
    return {
        "source": str(source) if source is not None else "concepts stage",
        "models": _unique(concepts, "model"),
        "concept_prompts": _unique(concepts, "prompt"),
        "caption_models": _unique(images, "caption_model"),
        "caption_prompts": _unique(images, "caption_prompt"),
    }

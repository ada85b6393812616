"""The library functions behind ``seeing-sound pool build`` and ``pool embed``."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seeing_sound.config import resolve
from seeing_sound.engine import EngineConfig, Run, command_run
from seeing_sound.engine.run import check_inputs
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool import layout
from seeing_sound.pool.config import EmbedConfig, PoolBuildConfig
from seeing_sound.pool.embed_stage import EmbedStage, pool_digest
from seeing_sound.pool.layout import embeddings_root
from seeing_sound.pool.sources import attach_descriptions, find_sources, load_descriptions
from seeing_sound.pool.stage import PoolBuildStage, plan_build

log = logging.getLogger(__name__)


@dataclass
class PoolBuildReport:
    """What ``pool build`` did, for the summary and the exit code."""

    root: Path
    files: int
    files_ok: int
    chunks: int
    silent_chunks: int
    hours: float
    errors: dict[str, int]
    shards_run: int
    shards_skipped: int
    seconds: float
    complete: bool = True  # False after a shard slice: pool.json is written by the finishing run


def build_pool(
    sources: Sequence[str | Path],
    out: str | Path,
    config: PoolBuildConfig | None = None,
    *,
    descriptions: str | Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> PoolBuildReport:
    """Standardize every audio file under ``sources`` into a pool at ``out`` (resumable).

    ``config`` holds the settings (defaults: :class:`PoolBuildConfig`); keyword ``options``
    (its field names, e.g. ``chunk_seconds=2.0``) override single fields. ``descriptions``:
    a CSV/JSONL file mapping source files to descriptions and labels. ``engine_config``: engine,
    shard slice and retries (see :class:`~seeing_sound.engine.EngineConfig`); a slice run builds
    its shards only, and a last run without the slice checks them all and writes ``pool.json``.
    """
    cfg = resolve(PoolBuildConfig, config, options)
    shard_files = cfg.shard_files
    root = Path(out)
    check_inputs({"sources": list(sources)})
    files = find_sources(list(sources), exclude=[root, *([descriptions] if descriptions else [])])  # not sources
    if descriptions is not None:
        files = attach_descriptions(files, load_descriptions(descriptions))
    if not files:
        raise FileNotFoundError(f"no files found under {', '.join(map(str, sources))}")
    tasks = plan_build(files, shard_files)
    with command_run(
        "pool build", root, engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress
    ) as run:  # one run per pool: the summary below must describe this run's shards
        return _build(run, cfg, tasks, len(files))


def _build(run: Run, cfg: PoolBuildConfig, tasks: list, n_files: int) -> PoolBuildReport:
    root = run.out
    root.mkdir(parents=True, exist_ok=True)
    log.info("pool build: %d files in %d shards -> %s", n_files, len(tasks), root)
    if run.overwrite and (root / "embeddings").exists():  # vectors of the old chunks would map to new ids
        shutil.rmtree(root / "embeddings")
    report = run.stage(PoolBuildStage(config=cfg), tasks=tasks)
    if not run.finishing:  # pool.json is the finishing run's: it describes every shard
        run.slice_done("the pool (pool.json)", report)
        return _slice_report(root, report)
    shards = [{"index": s.shard, "files": s.items_in, "chunks": s.extra["chunks"]} for s in report.shards]
    real_seconds = sum(s.extra["real_seconds"] for s in report.shards)
    counts = {
        "files": report.items_in,
        "files_ok": report.items_out,
        "chunks": sum(s["chunks"] for s in shards),
        "silent_chunks": sum(s.extra["silent_chunks"] for s in report.shards),
        "truncated_files": sum(s.extra.get("truncated_files", 0) for s in report.shards),
        "hours": round(real_seconds / 3600, 6),
        "errors": report.errors,
    }
    write_json_atomic(
        layout.pool_json(root),
        {
            "format": layout.POOL_FORMAT,
            "format_version": layout.POOL_FORMAT_VERSION,
            "sample_rate": cfg.sample_rate,
            "chunk_seconds": cfg.chunk_seconds,
            "chunk_samples": cfg.chunk_samples,
            "min_tail_seconds": cfg.min_tail_seconds,
            "dtype": layout.CHUNK_DTYPE,
            "loudness": "ITU-R BS.1770-4 integrated, on each chunk's unpadded audio (>= 0.4 s)",
            "shards": shards,
            "counts": counts,
        },
    )
    built = PoolBuildReport(
        root=root,
        files=counts["files"],
        files_ok=counts["files_ok"],
        chunks=counts["chunks"],
        silent_chunks=counts["silent_chunks"],
        hours=counts["hours"],
        errors=counts["errors"],
        shards_run=report.ran,
        shards_skipped=report.skipped,
        seconds=report.seconds,
    )
    run.finish(
        report.outcome, noun="file", hint="check that the sources are audio files this machine decodes", report=built
    )
    return built


def _slice_report(root: Path, report) -> PoolBuildReport:
    """What a slice did (its own shards only); pool.json is left to the finishing run."""
    return PoolBuildReport(
        root=root,
        files=report.items_in,
        files_ok=report.items_out,
        chunks=sum(s.extra["chunks"] for s in report.shards),
        silent_chunks=sum(s.extra["silent_chunks"] for s in report.shards),
        hours=round(sum(s.extra["real_seconds"] for s in report.shards) / 3600, 6),
        errors=report.errors,
        shards_run=report.ran,
        shards_skipped=report.skipped,
        seconds=report.seconds,
        complete=False,
    )


@dataclass
class EmbedReport:
    """What ``pool embed`` did."""

    root: Path
    key: str
    info: dict
    chunks: int
    embedded: int
    skipped: dict[str, int]
    shards_run: int
    shards_skipped: int
    seconds: float
    complete: bool = True  # False after a shard slice: info.json is written by the finishing run


def embed_pool(
    pool: str | Path,
    encoder: str | None = None,
    model: str | None = None,
    config: EmbedConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> EmbedReport:
    """Embed every usable chunk of the pool at ``pool`` with one encoder (resumable); write ``info.json``.

    ``config`` holds the settings (defaults: :class:`EmbedConfig`); ``encoder``, ``model`` and
    keyword ``options`` (its field names) override single fields. ``engine_config``: engine, shard
    slice and retries; a slice run embeds its shards only and ``info.json`` (what retrieval reads)
    is written by a last run without the slice.
    """
    from seeing_sound.encoders import load_encoder
    from seeing_sound.pool import AudioPool

    positional = {k: v for k, v in (("encoder", encoder), ("model", model)) if v is not None}
    cfg = resolve(EmbedConfig, config, {**positional, **options})
    ap = AudioPool.open(pool)
    enc = load_encoder(cfg.encoder, cfg.model, device=cfg.device, fp16=cfg.fp16, batch_size=cfg.batch_size,
                       audio_prep=cfg.audio_prep)  # fmt: skip
    if cfg.encoder == "clap" and "audio" not in enc.modalities:
        raise ValueError(f"encoder {cfg.encoder!r} cannot embed audio")
    key = enc.info.key
    info_path = embeddings_root(ap.root, key) / "info.json"
    if info_path.exists() and not overwrite:
        old = json.loads(info_path.read_text())
        if old.get("encoder_info") != enc.info.to_dict() or old.get("dtype") != cfg.dtype:
            raise SeeingSoundError(f"{info_path.parent} {_embedding_mismatch(old, enc.info.to_dict(), cfg.dtype)}")
    n = len(ap)
    stage = EmbedStage(
        config=cfg.replace(model=enc.info.model),  # the resolved id: workers load exactly this model
        pool_root=str(ap.root),
        key=key,
        n_chunks=n,
        identity=enc.info.to_dict(),
        digest=pool_digest(ap),
    )
    n_shards = -(-n // cfg.shard_chunks)
    log.info("pool embed: %d chunks in %d shards with %s -> %s", n, n_shards, enc.info.model, info_path.parent)
    with command_run(
        "pool embed", ap.root, engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress
    ) as run:  # one run per pool: info.json must describe this run's shards
        report = run.stage(stage)
        if not run.finishing:  # info.json is the finishing run's
            run.slice_done(f"{info_path.parent} (info.json)", report)
            return EmbedReport(
                root=info_path.parent, key=key, info={}, chunks=report.items_in, embedded=report.items_out,
                skipped=report.errors, shards_run=report.ran, shards_skipped=report.skipped,
                seconds=report.seconds, complete=False,
            )  # fmt: skip
        info = {
            "format": "seeing-sound-embeddings",
            "format_version": 1,
            "encoder_info": enc.info.to_dict(),
            "key": key,
            "dtype": cfg.dtype,
            "pool": stage.digest,
            "normalized": True,
            "pool_text": "description. labels" if cfg.encoder == "text" else None,
            "counts": {"chunks": report.items_in, "embedded": report.items_out, "skipped": report.errors},
            "shards": [{"index": s.shard, "rows": s.items_out} for s in report.shards],
        }
        write_json_atomic(info_path, info)
    return EmbedReport(
        root=info_path.parent,
        key=key,
        info=info,
        chunks=report.items_in,
        embedded=report.items_out,
        skipped=report.errors,
        shards_run=report.ran,
        shards_skipped=report.skipped,
        seconds=report.seconds,
    )


def _embedding_mismatch(old: dict, new: dict, dtype: str) -> str:
    """What differs between stored embeddings and this run's encoder, and how to go on."""
    stored = old.get("encoder_info") or {}
    diffs = [
        f"{k} {stored.get(k)!r} (stored) vs {new[k]!r}" for k in ("model", "revision", "dim") if stored.get(k) != new[k]
    ]
    if old.get("dtype") != dtype:
        diffs.append(f"dtype {old.get('dtype')!r} (stored) vs {dtype!r}")
    prep_old = (stored.get("extra") or {}).get("audio_prep", "processor")  # pools embedded before it was recorded
    prep_new = (new.get("extra") or {}).get("audio_prep", "processor")
    hint = "pass overwrite=True to replace them"
    if prep_old != prep_new and not diffs:
        diffs.append(f"audio prepared by {prep_old!r} (stored) vs {prep_new!r}")
        hint = f"pass audio_prep={prep_old} to keep them (embeddings agree to ~4e-4), or overwrite=True to re-embed"
    elif prep_old != prep_new:
        diffs.append(f"audio prepared by {prep_old!r} (stored) vs {prep_new!r}")
    return f"holds other embeddings: {'; '.join(diffs) or 'other encoder settings'}; {hint}"

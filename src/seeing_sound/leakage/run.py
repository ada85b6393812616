"""The library function behind ``seeing-sound leakage``: near duplicates between training data and benchmarks.

Images: every training image against every benchmark frame, by CLIP image cosine and by perceptual
hash (both reported; either may flag, see :class:`~seeing_sound.leakage.config.LeakageConfig`).
Audio: every training clip (the pool chunks the dataset's recipes use, a whole pool, or the
dataset's stored audio) against every benchmark track, by landmark fingerprints
(:mod:`seeing_sound.leakage.fingerprint`). Features are computed by a resumable engine stage
(:mod:`seeing_sound.leakage.stage`); outputs are written by :mod:`seeing_sound.leakage.report`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from seeing_sound.concepts.images import discover_images
from seeing_sound.config import resolve
from seeing_sound.dataset.image_store import is_folder_root, source_ref
from seeing_sound.engine import EngineConfig, Run, command_run
from seeing_sound.engine.run import check_inputs
from seeing_sound.errors import SeeingSoundError
from seeing_sound.leakage.config import LeakageConfig
from seeing_sound.leakage.pairs import audio_pairs, image_pairs
from seeing_sound.leakage.report import LeakageReport, write_outputs
from seeing_sound.leakage.stage import LeakageFeatureStage, load_features

log = logging.getLogger(__name__)

#: (key, path) for images; (key, path, chunk_id) for audio
Item = tuple


@dataclass
class TrainSide:
    """What the training data offers to compare: image items, audio items and how to name them."""

    kind: str  # 'dataset' or 'folder'
    root: Path
    images: list[Item] = field(default_factory=list)
    audio: list[Item] = field(default_factory=list)
    audio_source: str | None = None  # chunks | pool | mixtures | None
    pool_root: str | None = None
    chunk_info: dict[int, tuple[str, float]] = field(default_factory=dict)  # chunk id -> (source, offset_s)
    pairs_by_image: dict[str, list[str]] = field(default_factory=dict)
    pairs_by_chunk: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class BenchSide:
    name: str
    root: Path
    side: str  # stage side name
    images: list[Item]
    audio: list[Item]


# --- inputs ------------------------------------------------------------------------------------


def _train_side(train: Path, cfg: LeakageConfig, pool: str | Path | None) -> TrainSide:
    from seeing_sound.studies.common import IMAGE_EXTENSIONS, find_files

    if (train / "dataset.json").is_file():
        from seeing_sound.dataset.paths import UnsafePathError
        from seeing_sound.dataset.reader import PairsDataset

        ds = PairsDataset.open(train)
        side = TrainSide("dataset", train)
        rows = ds.metadata.select(["pair_id", "image_id", "components"]).to_pylist()
        seen: dict[str, str] = {}
        for i, r in enumerate(rows):
            image_id = str(r["image_id"])
            side.pairs_by_image.setdefault(image_id, []).append(str(r["pair_id"]))
            if cfg.images and image_id not in seen:
                try:
                    seen[image_id] = ds.image_ref(i)  # a path, or the image's place in its shards or table
                except UnsafePathError:
                    seen[image_id] = ""  # recorded as missing by the stage
            for c in r["components"] or []:
                if c.get("chunk_id") is not None:
                    side.pairs_by_chunk.setdefault(int(c["chunk_id"]), []).append(str(r["pair_id"]))
        side.images = sorted(seen.items())
        source = cfg.audio_source
        card_pool = (ds.card.get("pool") or {}).get("root")
        if source == "auto":
            source = "chunks" if (pool is not None or card_pool) and side.pairs_by_chunk else "mixtures"
        if source in ("chunks", "pool"):
            root = str(pool or card_pool or "")
            if not root:
                raise SeeingSoundError(f"{train}'s card names no pool: pass pool=POOL or audio_source='mixtures'")
            _add_chunks(side, root, None if source == "pool" else sorted(side.pairs_by_chunk))
        elif cfg.audio:
            side.audio = [(str(r["pair_id"]), str(ds.audio_path(i)), -1) for i, r in enumerate(rows)]
        side.audio_source = source if cfg.audio else None
        return side
    in_place = not is_folder_root(train)  # shards, a pattern of them, or a table
    if not train.is_dir() and not in_place:
        raise FileNotFoundError(f"train {train} is neither a pairs dataset nor a folder of images")
    side = TrainSide("folder", train)
    if not in_place:
        side.images = [(p.relative_to(train).as_posix(), str(p)) for p in find_files(train, IMAGE_EXTENSIONS)]
    else:  # tar shards, Parquet or a datasets folder, read in place (seeing_sound.image_sources)
        roots, refs = discover_images([str(train)])
        side.images = [(r.image_id, source_ref(roots[r.root_index], r.path)) for r in refs]  # "@N": a broken header
    if cfg.audio and pool is not None:
        _add_chunks(side, str(pool), None)
        side.audio_source = "pool"
    if not side.images and not side.audio:
        raise SeeingSoundError(f"no images under {train} (and no pool given): nothing to compare")
    return side


def _add_chunks(side: TrainSide, pool_root: str, ids: list[int] | None) -> None:
    from seeing_sound.pool import AudioPool

    audio_pool = AudioPool.open(pool_root)
    side.pool_root = str(audio_pool.root.resolve())
    m = audio_pool.manifest.select(["chunk_id", "source", "offset_s"]).to_pydict()
    chosen = list(range(len(audio_pool))) if ids is None else [i for i in ids if 0 <= i < len(audio_pool)]
    side.chunk_info = {i: (str(m["source"][i]), float(m["offset_s"][i])) for i in chosen}
    side.audio = [(str(i), "", i) for i in chosen]


def _bench_side(root: Path) -> BenchSide:
    meta = root / "metadata.parquet"
    if not meta.is_file():
        raise SeeingSoundError(f"benchmark {root} is not a prepared BENCH folder: metadata.parquet missing")
    card_file = root / "benchmark.json"
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    name = str(card.get("name") or root.resolve().name)
    rows = pq.read_table(meta, columns=["item_id", "audio_path", "image_path"]).to_pylist()
    from seeing_sound.dataset.paths import UnsafePathError, safe_join, safe_name

    def path(rel: Any) -> str:
        try:
            return str(safe_join(root, str(rel)))
        except UnsafePathError:
            return ""

    tag = safe_name(name, what="benchmark name", sanitize=True)  # the one gate for names read from data
    return BenchSide(
        name,
        root,
        f"bench-{tag}",
        [(str(r["item_id"]), path(r["image_path"])) for r in rows],
        [(str(r["item_id"]), path(r["audio_path"]), -1) for r in rows],
    )


def _groups(items: Sequence[Item], size: int) -> tuple[tuple[Item, ...], ...]:
    return tuple(tuple(items[i : i + size]) for i in range(0, len(items), size))


def _feature_stages(side: TrainSide, benches: list[BenchSide], cfg: LeakageConfig) -> list[tuple]:
    """(side, kind, items, pool root) of every feature stage a whole check runs, in its order."""
    images, audio = cfg.images and bool(side.images), cfg.audio and bool(side.audio)
    out: list[tuple] = [("train", "images", side.images, None)] if images else []
    out += [("train", "audio", side.audio, side.pool_root)] if audio else []
    for b in benches:
        out += [(b.side, "images", b.images, None)] if images else []
        out += [(b.side, "audio", b.audio, None)] if audio else []
    return out


# --- matching ----------------------------------------------------------------------------------


def check_leakage(
    train: str | Path,
    benchmarks: Sequence[str | Path],
    out: str | Path,
    config: LeakageConfig | None = None,
    *,
    pool: str | Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> LeakageReport:
    """Near duplicates between ``train`` (a pairs dataset or an image folder) and each BENCH in ``benchmarks``.

    ``pool`` overrides the pool the dataset card names (or, for an image folder, adds every chunk of
    that pool to the audio check). Writes ``out``/leakage.json, leakage.md, image_pairs.parquet/.csv,
    audio_pairs.parquet/.csv, contact_sheet.png and exclude_images.txt / exclude_chunks.txt /
    exclude_pairs.txt (one id a line). Features are cached under ``out/_features`` (resumable).
    ``engine_config``: engine (local or Ray), shard slice and retries; a slice computes its shards
    of every feature stage and writes nothing else (its report is not ``complete``): a last run
    without the slice matches and writes the outputs.
    """
    cfg = resolve(LeakageConfig, config, options)
    if not benchmarks:
        raise ValueError("benchmarks must name at least one BENCH folder")
    inputs = {"train": train, "benchmarks": list(benchmarks), "pool": pool}
    check_inputs(inputs)
    train_root = Path(train)
    with command_run(
        "leakage", out, inputs=inputs,
        engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress,
    ) as run:  # fmt: skip  # one check at a time per folder (held across every stage)
        side = _train_side(train_root, cfg, pool)
        benches = [_bench_side(Path(b)) for b in benchmarks]
        names = [b.side for b in benches]
        if len(set(names)) != len(names):
            raise SeeingSoundError(f"two benchmarks share a name: {', '.join(b.name for b in benches)}")
        return _check(run, cfg, train_root, side, benches)


def _check(run: Run, cfg: LeakageConfig, train_root: Path, side: TrainSide, benches: list[BenchSide]) -> LeakageReport:
    root, eng = run.out, run.engine
    root.mkdir(parents=True, exist_ok=True)
    errors: dict[str, int] = {}
    lent: dict[str, Any] = {}  # CLIP loaded in this process by one image stage, lent to the next

    def features(s: str, kind: str, items: list[Item], pool_root: str | None = None) -> dict[str, np.ndarray]:
        stage = LeakageFeatureStage(cfg, s, kind, _groups(items, cfg.shard_items), pool_root)
        if kind == "images" and "clip" in lent:
            stage.provide(clip=lent["clip"], pool=None)
        report = run.stage(stage)
        if kind == "images" and vars(stage).get("clip") is not None:  # set up here (local, one worker)
            lent["clip"] = stage.clip
        for k, v in report.errors.items():
            errors[f"{s}:{k}"] = errors.get(f"{s}:{k}", 0) + v
        return {} if eng.slice is not None else load_features(root, stage)

    if not run.finishing:  # every feature stage's shards of this slice; matching needs all of them
        for s, kind, items, pool_root in _feature_stages(side, benches, cfg):
            features(s, kind, items, pool_root)
        run.slice_done(f"{root} (matching and the report)")
        return LeakageReport(
            out=root,
            benchmarks=[{"name": b.name, "items": len(b.images)} for b in benches],
            image_pairs=[],
            audio_pairs=[],
            exclude_images=[],
            exclude_chunks=[],
            exclude_pairs=[],
            train={"root": str(train_root.resolve()), "images": len(side.images), "audio": len(side.audio)},
            errors=dict(sorted(errors.items())),
            complete=False,
        )
    train_images = features("train", "images", side.images) if cfg.images and side.images else None
    train_audio = features("train", "audio", side.audio, side.pool_root) if cfg.audio and side.audio else None
    image_rows: list[dict[str, Any]] = []
    audio_rows: list[dict[str, Any]] = []
    per_bench: list[dict[str, Any]] = []
    for b in benches:
        log.info("leakage: %s (%d items) vs %s", b.name, len(b.images), train_root)
        irows = image_pairs(features(b.side, "images", b.images), train_images, cfg) if train_images is not None else []
        arows = audio_pairs(features(b.side, "audio", b.audio), train_audio, cfg) if train_audio is not None else []
        for r in irows:
            r["benchmark"] = b.name
            r["bench_image"] = dict(b.images).get(r["bench_item"], "")
            r["train_image_path"] = dict(side.images).get(r["train_image"], "")
        for r in arows:
            r["benchmark"] = b.name
            r["bench_audio"] = {k: p for k, p, _ in b.audio}.get(r["bench_item"], "")
            cid = int(r["train_audio"]) if side.audio_source in ("chunks", "pool") else None
            r["chunk_id"] = cid
            src = side.chunk_info.get(cid, ("", 0.0)) if cid is not None else ("", 0.0)
            r["chunk_source"], r["chunk_offset_s"] = (src[0] or None, src[1] if cid is not None else None)
        image_rows += irows
        audio_rows += arows
        img_hit = {r["bench_item"] for r in irows if r["flagged"]}
        aud_hit = {r["bench_item"] for r in arows if r["flagged"]}
        per_bench.append(
            {
                "name": b.name,
                "root": str(b.root),
                "items": len(b.images),
                "images_flagged": len(img_hit),
                "image_pairs": sum(r["flagged"] for r in irows),
                "audio_flagged": len(aud_hit),
                "audio_pairs": sum(r["flagged"] for r in arows),
                "items_flagged": len(img_hit | aud_hit),
            }
        )
    ex_images = sorted({r["train_image"] for r in image_rows if r["flagged"]})
    ex_chunks = sorted({int(r["chunk_id"]) for r in audio_rows if r["flagged"] and r["chunk_id"] is not None})
    ex_pairs: set[str] = set()
    for key in ex_images:
        ex_pairs.update(side.pairs_by_image.get(key, []))
    for cid in ex_chunks:
        ex_pairs.update(side.pairs_by_chunk.get(cid, []))
    if side.audio_source == "mixtures":
        ex_pairs.update(r["train_audio"] for r in audio_rows if r["flagged"])
    train_info = {
        "root": str(train_root.resolve()),
        "kind": side.kind,
        "images": len(side.images),
        "audio": len(side.audio),
        "audio_source": side.audio_source,
        "pool": side.pool_root,
    }
    report = LeakageReport(
        out=root,
        benchmarks=per_bench,
        image_pairs=image_rows,
        audio_pairs=audio_rows,
        exclude_images=ex_images,
        exclude_chunks=ex_chunks,
        exclude_pairs=sorted(ex_pairs) if side.kind == "dataset" else [],
        train=train_info,
        errors=dict(sorted(errors.items())),
    )
    write_outputs(report, cfg)
    return report

"""The library function behind ``seeing-sound bench prepare``: a benchmark's distribution -> one BENCH folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound import __version__
from seeing_sound.bench import layout
from seeing_sound.bench.config import BENCHMARKS, BenchConfig
from seeing_sound.bench.sampling import balanced_sample, class_quotas
from seeing_sound.bench.sources import (
    VGGSOUND_PATTERN,
    BenchItem,
    folder_items,
    greatest_hits_items,
    vggsound_items,
)
from seeing_sound.bench.stage import BenchPrepareStage, error_row
from seeing_sound.config import resolve
from seeing_sound.engine import EngineConfig, Outcome, atomic_write, command_run
from seeing_sound.engine.shards import write_json_atomic

log = logging.getLogger(__name__)

#: what each benchmark is and where its official copy comes from (written into benchmark.json)
SOURCES: dict[str, dict[str, Any]] = {
    "vggsound": {
        "dataset": "VGGSound (Chen et al., ICASSP 2020)",
        "url": "https://www.robots.ox.ac.uk/~vgg/data/vggsound/",
        "item": "one 10 s clip: its center frame and its whole audio track",
    },
    "folder": {
        "dataset": "class-folder videos (Landscapes, Into the Wild, VEGAS as distributed)",
        "url": None,
        "item": "one video: its center frame and its whole audio track",
    },
    "greatest-hits": {
        "dataset": "The Greatest Hits (Owens et al., CVPR 2016)",
        "url": "https://andrewowens.com/vis/",
        "item": "one whole *_denoised.mp4 video: its center frame and its whole audio track; "
        "label = most frequent annotated material in *_times.txt",
    },
}


@dataclass
class BenchReport:
    """What ``bench prepare`` did, for the summary and the exit code."""

    root: Path
    name: str
    counts: dict
    errors: dict[str, int] = field(default_factory=dict)
    shards_run: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    complete: bool = True  # False after a shard slice: metadata.parquet and benchmark.json are the finishing run's


def prepare_benchmark(
    name: str,
    src: str | Path,
    out: str | Path,
    config: BenchConfig | None = None,
    *,
    csv: str | Path | None = None,
    name_pattern: str = VGGSOUND_PATTERN,
    split: str | None = None,
    total: int | None = None,
    seed: int = 0,
    class_from: int | None = None,
    split_from: int | None = None,
    label_name: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> BenchReport:
    """Prepare benchmark ``name`` ('vggsound', 'folder', 'greatest-hits') from ``src`` into ``out`` (resumable).

    Every video gives one item: its center frame (``images/{item_id}.png``) and its whole audio
    track at ``config.sample_rate`` mono (``audio/{item_id}.wav``), listed in ``metadata.parquet``;
    bad videos are rows of ``errors.parquet`` with a reason. ``vggsound`` needs ``csv`` (the
    official file) and takes ``split`` (default 'test'); ``total`` draws a class-balanced sample
    of that many items with ``seed`` (from the videos present). ``label_name`` overrides the
    name written into benchmark.json (default: ``name``, or the folder's name for 'folder').
    ``engine_config``: engine (local or Ray), shard slice and retries; a slice prepares its own
    shards, and a last run without the slice publishes ``audio/``, ``images/``, the two Parquet
    files and ``benchmark.json``.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise ValueError(f"total must be an integer >= 1, got {total!r}")
    cfg = resolve(BenchConfig, config, options)
    missing: list[BenchItem] = []
    listed_protocol: dict = {}
    if name == "vggsound":
        if csv is None:
            raise ValueError("vggsound needs csv=the official vggsound.csv (--csv)")
        split = "test" if split is None else split
        items, missing = vggsound_items(src, csv, split=None if split == "all" else split, name_pattern=name_pattern)
        listed_protocol = {"csv": str(Path(csv).resolve()), "split": split, "name_pattern": name_pattern}
    else:
        if csv is not None:
            raise ValueError(f"csv is for vggsound only, not {name!r}")
        if name == "folder":
            items = folder_items(src, class_from=class_from, split_from=split_from)
            listed_protocol = {"class_from": class_from, "split_from": split_from}
        else:
            items = greatest_hits_items(src)
        if split is not None and split != "all":
            items = [i for i in items if i.split == split]
            listed_protocol["split"] = split
    listed = len(items) + len(missing)
    missing_videos = len(missing)
    sample: dict | None = None
    if total is not None:
        keep = set(balanced_sample([(i.item_id, i.label) for i in items], total, seed))
        counts_by_label: dict[str, int] = {}
        for i in items:
            counts_by_label[i.label] = counts_by_label.get(i.label, 0) + 1
        quotas = class_quotas(counts_by_label, total, seed)
        sample = {
            "total": total,
            "seed": seed,
            "drawn_from": "videos present under --src",
            "method": "class-balanced (Sound2Scene): equal per-class counts (+-1); classes with too few "
            "give all they have, the rest is spread evenly",
            "classes": len(counts_by_label),
            "per_class_min": min((q for q in quotas.values() if q), default=0),
            "per_class_max": max(quotas.values(), default=0),
        }
        items = [i for i in items if i.item_id in keep]
        missing = []  # a sample is drawn from what is there; the CSV rows without a video are counted below
    root = Path(out)
    shard_items = cfg.shard_items
    groups = tuple(tuple(items[i : i + shard_items]) for i in range(0, len(items), shard_items))
    stage = BenchPrepareStage(config=cfg, shard_items=groups)
    log.info("bench prepare %s: %d videos in %d shards -> %s", name, len(items), len(groups), root)
    with command_run(
        "bench prepare", root, inputs={"src": src, "csv": csv}, engine_config=engine_config, workers=workers,
        overwrite=overwrite, progress=progress,
    ) as run:  # fmt: skip
        report = run.stage(stage)
        if not run.finishing:  # the summary files list every shard's items: the finishing run writes them
            run.slice_done(f"{root} (benchmark.json, {layout.METADATA})", report)
            return BenchReport(
                root=root,
                name=label_name or name,
                counts={"in": report.items_in, "out": report.items_out},
                errors=report.errors,
                shards_run=report.ran,
                shards_skipped=report.skipped,
                seconds=report.seconds,
                complete=False,
            )
        meta, errs = _collect(root, len(groups), missing)
        _publish(root, meta, len(groups))
        for table, rel in ((meta, layout.METADATA), (errs, layout.ERRORS)):
            with atomic_write(root / rel) as fh:
                pq.write_table(table, fh)
        statuses = [str(s) for s in errs.column("status").to_pylist()]
        durations = [float(d or 0.0) for d in meta.column("duration_s").to_pylist()]
        counts: dict[str, Any] = {
            "listed": listed,
            "in": len(items) + len(missing),
            "out": meta.num_rows,
            "skipped": statuses.count("skipped"),
            "failed": statuses.count("failed"),
            "labels": len(set(meta.column("label").to_pylist())),
            "audio_hours": round(sum(durations) / 3600, 6),
        }
        if name == "vggsound":
            counts["missing_videos"] = missing_videos  # CSV rows of the split with no video under --src
        reasons: dict[str, int] = {}
        for r in errs.column("reason").to_pylist():
            reasons[str(r)] = reasons.get(str(r), 0) + 1
        counts["errors"] = dict(sorted(reasons.items()))
        bench_name = label_name or (Path(src).resolve().name if name == "folder" else name)
        write_json_atomic(
            layout.benchmark_json(root),
            {
                "format": layout.BENCH_FORMAT,
                "format_version": layout.BENCH_FORMAT_VERSION,
                "name": bench_name,
                "kind": name,
                "source": {**SOURCES[name], "src": str(Path(src).resolve()), **listed_protocol},
                "protocol": {
                    "frame": "center: the frame shown at half the video stream's duration (paper A.5)",
                    "audio": f"the whole first audio track, {cfg.sample_rate} Hz mono (channel mean), "
                    "soxr HQ, 16-bit PCM WAV",
                    "sample_rate": cfg.sample_rate,
                    "sample": sample,
                },
                "seed": seed,
                "counts": counts,
                "labels": sorted(set(meta.column("label").to_pylist())),
                "layout": {
                    "metadata": layout.METADATA,
                    "errors": layout.ERRORS,
                    "audio": "audio/{item_id}.wav",
                    "images": "images/{item_id}.png",
                },
                "created_with": f"seeing-sound {__version__}",
            },
        )
        prepared = BenchReport(
            root=root,
            name=bench_name,
            counts=counts,
            errors=counts["errors"],
            shards_run=report.ran,
            shards_skipped=report.skipped,
            seconds=report.seconds,
        )
        outcome = Outcome(counts["in"], counts["out"], counts["failed"], counts["skipped"], counts["errors"])
        hint = "no video could be prepared: check that src= holds videos PyAV decodes"
        run.finish(outcome, noun="video", hint=hint, report=prepared)
    return prepared


def _collect(root: Path, shards: int, missing: list[BenchItem]) -> tuple[pa.Table, pa.Table]:
    """All shards' metadata and errors (plus the skipped items), sorted by item id."""
    metas = [pq.read_table(root / layout.shard_metadata_rel(i), schema=layout.METADATA_SCHEMA) for i in range(shards)]
    errs = [pq.read_table(root / layout.shard_errors_rel(i), schema=layout.ERRORS_SCHEMA) for i in range(shards)]
    skipped = [
        error_row(m, "skipped", "missing_video", f"no file named {Path(m.source).name} under --src") for m in missing
    ]
    errs.append(pa.Table.from_pylist(skipped, schema=layout.ERRORS_SCHEMA))
    meta = pa.concat_tables(metas) if metas else layout.METADATA_SCHEMA.empty_table()
    err = pa.concat_tables(errs)
    return meta.sort_by("item_id"), err.sort_by("item_id")


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes the same file as ``src``: a hard link (a copy where links are not possible), atomically."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.samefile(src, dst):
            return
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _publish(root: Path, meta: pa.Table, shards: int) -> None:
    """Make ``audio/`` and ``images/`` hold exactly the prepared items' files (from their shards)."""
    wanted: dict[str, set[str]] = {layout.AUDIO_DIR: set(), layout.IMAGES_DIR: set()}
    for folder in wanted:
        (root / folder).mkdir(parents=True, exist_ok=True)
    shard_of = {}
    for i in range(shards):
        ids = pq.read_table(root / layout.shard_metadata_rel(i), columns=["item_id"]).column("item_id").to_pylist()
        shard_of.update({item: i for item in ids})
    for rec in meta.select(["item_id", "audio_path", "image_path"]).to_pylist():
        shard = root / layout.shard_rel(shard_of[rec["item_id"]])
        for rel in (rec["audio_path"], rec["image_path"]):
            _link(shard / rel, root / rel)
            wanted[rel.split("/", 1)[0]].add(Path(rel).name)
    for folder, names in wanted.items():  # files of items no longer prepared (an --overwrite with fewer videos)
        for f in (root / folder).iterdir():
            if f.is_file() and f.name not in names:
                f.unlink()

"""The library function behind ``seeing-sound pairs import``: real (image, audio) pairs or videos -> a pairs dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.config import resolve
from seeing_sound.dataset import layout
from seeing_sound.dataset.writer import write_card
from seeing_sound.engine import EngineConfig, Outcome, atomic_write, command_run
from seeing_sound.engine.run import check_inputs
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pairs.config import PairsImportConfig
from seeing_sound.pairs.sources import list_pairs
from seeing_sound.pairs.stage import ERRORS_SCHEMA, IMAGES_DIR, PairsImportStage, errors_rel

log = logging.getLogger(__name__)

ERRORS = "import/errors.parquet"


@dataclass
class ImportReport:
    """What ``pairs import`` did: ``in == out + skipped + failed``."""

    root: Path
    counts: dict[str, Any]
    errors: dict[str, int] = field(default_factory=dict)
    shards_run: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    complete: bool = True  # False after a shard slice: errors.parquet and the card are the finishing run's

    def summary(self) -> str:
        c = self.counts
        if not self.complete:
            return (
                f"slice done: {c['out']} of {c['in']} inputs imported in {self.shards_run} shards, "
                f"{self.shards_skipped} already done; {self.seconds:.1f} s "
                "(run once without --shard-slice to finish the dataset)"
            )
        reasons = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "none"
        return "\n".join(
            [
                f"dataset     {self.root}",
                f"in          {c['in']} ({c['pairs_in']} image+audio pairs, {c['videos_in']} videos, "
                f"{c['unpaired_or_ambiguous']} unpaired or ambiguous; {c['ignored_files']} other files ignored)",
                f"out         {c['out']} pairs, {c['audio_hours'] * 60:.1f} min of audio",
                f"skipped     {c['skipped']}, failed {c['failed']} ({reasons}); see {self.root / ERRORS}",
                f"shards      {self.shards_run} run, {self.shards_skipped} already done; {self.seconds:.1f} s",
            ]
        )


def import_pairs(
    src: str | Path,
    out: str | Path,
    config: PairsImportConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> ImportReport:
    """Turn the real pairs under ``src`` into a pairs dataset at ``out`` (resumable; see the module docs).

    ``src`` holds image + audio files matched by stem (``a/x.jpg`` + ``a/x.wav``) and/or videos
    (center frame + whole audio track, as ``bench prepare`` extracts them). Images are copied into
    ``out/images/`` (a video's frame written as PNG); audio is stored at ``config.sample_rate`` mono
    16-bit in the sonify layout, so ``features`` and ``train`` read the dataset as they read a
    sonified one. Unpaired, ambiguous and unreadable inputs are rows of ``out/import/errors.parquet``.
    ``engine_config``: engine (local or Ray), shard slice and retries; a slice imports its own
    shards, and a last run without the slice writes ``import/errors.parquet`` and the dataset card.
    """
    cfg = resolve(PairsImportConfig, config, options)
    check_inputs({"src": src})
    src_root = Path(src).resolve()
    root = Path(out)
    if root.resolve() == src_root or src_root in root.resolve().parents:
        raise SeeingSoundError(f"out {out} is inside src {src}: the dataset's own files would become inputs")
    listing = list_pairs(src_root)
    items = listing.items
    size = cfg.pairs_per_shard
    groups = tuple(tuple(items[i : i + size]) for i in range(0, len(items), size))
    stage = PairsImportStage(cfg, str(src_root), groups)
    log.info("pairs import: %d inputs in %d shards -> %s", len(items), len(groups), root)
    with command_run(
        "pairs import", root, engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress
    ) as run:
        report = run.stage(stage)
        if not run.finishing:  # the card and the error list cover every shard: the finishing run writes them
            run.slice_done(f"{root} (its card and {ERRORS})", report)
            return ImportReport(
                root=root,
                counts={"in": report.items_in, "out": report.items_out},
                errors=report.errors,
                shards_run=report.ran,
                shards_skipped=report.skipped,
                seconds=report.seconds,
                complete=False,
            )
        errs = [pq.read_table(root / errors_rel(i), schema=ERRORS_SCHEMA) for i in range(len(groups))]
        errs.append(pa.Table.from_pylist(listing.skipped, schema=ERRORS_SCHEMA))
        err = pa.concat_tables(errs).sort_by("pair_id")
        with atomic_write(root / ERRORS) as fh:
            pq.write_table(err, fh)
        shards = [{"index": s.shard, "pairs": s.items_out} for s in report.shards]
        out_pairs = sum(s["pairs"] for s in shards)
        seconds = 0.0
        for i in range(len(groups)):
            n = pq.read_table(root / layout.metadata_rel(i), columns=["num_samples"]).column("num_samples")
            seconds += sum(int(v) for v in n.to_pylist()) / cfg.sample_rate
        statuses = err.column("status").to_pylist()
        reasons: dict[str, int] = {}
        for r in err.column("reason").to_pylist():
            reasons[str(r)] = reasons.get(str(r), 0) + 1
        counts: dict[str, Any] = {
            "in": len(items) + len(listing.skipped),
            "pairs_in": sum(i.kind == "pair" for i in items),
            "videos_in": sum(i.kind == "video" for i in items),
            "unpaired_or_ambiguous": len(listing.skipped),
            "ignored_files": listing.ignored,
            "out": out_pairs,
            "skipped": statuses.count("skipped"),
            "failed": statuses.count("failed"),
            "audio_hours": round(seconds / 3600, 6),
            "errors": dict(sorted(reasons.items())),
        }
        if counts["in"] != counts["out"] + counts["skipped"] + counts["failed"]:  # pragma: no cover - a bug
            raise SeeingSoundError(f"pairs import lost items: {counts}")
        write_card(
            root,
            images_root=IMAGES_DIR,
            sample_rate=cfg.sample_rate,
            audio_format=cfg.audio_format,
            shards=shards,
            source={"kind": "import", "src": str(src_root), "real_pairs": True},
            params=cfg.to_dict(),
            counts=counts,
        )
        imported = ImportReport(
            root=root,
            counts=counts,
            errors=counts["errors"],
            shards_run=report.ran,
            shards_skipped=report.skipped,
            seconds=report.seconds,
        )
        outcome = Outcome(counts["in"], counts["out"], counts["failed"], counts["skipped"], counts["errors"])
        hint = "check that images and audio files share their stems, or are videos"
        run.finish(outcome, noun="input", hint=hint, report=imported)
    return imported

"""``bench prepare``: videos -> center frames (PNG) and whole audio tracks (16 kHz mono WAV), resumably."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.bench import layout
from seeing_sound.bench.config import BenchConfig
from seeing_sound.bench.sources import BenchItem
from seeing_sound.bench.video import BadVideo, decode_video
from seeing_sound.dataset.audio_files import encode, quantize_pcm16
from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment

log = logging.getLogger(__name__)

#: format of the files a shard writes; part of the fingerprint, so a change redoes every shard
ITEM_FORMAT = {"audio": "wav/PCM_16/mono", "image": "png/rgb24", "frame": "center"}


def error_row(item: BenchItem, status: str, reason: str, detail: str) -> dict:
    return {
        "item_id": item.item_id,
        "label": item.label,
        "split": item.split,
        "source": item.source,
        "status": status,
        "reason": reason,
        "detail": detail[:300],
    }


@dataclass
class BenchPrepareStage(Stage):
    config: BenchConfig
    shard_items: tuple[tuple[BenchItem, ...], ...] = field(default_factory=tuple)
    name: str = "bench"

    def plan(self) -> list[ShardTask]:
        return [ShardTask(i, items) for i, items in enumerate(self.shard_items)]

    def outputs(self, index: int) -> list[str]:
        return [layout.shard_rel(index)]

    def fingerprint(self) -> dict:
        return {"config": self.config.fingerprint(), "format": layout.BENCH_FORMAT_VERSION, "item": ITEM_FORMAT}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from PIL import Image

        base = scratch / layout.shard_rel(task.index)
        (base / layout.AUDIO_DIR).mkdir(parents=True)
        (base / layout.IMAGES_DIR).mkdir()
        rows: list[dict] = []
        errors: list[dict] = []
        for item in task.items:
            try:
                got = decode_video(item.path, self.config.sample_rate)
            except BadVideo as exc:
                errors.append(error_row(item, "failed", exc.reason, exc.detail))
                continue
            except (OSError, MemoryError) as exc:  # unreadable mid-way: record, keep going
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                errors.append(error_row(item, "failed", "io_error", str(exc)))
                continue
            audio_rel, image_rel = layout.audio_rel(item.item_id), layout.image_rel(item.item_id)
            pcm = quantize_pcm16(got.audio)
            (base / audio_rel).write_bytes(encode(pcm, self.config.sample_rate, "wav"))
            Image.fromarray(got.image).save(base / image_rel, format="PNG")
            rows.append(
                {
                    "item_id": item.item_id,
                    "label": item.label,
                    "split": item.split,
                    "source": item.source,
                    "audio_path": audio_rel,
                    "image_path": image_rel,
                    "frame_time_s": round(got.frame_time_s, 6),
                    "duration_s": pcm.shape[0] / self.config.sample_rate,
                }
            )
        pq.write_table(pa.Table.from_pylist(rows, schema=layout.METADATA_SCHEMA), base / layout.METADATA)
        pq.write_table(pa.Table.from_pylist(errors, schema=layout.ERRORS_SCHEMA), base / layout.ERRORS)
        reasons: dict[str, int] = {}
        for e in errors:
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        return ShardStats(
            shard=task.index,
            items_in=len(task.items),
            items_out=len(rows),
            errors=reasons,
            extra={"audio_seconds": round(sum(r["duration_s"] for r in rows), 6)},
        )

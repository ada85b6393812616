"""The ``pairs import`` stage: each shard of real pairs -> dataset shard (metadata + audio) + its images.

A shard writes, like ``sonify``'s mix stage, ``metadata/shard-NNNNNN.parquet`` and
``audio/shard-NNNNNN/`` (through :func:`~seeing_sound.dataset.writer.write_pairs_shard`), plus
``images/shard-NNNNNN/`` (the image file copied as it is, or the video's center frame as PNG) and
``import/errors/shard-NNNNNN.parquet`` (the pairs that failed, with their reason).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.dataset import layout
from seeing_sound.dataset.writer import write_pairs_shard
from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment, shard_name
from seeing_sound.hashing import file_sha256
from seeing_sound.pairs.config import PairsImportConfig
from seeing_sound.pairs.sources import ImportItem, error_row

IMAGES_DIR = "images"
ERRORS_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("source", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


def images_rel(index: int) -> str:
    return f"{IMAGES_DIR}/{shard_name(index)}"


def errors_rel(index: int) -> str:
    return f"import/errors/{shard_name(index)}.parquet"


def _read_audio(path: Path, rate: int) -> np.ndarray:
    from seeing_sound.audio.io import stream_mono

    blocks = list(stream_mono(path, rate))
    x = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if not x.size:
        from seeing_sound.audio.io import BadAudio

        raise BadAudio("empty", "no samples")
    return x


def _check_image(path: Path) -> None:
    from seeing_sound.imaging import decode

    # As features will decode it: a bomb, a truncated, non-image or unconvertible file fails here, not there.
    # A JPEG decodes at 1/8 scale: every byte is still read, at a fraction of the cost.
    decode(path, draft=(1, 1))


@dataclass
class PairsImportStage(Stage):
    config: PairsImportConfig
    src: str
    groups: tuple[tuple[ImportItem, ...], ...] = ()
    name: str = field(init=False, default="pairs-import")

    def plan(self) -> list[ShardTask]:
        return [ShardTask(i, items) for i, items in enumerate(self.groups)]

    def outputs(self, index: int) -> list[str]:
        return [layout.audio_dir_rel(index), layout.metadata_rel(index), images_rel(index), errors_rel(index)]

    def fingerprint(self) -> dict:
        return {"config": self.config.fingerprint(), "src": self.src}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from PIL import Image

        from seeing_sound.audio.io import BadAudio
        from seeing_sound.bench.video import BadVideo, decode_video

        cfg, src = self.config, Path(self.src)
        image_dir = scratch / images_rel(task.index)
        image_dir.mkdir(parents=True)
        rows: list[dict] = []
        audios: list[np.ndarray] = []
        errors: list[dict] = []
        for item in task.items:
            source = item.video or f"{item.image} + {item.audio}"
            try:
                if item.kind == "video":
                    got = decode_video(src / item.video, cfg.sample_rate)
                    name = f"{item.pair_id}.png"
                    Image.fromarray(got.image).save(image_dir / name, format="PNG")
                    audio, offset, audio_src = got.audio, got.frame_time_s, item.video
                else:
                    _check_image(src / item.image)
                    audio = _read_audio(src / item.audio, cfg.sample_rate)
                    name = f"{item.pair_id}{Path(item.image).suffix.lower()}"
                    shutil.copyfile(src / item.image, image_dir / name)
                    offset, audio_src = None, item.audio
            except BadVideo as exc:
                errors.append(error_row(item.pair_id, source, "failed", exc.reason, exc.detail))
                continue
            except BadAudio as exc:
                errors.append(error_row(item.pair_id, source, "failed", f"audio_{exc.reason}", exc.detail))
                continue
            except Exception as exc:  # PIL / OS errors: the item is recorded, the shard goes on
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                reason = "image_unreadable" if item.kind == "pair" else "io_error"
                errors.append(error_row(item.pair_id, source, "failed", reason, f"{type(exc).__name__}: {exc}"))
                continue
            rel = f"{shard_name(task.index)}/{name}"
            rows.append(
                {
                    "pair_id": item.pair_id,
                    "image_id": item.pair_id,
                    "image_path": rel,
                    "image_sha256": file_sha256(image_dir / name),
                    "scene": item.label or None,
                    "seed": None,
                    "mixture_gain_db": 0.0,
                    # provenance in the recipe's place: one real recording, no pool chunk
                    "components": [
                        {"concept": item.label or None, "chunk_source": audio_src, "chunk_offset_s": offset}
                    ],
                }
            )
            audios.append(np.clip(audio, -1.0, 1.0))
        write_pairs_shard(scratch, task.index, rows, audios, sample_rate=cfg.sample_rate, fmt=cfg.audio_format)
        target = scratch / errors_rel(task.index)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA), target)
        reasons: dict[str, int] = {}
        for e in errors:
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=len(rows), errors=reasons)

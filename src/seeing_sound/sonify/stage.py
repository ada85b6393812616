"""The ``mix`` stage: render each pair's recipe from the pool and write dataset shards."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.parquet as pq

from seeing_sound.audio.mix import mix_from_pool
from seeing_sound.dataset import layout
from seeing_sound.dataset.image_store import is_folder_root, open_store
from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.dataset.writer import write_pairs_shard
from seeing_sound.engine import ShardStats, ShardTask, Stage, shard_name
from seeing_sound.sonify.config import SonifyConfig


def inputs_rel(index: int) -> str:
    return f"_stages/mix/inputs/{shard_name(index)}.parquet"


def plan_mix(counts: Sequence[int]) -> list[ShardTask]:
    """One task per recipe shard: the path of its recipe file (relative to the dataset root) and its pair count."""
    return [ShardTask(i, (inputs_rel(i),), count=int(n)) for i, n in enumerate(counts)]


def _component(row: dict, gain: float) -> dict:
    keys = (
        "concept_index",
        "model",
        "object",
        "sound",
        "concept",
        "chunk_id",
        "chunk_source",
        "chunk_offset_s",
        "chunk_description",
        "cosine",
        "score",
        "threshold",
        "n_candidates",
        "chunk_lufs",
        "target_lufs",
    )
    out = {k: row[k] for k in keys} | {"gain_db": gain}
    if "grounding" in row:  # recipes of CLIP-checked concepts only (docs/grounding.md)
        out["grounding"] = row["grounding"]
    return out


@dataclass
class MixStage(Stage):
    """Config only (O(1) in the number of pairs): where the dataset, pool and recipes are.

    Each task names its recipe file on shared storage (written by ``sonify`` before the stage
    runs, :func:`plan_mix`); :meth:`setup` opens the pool once per worker. ``counts`` (pairs per
    shard) is only for callers that plan with ``stage.plan()``.
    """

    config: SonifyConfig
    out: str
    pool_root: str
    images_root: str
    inputs_digest: str  # the recipes: chunk ids and loudness targets (so topk, lufs_range, ... are in it)
    counts: tuple | None = None
    exclusions: dict = field(default_factory=dict)  # {"exclude_images"/"exclude_chunks": sha256 of the ids}
    name: str = field(init=False, default="mix")

    def plan(self) -> list[ShardTask]:
        if self.counts is None:
            return list(super().plan())
        return plan_mix(self.counts)

    def setup(self) -> None:
        from seeing_sound.pool import AudioPool

        self.pool = AudioPool.open(self.pool_root)

    def outputs(self, index: int) -> list[str]:
        outs = [layout.audio_dir_rel(index), layout.metadata_rel(index)]
        return [*outs, layout.webdataset_rel(index)] if self.config.copy_images else outs

    def fingerprint(self) -> dict:
        # Only the fields the mix reads: the others (retrieval, concepts) reach it through the recipes.
        cfg = self.config
        return {
            "inputs": self.inputs_digest,
            "seed": cfg.seed,
            "audio_format": cfg.audio_format,
            "copy_images": cfg.copy_images,
            **self.exclusions,  # the recipes reflect them too; named here so a changed list is never reused
        }

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        self.ensure_setup()
        pool = self.pool
        rel = task.items[0] if task.items and isinstance(task.items[0], str) else inputs_rel(task.index)
        recipe = pq.read_table(Path(self.out) / rel).to_pylist()
        pairs: dict[str, list[dict]] = {}
        for row in recipe:
            pairs.setdefault(row["pair_id"], []).append(row)
        rows: list[dict] = []
        audios: list[np.ndarray] = []
        images: list[str | None] = []
        errors: dict[str, int] = {}

        def skip(reason: str) -> None:
            errors[reason] = errors.get(reason, 0) + 1

        for pair_id, comps in pairs.items():
            lufs = np.array([c["chunk_lufs"] for c in comps])
            ids = [c["chunk_id"] for c in comps]
            if not np.isfinite(lufs).all():  # a silent chunk cannot be normalized: record, skip
                skip("silent_chunk")
                continue
            if any(not 0 <= i < len(pool) for i in ids):
                skip("chunk_not_in_pool")
                continue
            image = None
            if self.config.copy_images:  # from the folder, shards or tables the images came from
                image = comps[0]["image_path"]
                try:
                    if is_folder_root(self.images_root):
                        safe_join(self.images_root, image)
                except UnsafePathError:
                    skip("unsafe_path")
                    continue
                if image not in open_store(self.images_root):
                    skip("image_missing")
                    continue
            gains, g_mix, mix = mix_from_pool(pool, ids, lufs, np.array([c["target_lufs"] for c in comps]))
            first = comps[0]
            rows.append(
                {
                    "pair_id": pair_id,
                    "image_id": first["image_id"],
                    "image_path": first["image_path"],
                    "image_sha256": first["image_sha256"],
                    "scene": first["scene"],
                    "seed": self.config.seed,
                    "components": [_component(c, float(g)) for c, g in zip(comps, gains, strict=True)],
                    "mixture_gain_db": float(g_mix),
                }
            )
            audios.append(mix)
            images.append(image)
        write_pairs_shard(scratch, task.index, rows, audios, sample_rate=pool.sample_rate, fmt=self.config.audio_format)
        if self.config.copy_images:
            self._write_tar(scratch, task.index, scratch / layout.metadata_rel(task.index), images)
        return ShardStats(
            task.index, len(pairs), len(rows), errors, extra={"chunks": sorted({c["chunk_id"] for c in recipe})}
        )

    def _write_tar(self, scratch: Path, index: int, metadata: Path, images: list[str | None]) -> None:
        """WebDataset shard: <key>.<image ext>, <key>.<audio ext>, <key>.json per pair (deterministic tar)."""
        target = scratch / layout.webdataset_rel(index)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
            for n, (row, image) in enumerate(zip(pq.read_table(metadata).to_pylist(), images, strict=True)):
                key = f"{index:06d}{n:06d}"
                if image is None:  # copy_images checks every image path before any shard runs
                    raise ValueError(f"pair {row['pair_id']} has no image to copy")
                meta = json.dumps(row, sort_keys=True, default=str).encode()
                for name, data in (
                    (f"{key}{PurePosixPath(image).suffix.lower()}", open_store(self.images_root).read(image)),
                    (f"{key}.{self.config.audio_format}", (scratch / row["audio_path"]).read_bytes()),
                    (f"{key}.json", meta),
                ):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))

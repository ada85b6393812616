"""The ``score`` stage: one Parquet part of pair scores per dataset metadata shard, resumably.

Each pair's mixture goes through Wav2CLIP and its image through CLIP's image tower (the encoders of
``seeing-sound evaluate``, :mod:`seeing_sound.evaluation`), and its AIS is their cosine
(:func:`seeing_sound.evaluation.metrics.paired_cosine`, the per-item AIS of Table 1). A pair whose
audio or image cannot be read (missing, unsafe path, undecodable, too short, non-finite) is a row
with a null score and its ``error``, so every pair has a row and ``in == scored + failed``.

Parts go to ``parts/<score key>/shard-NNNNNN.parquet``: another pair of models is another key, so
its parts sit beside the first ones (:mod:`seeing_sound.scoring.run` merges them as columns).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment, shard_name
from seeing_sound.evaluation import metrics as M
from seeing_sound.scoring.config import ScoreConfig

log = logging.getLogger(__name__)

#: a change here redoes every shard (part of the fingerprint)
SCORE_VERSION = 1
#: the retrieval scores each component of a recipe stores (``dataset.schema.COMPONENT``)
RETRIEVAL = ("cosine", "score")

PART_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("row", pa.int64()),
        ("image_id", pa.string()),
        ("ais", pa.float64()),
        ("error", pa.string()),
        ("n_sources", pa.int32()),
        ("retrieval_cosine_mean", pa.float64()),
        ("retrieval_cosine_min", pa.float64()),
        ("retrieval_score_mean", pa.float64()),
        ("retrieval_score_min", pa.float64()),
    ]
)


def part_rel(key: str, index: int) -> str:
    return f"parts/{key}/{shard_name(index)}.parquet"


def retrieval_summary(components: list[dict] | None) -> dict[str, Any]:
    """``n_sources`` and the mean and min of the components' stored retrieval ``cosine`` and ``score``
    (None where no component has a finite value)."""
    comps = components or []
    out: dict[str, Any] = {"n_sources": len(comps)}
    for name in RETRIEVAL:
        values = [float(c[name]) for c in comps if c.get(name) is not None and np.isfinite(c[name])]
        out[f"retrieval_{name}_mean"] = float(np.mean(values)) if values else None
        out[f"retrieval_{name}_min"] = float(min(values)) if values else None
    return out


def evaluate_config(cfg: ScoreConfig):
    """The :class:`~seeing_sound.evaluation.config.EvaluateConfig` of AIS alone, with these models."""
    from seeing_sound.evaluation.config import EvaluateConfig

    return EvaluateConfig(
        metrics=("ais",), clip=cfg.clip, wav2clip=cfg.wav2clip, device=cfg.device,
        batch_size=cfg.batch_size, max_pixels=cfg.max_pixels,
    )  # fmt: skip


def load_encoders(cfg: ScoreConfig):
    """Wav2CLIP and CLIP as ``evaluate`` loads them (a missing checkpoint or a dim mismatch stops the run)."""
    from seeing_sound.evaluation.run import Encoders

    return Encoders.load(evaluate_config(cfg))


@dataclass
class PairScoreStage(Stage):
    """Scores of one dataset with one pair of models (``key``). Config only; the encoders load in setup."""

    dataset: str
    key: str
    models: dict  # the encoders' identities (model, revision, dim): the fingerprint's
    config: ScoreConfig = field(default_factory=ScoreConfig)
    name: str = field(init=False, default="score")

    def __post_init__(self) -> None:
        self.name = f"score-{self.key}"

    def _dataset(self):
        from seeing_sound.dataset import PairsDataset

        return PairsDataset.open(self.dataset, images_root=self.config.images_root)

    def plan(self) -> list[ShardTask]:
        ds = self._dataset()
        return [ShardTask(index=k, items=tuple(ds.shard_rows(k))) for k in range(ds.num_shards)]

    def outputs(self, index: int) -> list[str]:
        return [part_rel(self.key, index)]

    def fingerprint(self) -> dict:
        from seeing_sound.imaging import DECODER

        return {"models": self.models, "max_pixels": self.config.max_pixels, "decoder": DECODER,
                "version": SCORE_VERSION}  # fmt: skip

    def setup(self) -> None:
        self.ds = self._dataset()
        self.enc = load_encoders(self.config)

    # --- reading one pair: (value, None) or (None, reason) ---------------------------------------

    def _audio(self, row: int) -> tuple[np.ndarray | None, str | None]:
        from seeing_sound.audio.io import BadAudio, stream_mono
        from seeing_sound.dataset.paths import UnsafePathError
        from seeing_sound.evaluation.wav2clip import SAMPLE_RATE

        try:
            path = self.ds.audio_path(row)
        except UnsafePathError:
            return None, "audio_path_unsafe"
        if not path.is_file():
            return None, "audio_missing"
        try:
            blocks = list(stream_mono(path, SAMPLE_RATE))  # as evaluate reads audio: mono, 16 kHz (soxr)
        except BadAudio as exc:
            return None, f"audio_unreadable: {exc.reason}"
        except Exception as exc:  # a corrupt file must not stop a million-pair run
            reraise_environment(exc)
            return None, f"audio_unreadable: {type(exc).__name__}"
        wave = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        if wave.size < self.enc.wav2clip.min_samples:
            return None, "audio_too_short" if wave.size else "audio_empty"
        if not np.all(np.isfinite(wave)):
            return None, "audio_not_finite"
        return wave, None

    def _image(self, row: int) -> tuple[np.ndarray | None, str | None]:
        from seeing_sound.dataset.image_store import ImageNotFoundError
        from seeing_sound.dataset.paths import UnsafePathError
        from seeing_sound.imaging import DecodeError

        try:
            source = self.ds.image_source(row)  # a file in the images folder, or bytes from a shard or table
        except UnsafePathError:
            return None, "image_path_unsafe"
        except ImageNotFoundError:
            return None, "image_missing"
        if isinstance(source, Path) and not source.is_file():
            return None, "image_missing"
        try:
            return self.enc.clip.prepare(source), None
        except DecodeError as exc:
            return None, f"image_unreadable: {exc.reason}"
        except Exception as exc:  # a bad file must not stop the others
            reraise_environment(exc)
            return None, f"image_unreadable: {type(exc).__name__}"

    # --- one shard ------------------------------------------------------------------------------

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        rows = [int(r) for r in task.items]
        meta = self.ds.metadata.take(pa.array(rows, pa.int64())).select(["pair_id", "image_id", "components"])
        records: list[dict[str, Any]] = []
        for row, m in zip(rows, meta.to_pylist(), strict=True):
            rec = {"pair_id": str(m["pair_id"]), "row": row, "image_id": m["image_id"], "ais": None, "error": None}
            rec.update(retrieval_summary(m["components"]))
            records.append(rec)
        batch: list[tuple[int, np.ndarray, np.ndarray]] = []  # (position in records, wave, pixels)

        def flush() -> None:
            if not batch:
                return
            aud = self.enc.wav2clip.embed([w for _, w, _ in batch])
            img = self.enc.clip.embed([p for _, _, p in batch])
            ok = np.isfinite(aud).all(axis=1) & np.isfinite(img).all(axis=1)
            ok &= (np.linalg.norm(aud, axis=1) > 0) & (np.linalg.norm(img, axis=1) > 0)
            cos = M.paired_cosine(aud[ok], img[ok]) if ok.any() else np.zeros(0)
            it = iter(cos.tolist())
            for (pos, _, _), good in zip(batch, ok.tolist(), strict=True):
                if good:
                    records[pos]["ais"] = float(next(it))
                else:
                    records[pos]["error"] = "embedding_not_usable"  # non-finite or all-zero: no cosine
            batch.clear()

        for pos, rec in enumerate(records):
            wave, reason = self._audio(rec["row"])
            pixels = None
            if reason is None:
                pixels, reason = self._image(rec["row"])
            if reason is not None:
                rec["error"] = reason
                continue
            batch.append((pos, wave, pixels))  # type: ignore[arg-type]  # both read when reason is None
            if len(batch) >= self.config.batch_size:
                flush()
        flush()
        target = scratch / self.outputs(task.index)[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(records, schema=PART_SCHEMA), target)
        errors: dict[str, int] = {}
        for rec in records:
            if rec["error"]:
                errors[rec["error"]] = errors.get(rec["error"], 0) + 1
        scored = sum(1 for rec in records if rec["error"] is None)
        return ShardStats(shard=task.index, items_in=len(records), items_out=scored, errors=errors)

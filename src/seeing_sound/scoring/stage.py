"""The ``score`` stage: one Parquet part of pair scores per dataset metadata shard, resumably.

Each pair's mixture goes through Wav2CLIP and its image through CLIP's image tower (the encoders of
``seeing-sound evaluate``, :mod:`seeing_sound.evaluation`), and its AIS is their cosine
(:func:`seeing_sound.evaluation.metrics.paired_cosine`, the per-item AIS of Table 1). A pair whose
audio or image cannot be read (missing, unsafe path, undecodable, too short, non-finite) is a row
with a null score and its ``error``, so every pair has a row and ``in == scored + failed``.

Parts go to ``parts/<score key>/shard-NNNNNN.parquet``: another pair of models is another key, so
its parts sit beside the first ones (:mod:`seeing_sound.scoring.run` merges them as columns).

A shard's work is its pairs' identities, ``(row, pair_id, mixture_sha256, image_sha256)`` from the
dataset's metadata (the plan's items, so the engine's plan digest covers them), and each part row
keeps them: a dataset sonified again into the same folder (same pair ids, other mixtures) is another
plan, refused as a :class:`~seeing_sound.errors.StageMismatchError` unless ``overwrite``, never
merged with the old scores.

Every image and every mixture is embedded alone (a batch of one) and each cosine computed alone,
so a score does not depend on ``batch_size``, on which pairs share a model call or on where a run
resumed: CLIP gives other last bits for one image in batches of another shape.
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
SCORE_VERSION = 2
#: images per CLIP call: one, so an image's embedding does not depend on the batch it came in
IMAGE_BATCH = 1
#: the retrieval scores each component of a recipe stores (``dataset.schema.COMPONENT``)
RETRIEVAL = ("cosine", "score")

PART_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("row", pa.int64()),
        ("image_id", pa.string()),
        ("mixture_sha256", pa.string()),
        ("image_sha256", pa.string()),
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
        batch_size=IMAGE_BATCH, max_pixels=cfg.max_pixels,
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
        """One task per metadata shard; its items are ``(row, pair_id, mixture_sha256, image_sha256)``:
        a changed pair (another mixture or image under the same id) is another plan."""
        from seeing_sound.dataset import layout
        from seeing_sound.model.training.pair_scores import IDENTITY_COLUMNS, dataset_pairs

        ds = self._dataset()
        tasks = []
        for k, shard in enumerate(ds.card["shards"]):  # the identity columns only, not the components
            file = ds.root / layout.metadata_rel(shard["index"])
            names = pq.read_schema(file).names
            pairs = dataset_pairs(pq.read_table(file, columns=[c for c in IDENTITY_COLUMNS if c in names]))
            rows = ds.shard_rows(k)
            if len(pairs) != len(rows):
                from seeing_sound.errors import SeeingSoundError

                raise SeeingSoundError(f"{file} holds {len(pairs)} pairs, its dataset card says {len(rows)}")
            tasks.append(ShardTask(index=k, items=tuple((row, *p) for row, p in zip(rows, pairs, strict=True))))
        return tasks

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
        from seeing_sound.model.training.pair_scores import dataset_pairs

        rows = [int(item[0]) for item in task.items]
        meta = self.ds.metadata.take(pa.array(rows, pa.int64()))
        now = dataset_pairs(meta)
        if [tuple(item[1:]) for item in task.items] != now:  # the dataset changed under the plan: no stale part
            from seeing_sound.errors import StageMismatchError

            raise StageMismatchError(
                f"{self.dataset}: the pairs of metadata shard {task.index} changed since this run was planned; "
                "run the command again"
            )
        records: list[dict[str, Any]] = []
        for row, m, (pid, mixture, image) in zip(
            rows, meta.select(["image_id", "components"]).to_pylist(), now, strict=True
        ):
            rec = {"pair_id": pid, "row": row, "image_id": m["image_id"], "mixture_sha256": mixture,
                   "image_sha256": image, "ais": None, "error": None}  # fmt: skip
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
            for i, ((pos, _, _), good) in enumerate(zip(batch, ok.tolist(), strict=True)):
                if good:  # each pair's cosine alone: no dependence on the rows beside it
                    records[pos]["ais"] = float(M.paired_cosine(aud[i : i + 1], img[i : i + 1])[0])
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

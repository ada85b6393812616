"""The ``leakage`` features stage: images -> phash (+ CLIP), audio -> landmark fingerprints, per shard, resumably.

Fingerprinting and embedding the training side is the expensive part of a leakage check (a pool's
chunks, a dataset's images); it runs as an engine stage, so a killed run resumes where it stopped
and a second check against another benchmark reuses the finished shards. Matching is cheap and runs
in :mod:`seeing_sound.leakage.run`.

Each shard writes one ``.npz`` under ``_features/<side>-<kind>/``:

* images: ``keys`` (n,), ``ok`` (n,) bool, ``reason`` (n,) str ('' when ok), ``phash`` (n, 8) uint8
  (the 64 bits packed), ``clip`` (n, D) float32 unit vectors (absent without CLIP);
* audio: ``keys``, ``ok``, ``reason``, ``counts`` (n,) hashes per item, ``frames`` (n,), and the
  concatenated ``hashes`` int64 / ``times`` int32 of every item in order.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.dataset.image_store import open_ref
from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment, shard_name
from seeing_sound.imaging import DecodeError, decode
from seeing_sound.leakage import fingerprint as fp
from seeing_sound.leakage.config import LeakageConfig

log = logging.getLogger(__name__)

KINDS = ("images", "audio")
#: a change here redoes every shard (part of the fingerprint)
FEATURE_VERSION = {"phash": "imagehash.phash 8x8", "fingerprint": f"landmarks fft{fp.N_FFT} hop{fp.HOP} v1"}


def features_rel(side: str, kind: str, index: int) -> str:
    return f"_features/{side}-{kind}/{shard_name(index)}.npz"


def _clip_embedder(cfg: LeakageConfig) -> Any:
    """paths -> (n, D) unit vectors; what :meth:`LeakageFeatureStage.setup` loads for an image side."""
    from seeing_sound.studies.memorization import ClipImageEmbedder

    return ClipImageEmbedder(cfg.clip, device=cfg.device, batch_size=cfg.batch_size)


def _phash(path: Path | bytes) -> np.ndarray:
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - the studies extra
        raise ImportError("the leakage check needs imagehash: pip install 'seeing-sound[studies]'") from exc
    # decoded as every stage decodes: 16-bit scaled, alpha on white, EXIF orientation, size bounded
    bits = np.asarray(imagehash.phash(decode(path).image).hash, dtype=bool).reshape(-1)
    return np.packbits(bits)


def _read_audio(item: tuple, pool: Any) -> tuple[np.ndarray, int]:
    _key, path, chunk_id = item
    if chunk_id >= 0:
        if pool is None:
            raise ValueError("chunk items need a pool")
        return pool.chunk(chunk_id), pool.sample_rate
    from seeing_sound.audio.io import stream_mono

    blocks = list(stream_mono(path, fp.FP_RATE))
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), fp.FP_RATE


@dataclass
class LeakageFeatureStage(Stage):
    """Features of one side (``train`` or ``bench-<name>``) and kind (images or audio). Config only."""

    config: LeakageConfig
    side: str
    kind: str
    #: shards of items: images (key, path); audio (key, path, chunk_id) with chunk_id -1 for a file
    groups: tuple[tuple[tuple, ...], ...] = ()
    pool_root: str | None = None
    name: str = field(init=False, default="leakage")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self.name = f"leakage-{self.side}-{self.kind}"

    def plan(self) -> list[ShardTask]:
        return [ShardTask(i, items) for i, items in enumerate(self.groups)]

    def outputs(self, index: int) -> list[str]:
        return [features_rel(self.side, self.kind, index)]

    def setup(self) -> None:
        """CLIP for an image side (with ``use_clip``), the opened pool for chunk audio: once per worker."""
        self.clip: Any = _clip_embedder(self.config) if self.kind == "images" and self.config.use_clip else None
        self.pool: Any = None
        if self.kind == "audio" and self.pool_root is not None:
            from seeing_sound.pool import AudioPool

            self.pool = AudioPool.open(self.pool_root)

    def fingerprint(self) -> dict:
        cfg = self.config
        if self.kind == "images":
            return {"clip": cfg.clip if cfg.use_clip else None, "version": FEATURE_VERSION["phash"]}
        return {"version": FEATURE_VERSION["fingerprint"], "pool": self.pool_root}

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        target = scratch / features_rel(self.side, self.kind, task.index)
        target.parent.mkdir(parents=True, exist_ok=True)
        arrays = self._images(task.items) if self.kind == "images" else self._audio(task.items)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
        target.write_bytes(buf.getvalue())
        reasons: dict[str, int] = {}
        for r in arrays["reason"].tolist():
            if r:
                reasons[r] = reasons.get(r, 0) + 1
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=int(arrays["ok"].sum()), errors=reasons)

    def _images(self, items: tuple) -> dict[str, np.ndarray]:
        n = len(items)
        ok = np.zeros(n, bool)
        reason = [""] * n
        bits = np.zeros((n, 8), np.uint8)
        for i, (_key, path) in enumerate(items):
            try:
                bits[i] = _phash(open_ref(path))  # a file, or bytes from a shard or table
                ok[i] = True
            except ImportError:
                raise
            except FileNotFoundError:
                reason[i] = "image_missing"
            except DecodeError as exc:  # Pillow's exception by name, as features names it; our refusals by reason
                reason[i] = f"image_unreadable: {type(exc.__cause__).__name__ if exc.__cause__ else exc.reason}"
            except Exception as exc:  # PIL raises many kinds; the item is recorded, the run goes on
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                reason[i] = f"image_unreadable: {type(exc).__name__}"
        out = {"keys": np.array([k for k, _ in items], dtype=str), "ok": ok, "reason": np.array(reason, dtype=str)}
        out["phash"] = bits
        if self.config.use_clip:
            good = [items[i][1] for i in np.flatnonzero(ok)]  # files or source_refs: the embedder reads both
            emb = self.clip(good) if good else None
            dim = emb.shape[1] if emb is not None else 1
            clip = np.zeros((n, dim), np.float32)
            if emb is not None:
                clip[ok] = emb
            out["clip"] = clip
        return out

    def _audio(self, items: tuple) -> dict[str, np.ndarray]:
        from seeing_sound.audio.io import BadAudio

        n = len(items)
        ok = np.zeros(n, bool)
        reason = [""] * n
        counts = np.zeros(n, np.int64)
        frames = np.zeros(n, np.int64)
        hashes: list[np.ndarray] = []
        times: list[np.ndarray] = []
        for i, item in enumerate(items):
            try:
                audio, rate = _read_audio(item, self.pool)
            except BadAudio as exc:
                reason[i] = f"audio_{exc.reason}"
                continue
            except (OSError, IndexError, ValueError) as exc:
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                reason[i] = f"audio_unreadable: {type(exc).__name__}"
                continue
            got = fp.fingerprint(audio, rate)
            ok[i], counts[i], frames[i] = True, len(got), got.frames
            hashes.append(got.hashes)
            times.append(got.times)
        return {
            "keys": np.array([it[0] for it in items], dtype=str),
            "ok": ok,
            "reason": np.array(reason, dtype=str),
            "counts": counts,
            "frames": frames,
            "hashes": np.concatenate(hashes) if hashes else np.zeros(0, np.int64),
            "times": np.concatenate(times) if times else np.zeros(0, np.int32),
        }


def load_features(root: Path, stage: LeakageFeatureStage) -> dict[str, np.ndarray]:
    """All shards of ``stage`` under ``root`` concatenated (the same arrays as one shard holds)."""
    parts = [np.load(root / features_rel(stage.side, stage.kind, i)) for i in range(len(stage.groups))]
    if not parts:
        empty: dict[str, np.ndarray] = {"keys": np.zeros(0, str), "ok": np.zeros(0, bool), "reason": np.zeros(0, str)}
        if stage.kind == "images":
            empty["phash"] = np.zeros((0, 8), np.uint8)
            if stage.config.use_clip:
                empty["clip"] = np.zeros((0, 1), np.float32)
        else:
            empty |= {k: np.zeros(0, np.int64) for k in ("counts", "frames", "hashes")}
            empty["times"] = np.zeros(0, np.int32)
        return empty
    names = parts[0].files
    if "clip" in names:  # a shard whose images all failed has a (n, 1) placeholder
        dim = max(p["clip"].shape[1] for p in parts)
        return {
            k: np.concatenate(
                [p[k] if k != "clip" or p[k].shape[1] == dim else np.zeros((len(p[k]), dim)) for p in parts]
            )
            for k in names
        }
    return {k: np.concatenate([p[k] for p in parts]) for k in names}

"""Resumable feature stages (one output shard per dataset metadata shard).

``AstFeatureStage``: AST last hidden state of each mixture (paper 3.4), optionally time-pooled.
``VaeFeatureStage``: image -> shorter side resized to ``resolution``, center crop, VAE posterior
mean and std times ``scaling_factor`` (paper A.10). Both store fp16; a bad item (unreadable audio
or image, non-finite output) is skipped and counted under its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.builders import load_vae, resolve_device
from seeing_sound.engine import ShardStats, ShardTask, Stage, shard_name
from seeing_sound.features.config import FeaturesConfig
from seeing_sound.features.store import write_shard

log = logging.getLogger(__name__)

_MODELS: dict[tuple, object] = {}  # per-process cache: a worker loads each model once, not per shard


def center_crop_resize(image, resolution: int):
    """PIL image -> RGB ``resolution x resolution``: shorter side resized (bicubic), then center-cropped."""
    from PIL import Image, ImageOps

    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    image = image.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


@dataclass
class _FeatureStage(Stage):
    dataset: str
    model: str  # the config's ast or vae, local folders made absolute
    key: str  # folder under DATASET/features
    config: FeaturesConfig = field(default_factory=FeaturesConfig)
    name: str = field(init=False, default="")

    def __post_init__(self):
        self.name = f"features-{self.key}"

    def _dataset(self):
        from seeing_sound.dataset import PairsDataset

        return PairsDataset.open(self.dataset)

    def plan(self):
        ds = self._dataset()
        return [ShardTask(index=k, items=tuple(ds.shard_rows(k))) for k in range(ds.num_shards)]

    def outputs(self, index: int) -> list[str]:
        return [f"features/{self.key}/{shard_name(index)}.safetensors"]

    def _metadata(self) -> dict[str, str]:
        return {k: str(v) for k, v in sorted(self.fingerprint().items())}


@dataclass
class AstFeatureStage(_FeatureStage):
    def fingerprint(self) -> dict:
        # Also the card training reads (model, pool): the config fields that shape the tokens.
        return {"kind": "ast", "model": self.model, "pool": self.config.pool, "dtype": "float16"}

    def encoder(self):
        from seeing_sound.encoders.ast import load_ast

        key = ("ast", self.model, str(resolve_device(self.config.device)))
        if key not in _MODELS:
            _MODELS[key] = load_ast(self.model, device=str(resolve_device(self.config.device)))
        return _MODELS[key]

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from seeing_sound.encoders.ast import pool_ast_tokens

        ds, enc = self._dataset(), self.encoder()
        errors: dict[str, int] = {}
        rows, waves = [], []
        for row in task.items:
            try:
                wave = ds.audio(row)
            except Exception as exc:  # a corrupt file must not stop a million-item run
                errors[f"audio_unreadable: {type(exc).__name__}"] = (
                    errors.get(f"audio_unreadable: {type(exc).__name__}", 0) + 1
                )
                continue
            reason = (
                "audio_empty" if wave.size == 0 else ("audio_not_finite" if not np.all(np.isfinite(wave)) else None)
            )
            if reason:
                errors[reason] = errors.get(reason, 0) + 1
                continue
            rows.append(row)
            waves.append(wave)
        f_dim, t_dim = enc.grid
        embeds = np.zeros((0, 2 + f_dim * (-(-t_dim // self.config.pool)), enc.hidden_size), np.float16)
        kept = []
        if waves:
            tokens = pool_ast_tokens(
                enc.encode(waves, batch_size=self.config.batch_size), f_dim, t_dim, self.config.pool
            )
            ok = np.isfinite(tokens).all(axis=(1, 2)) & (np.abs(tokens).max(axis=(1, 2)) < 65504)
            if (~ok).any():
                errors["embedding_not_finite"] = int((~ok).sum())
            embeds, kept = tokens[ok].astype(np.float16), [r for r, g in zip(rows, ok, strict=True) if g]
        write_shard(
            scratch / self.outputs(task.index)[0],
            {"rows": np.asarray(kept, np.int64), "embeds": embeds},
            self._metadata(),
        )
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=len(kept), errors=errors)


@dataclass
class VaeFeatureStage(_FeatureStage):
    def fingerprint(self) -> dict:
        return {
            "kind": "vae",
            "model": self.model,
            "resolution": self.config.resolution,
            "dtype": "float16",
            "stored": "posterior mean and std, times scaling_factor",
        }

    def _dataset(self):
        from seeing_sound.dataset import PairsDataset

        return PairsDataset.open(self.dataset, images_root=self.config.images_root)

    def vae(self):

        key = ("vae", self.model, str(resolve_device(self.config.device)))
        if key not in _MODELS:
            _MODELS[key] = load_vae(self.model).to(str(resolve_device(self.config.device))).eval()
        return _MODELS[key]

    def _load_image(self, ds, row: int, errors: dict):
        from PIL import Image

        try:
            path = ds.image_path(row)
            if not path.is_file():
                errors["image_missing"] = errors.get("image_missing", 0) + 1
                return None
            with Image.open(path) as im:
                im = center_crop_resize(im, self.config.resolution)
            return np.asarray(im, dtype=np.float32) / 127.5 - 1.0
        except Exception as exc:  # bad file or a path that escapes the images root
            key = f"image_unreadable: {type(exc).__name__}"
            errors[key] = errors.get(key, 0) + 1
            return None

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        import torch

        ds, vae = self._dataset(), self.vae()
        errors: dict[str, int] = {}
        rows, pixels = [], []
        for row in task.items:
            arr = self._load_image(ds, row, errors)
            if arr is not None:
                rows.append(row)
                pixels.append(arr)
        sf = float(vae.config.scaling_factor)
        means, stds = [], []
        for s in range(0, len(pixels), self.config.batch_size):
            x = torch.from_numpy(np.stack(pixels[s : s + self.config.batch_size])).permute(0, 3, 1, 2)
            with torch.inference_mode():
                dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
            means.append((dist.mean.float() * sf).cpu().numpy())
            stds.append((dist.std.float() * sf).cpu().numpy())
        c, h = (
            int(vae.config.latent_channels),
            self.config.resolution // (2 ** (len(vae.config.block_out_channels) - 1)),
        )
        mean = np.concatenate(means) if means else np.zeros((0, c, h, h), np.float32)
        std = np.concatenate(stds) if stds else np.zeros((0, c, h, h), np.float32)
        ok = np.isfinite(mean).all(axis=(1, 2, 3)) & np.isfinite(std).all(axis=(1, 2, 3))
        if (~ok).any():
            errors["latent_not_finite"] = int((~ok).sum())
        kept = [r for r, g in zip(rows, ok, strict=True) if g]
        write_shard(
            scratch / self.outputs(task.index)[0],
            {
                "rows": np.asarray(kept, np.int64),
                "mean": mean[ok].astype(np.float16),
                "std": std[ok].astype(np.float16),
            },
            self._metadata(),
        )
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=len(kept), errors=errors)

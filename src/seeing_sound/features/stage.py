"""Resumable feature stages (one output shard per dataset metadata shard).

``AstFeatureStage``: AST last hidden state of each mixture (paper 3.4), optionally time-pooled.
``VaeFeatureStage``: image -> shorter side resized to ``resolution``, center crop, VAE posterior
mean and std times ``scaling_factor`` (paper A.10). Both store fp16; a bad item (unreadable audio
or image, non-finite output) is skipped and counted under its reason.

Both stream: items are read ``batch_size`` at a time, encoded, cast to fp16 and appended to the
shard (:class:`~seeing_sound.features.store.ShardWriter`), so peak memory is set by the batch size,
not by the shard size (a 1000-pair shard of full-size AST tokens is 1.8 GB in fp16).

``setup()`` opens the dataset and loads the AST or VAE once per worker (a process of
``--workers``, a Ray actor), not once per shard; the stage itself stays config only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.builders import load_vae, resolve_device
from seeing_sound.dataset.image_store import ImageNotFoundError
from seeing_sound.engine import ShardStats, ShardTask, Stage, reraise_environment, shard_name
from seeing_sound.features.config import FeaturesConfig
from seeing_sound.features.store import ShardWriter
from seeing_sound.imaging import DEFAULT_MAX_PIXELS, DecodeError, open_image, to_rgb

log = logging.getLogger(__name__)


def _count(errors: dict[str, int], reason: str, n: int = 1) -> None:
    errors[reason] = errors.get(reason, 0) + n


def center_crop_resize(image, resolution: int):
    """PIL image -> RGB ``resolution x resolution``: shorter side resized (bicubic), then center-cropped.

    Any mode (16-bit, alpha, palette, CMYK) becomes 8-bit RGB as every stage decodes it
    (:func:`seeing_sound.imaging.to_rgb`), upright by its EXIF orientation. A JPEG not yet loaded
    is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose shorter side still reaches
    ``resolution``, then resized: the CPU then keeps up with a GPU's VAE.
    """
    from PIL import Image, ImageOps

    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if getattr(image, "format", None) == "JPEG":  # decode at a reduced DCT scale that still covers the crop:
        w, h = image.size  # 2.8x faster for a 1024² photo at 512 (bench_feeding.py), within 1/255 on average
        s = resolution / min(w, h)
        if s < 1:
            image.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
    image = to_rgb(ImageOps.exif_transpose(image))
    w, h = image.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
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

    def _batches(self, rows, read):
        """``(rows, values)`` of up to ``batch_size`` items ``read(row)`` could read (it counts the rest)."""
        kept: list[int] = []
        values: list[np.ndarray] = []
        for row in rows:
            value = read(row)
            if value is not None:
                kept.append(row)
                values.append(value)
            if len(values) == self.config.batch_size:
                yield kept, values
                kept, values = [], []
        if values:
            yield kept, values


@dataclass
class AstFeatureStage(_FeatureStage):
    def fingerprint(self) -> dict:
        # Also the card training reads (model, pool): the config fields that shape the tokens.
        return {"kind": "ast", "model": self.model, "pool": self.config.pool, "dtype": "float16"}

    def setup(self) -> None:
        from seeing_sound.encoders.ast import load_ast

        self.ds = self._dataset()
        self.encoder = load_ast(self.model, device=str(resolve_device(self.config.device)))

    def _read(self, ds, row: int, errors: dict[str, int]) -> np.ndarray | None:
        try:
            wave = ds.audio(row)
        except Exception as exc:  # a corrupt file must not stop a million-item run
            reraise_environment(exc)  # a full or read-only output is the run's, not the item's
            _count(errors, f"audio_unreadable: {type(exc).__name__}")
            return None
        reason = "audio_empty" if wave.size == 0 else ("audio_not_finite" if not np.all(np.isfinite(wave)) else None)
        if reason:
            _count(errors, reason)
            return None
        return wave

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        from seeing_sound.encoders.ast import pool_ast_tokens

        ds, enc = self.ds, self.encoder
        errors: dict[str, int] = {}
        f_dim, t_dim = enc.grid
        tokens = 2 + f_dim * (-(-t_dim // self.config.pool))
        columns: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
            "rows": (np.dtype(np.int64), ()),
            "embeds": (np.dtype(np.float16), (tokens, enc.hidden_size)),
        }
        with ShardWriter(scratch / self.outputs(task.index)[0], columns, self._metadata()) as out:

            def flush(rows: list[int], waves: list[np.ndarray]) -> None:
                # Filterbank in torch on the AST's device (encoders.ast.ast_fbank): off the CPU on a GPU,
                # 1.8x the numpy extractor's speed on a CPU, equal to it within 1e-6.
                raw = enc.encode_torch(waves, batch_size=self.config.batch_size).numpy(force=True)
                got = pool_ast_tokens(raw, f_dim, t_dim, self.config.pool)
                ok = np.isfinite(got).all(axis=(1, 2)) & (np.abs(got).max(axis=(1, 2)) < 65504)
                if (~ok).any():
                    _count(errors, "embedding_not_finite", int((~ok).sum()))
                out.append(rows=np.asarray(rows, np.int64)[ok], embeds=got[ok].astype(np.float16))

            for rows, waves in self._batches(task.items, lambda row: self._read(ds, row, errors)):
                flush(rows, waves)
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=out.rows, errors=errors)


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

    def setup(self) -> None:
        self.ds = self._dataset()
        self.vae = load_vae(self.model).to(str(resolve_device(self.config.device))).eval()

    def _load_image(self, ds, row: int, errors: dict):
        try:
            source = ds.image_source(row)  # a file in the images folder, or bytes from a shard or table
            if isinstance(source, Path) and not source.is_file():
                errors["image_missing"] = errors.get("image_missing", 0) + 1
                return None
            with open_image(source, max_pixels=DEFAULT_MAX_PIXELS) as im:  # header checked before decoding
                im = center_crop_resize(im, self.config.resolution)
            return np.asarray(im, dtype=np.float32) / 127.5 - 1.0
        except DecodeError as exc:  # Pillow's exception by name as before; our own refusals by reason
            _count(errors, f"image_unreadable: {type(exc.__cause__).__name__ if exc.__cause__ else exc.reason}")
            return None
        except ImageNotFoundError:
            errors["image_missing"] = errors.get("image_missing", 0) + 1
            return None
        except Exception as exc:  # bad file or a path that escapes the images root
            reraise_environment(exc)  # a full or read-only output is the run's, not the item's
            key = f"image_unreadable: {type(exc).__name__}"
            errors[key] = errors.get(key, 0) + 1
            return None

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        import torch

        ds, vae = self.ds, self.vae
        errors: dict[str, int] = {}
        sf = float(vae.config.scaling_factor)
        c = int(vae.config.latent_channels)
        h = self.config.resolution // (2 ** (len(vae.config.block_out_channels) - 1))
        f16 = np.dtype(np.float16)
        columns: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
            "rows": (np.dtype(np.int64), ()),
            "mean": (f16, (c, h, h)),
            "std": (f16, (c, h, h)),
        }
        with ShardWriter(scratch / self.outputs(task.index)[0], columns, self._metadata()) as out:

            def flush(rows: list[int], pixels: list[np.ndarray]) -> None:
                x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
                with torch.inference_mode():
                    dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
                    mean = (dist.mean.float() * sf).cpu().numpy()
                    std = (dist.std.float() * sf).cpu().numpy()
                ok = np.isfinite(mean).all(axis=(1, 2, 3)) & np.isfinite(std).all(axis=(1, 2, 3))
                if (~ok).any():
                    _count(errors, "latent_not_finite", int((~ok).sum()))
                out.append(rows=np.asarray(rows, np.int64)[ok], mean=mean[ok], std=std[ok])

            for rows, pixels in self._batches(task.items, lambda row: self._load_image(ds, row, errors)):
                flush(rows, pixels)
        return ShardStats(shard=task.index, items_in=len(task.items), items_out=out.rows, errors=errors)

"""CLIP image tower (transformers ``CLIPModel`` + its image processor) for IIS and the image side of AIS.

The default, ``openai/clip-vit-base-patch32``, is the space Wav2CLIP was distilled into, so AIS
compares Wav2CLIP audio embeddings with these image embeddings (``get_image_features``: the
projected pooled output). The processor is the PIL one (no torchvision): resize the short side
with bicubic, centre crop, normalise, as the repository's ``preprocessor_config.json`` says. Files
are decoded by :mod:`seeing_sound.imaging` (16-bit scaled, alpha on white, EXIF orientation,
``max_pixels`` checked from the header).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.builders import DEFAULT_CLIP, resolve_device
from seeing_sound.encoders.common import (
    embedding_key,
    fixed_batches,
    load_or_raise,
    model_dir,
    pad_batch,
    weights_revision,
)
from seeing_sound.imaging import DECODER, DEFAULT_MAX_PIXELS, decode


def _image_processor_class():
    try:  # transformers 5: the PIL backend by name (CLIPImageProcessor would warn and fall back to it)
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


class ClipImageEncoder:
    """CLIP image embeddings ``(n, projection_dim)``, float32, in fixed-shape batches."""

    name = "clip"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = "auto",
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        import torch
        from transformers import CLIPModel

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = str(model or DEFAULT_CLIP)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.max_pixels = int(max_pixels)
        cls = _image_processor_class()
        self.processor = load_or_raise(lambda: cls.from_pretrained(self.model_id), "CLIP", self.model_id, "clip")
        self.model = load_or_raise(lambda: CLIPModel.from_pretrained(self.model_id), "CLIP", self.model_id, "clip")
        self.model.eval().to(self.device)
        self.dim = int(self.model.config.projection_dim or 0)
        revision = weights_revision(model_dir(self.model_id))
        self.info: dict[str, Any] = {"model": self.model_id, "revision": revision, "dim": self.dim}
        self._torch = torch

    @property
    def key(self) -> str:
        # the decoder's version is in the key: features cached before 16-bit images decoded right are not reused
        return f"{embedding_key('clip', self.model_id)}-{str(self.info['revision']).split(':')[-1]}-{DECODER}"

    def prepare(self, path: str | Path) -> np.ndarray:
        """One image file -> its float32 ``(3, S, S)`` pixel values (a bad or oversized file raises DecodeError)."""
        rgb = decode(path, max_pixels=self.max_pixels).image
        return np.asarray(self.processor(images=rgb, return_tensors="np")["pixel_values"][0], dtype=np.float32)

    def embed(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared pixel values -> float32 ``(n, projection_dim)`` (not normalised)."""
        torch = self._torch
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s, e in fixed_batches(len(inputs), self.batch_size):
                x = pad_batch(torch.from_numpy(np.stack(inputs[s:e])), self.batch_size).to(self.device)
                out[s:e] = self.model.get_image_features(pixel_values=x).pooler_output[: e - s].float().cpu().numpy()
        return out

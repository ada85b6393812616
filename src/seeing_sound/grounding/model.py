"""A CLIP loaded with ``transformers``: embeds images and prompts in batches, nothing else; and
the digest of its weights, which identifies it in the concepts stage's fingerprint."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.errors import ModelNotFoundError
from seeing_sound.hashing import BLOCK

log = logging.getLogger(__name__)

#: what ``CLIPModel``, its tokenizer and its image processor read from a hub repo (no TF/Flax/ONNX copies)
_HUB_FILES = ("*.json", "*.txt", "*.model", "*.safetensors")

#: prompt embeddings kept between calls; the cache starts afresh when full, so memory stays bounded
#: however many distinct objects a long run meets (the references repeat and come back at once)
TEXT_CACHE_SIZE = 8192


def _device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


class Grounder:
    """CLIP (``CLIPModel.from_pretrained(name_or_path)``) with its tokenizer and image processor.

    >>> g = Grounder("openai/clip-vit-base-patch32")
    >>> img = g.embed_images([pil_image])         # (1, D) unit vectors
    >>> txt = g.embed_texts(["a photo of a dog"])  # (1, D) unit vectors
    >>> logits = g.logit_scale * img @ txt.T       # (1, 1)

    Text embeddings are cached (the reference and depiction prompts repeat on every image), up to
    :data:`TEXT_CACHE_SIZE` prompts.
    Runs in float32 on ``device`` (``auto``: CUDA when present), ``batch_size`` inputs per call.
    """

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 32):
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name_or_path
        self.device = _device(device)
        self.batch_size = batch_size
        self.model = CLIPModel.from_pretrained(name_or_path).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.image_processor = AutoImageProcessor.from_pretrained(name_or_path)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        with torch.no_grad():
            self.logit_scale = float(self.model.logit_scale.exp().item())
        self._text_cache: dict[str, np.ndarray] = {}
        log.info("loaded CLIP %s on %s", name_or_path, self.device)

    def _unit(self, x: Any) -> np.ndarray:
        # transformers 4.x returns tensors, 5.x may return an output object holding the pooled embeddings
        t = x if hasattr(x, "float") else getattr(x, "pooler_output", x)
        v = t.float().cpu().numpy().astype(np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """(N, D) float64 unit image embeddings of N PIL images (RGB)."""
        import torch

        out = []
        for s in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[s : s + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.no_grad():
                out.append(self._unit(self.model.get_image_features(pixel_values=pixels)))
        return np.concatenate(out) if out else np.zeros((0, int(self.model.config.projection_dim)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) float64 unit text embeddings, in the order of ``texts`` (cached per text)."""
        import torch

        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if len(self._text_cache) + len(todo) > TEXT_CACHE_SIZE:
            self._text_cache.clear()
            todo = list(dict.fromkeys(texts))
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s : s + self.batch_size]
            tokens = self.tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                emb = self._unit(self.model.get_text_features(**tokens))
            self._text_cache.update(zip(batch, emb, strict=True))
        if not texts:
            return np.zeros((0, int(self.model.config.projection_dim)))
        return np.stack([self._text_cache[t] for t in texts])


def clip_folder(name_or_path: str) -> Path:
    """The folder the CLIP ``name_or_path`` loads from: a local folder as given, a hub id's snapshot
    in the hub cache (fetched through ``huggingface_hub`` unless it is there; offline, it must be).

    :class:`~seeing_sound.errors.ModelNotFoundError` when neither is found.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name_or_path, allow_patterns=list(_HUB_FILES)))
        if not any(folder.glob("*.safetensors")):  # an older repo: PyTorch pickles only
            folder = Path(snapshot_download(name_or_path, allow_patterns=["*.bin"]))
    except Exception as exc:  # not a repo id, offline without a cached copy, no such repo, no network
        raise ModelNotFoundError("grounding CLIP", name_or_path, "grounding", exc) from exc
    return folder


def clip_weights_digest(name_or_path: str) -> str:
    """``'sha256:<16 hex>'`` over the CLIP's ``config.json`` and weight files (``*.safetensors``,
    else ``*.bin``): equal for equal weights wherever they live, changed when the weights change.

    The same value as :func:`seeing_sound.encoders.common.weights_revision` (the revision the
    ``score`` command keys its CLIP by), computed afresh on every call: new weights written into
    the same folder during a session must change it.
    """
    folder = clip_folder(name_or_path)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ModelNotFoundError(
            "grounding CLIP", name_or_path, "grounding", FileNotFoundError(f"no weights in {folder}")
        )
    h = hashlib.sha256()
    for f in [folder / "config.json", *files]:
        if f.exists():
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                while block := fh.read(BLOCK):
                    h.update(block)
    return "sha256:" + h.hexdigest()[:16]

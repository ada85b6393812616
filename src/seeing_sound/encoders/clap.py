"""CLAP text and audio encoder (``--encoder clap``): ``transformers.ClapModel`` + ``ClapProcessor``.

Audio arrives at the pool rate (16 kHz) and is resampled to the feature extractor's rate (48 kHz
for laion CLAP). Randomness is ruled out: clips longer than the extractor's window are cut to
their first window (instead of a random crop), shorter ones are repeat-padded (deterministic),
and the model runs in eval mode at a fixed batch shape.

``audio_prep`` chooses where the input is prepared:

* ``"torch"`` (default): batched on the model's device, the CPU only hands over waveforms. The
  resampler is :func:`~seeing_sound.encoders.clap_features.resample_poly` (Kaiser sinc to soxr
  HQ's spec) and the log-mel is :func:`~seeing_sound.encoders.clap_features.clap_features`, equal
  to ``ClapFeatureExtractor``'s. Recorded as ``audio_prep`` in ``info.extra``.
* ``"soxr"``: soxr HQ on the CPU, the log-mel in torch: embeddings equal to ``"processor"``'s.
* ``"processor"``: soxr HQ on the CPU + ``ClapFeatureExtractor`` (numpy), the original path.
"""

from __future__ import annotations

import logging

import numpy as np

from seeing_sound.builders import CLAP_AUDIO_PREP, DEFAULT_CLAP
from seeing_sound.encoders.common import (
    EncoderInfo,
    embed_texts_bucketed,
    fixed_batches,
    l2_normalize,
    load_or_raise,
    model_dir,
    pad_batch,
    resolve_device,
    weights_revision,
)

log = logging.getLogger(__name__)

DEFAULT_CLAP_MODEL = DEFAULT_CLAP
AUDIO_PREP = CLAP_AUDIO_PREP


class ClapEncoder:
    """Unit-norm float32 CLAP embeddings of texts and audio clips in one joint space."""

    name = "clap"
    modalities = ("text", "audio")

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = "auto",
        fp16: bool = False,
        batch_size: int = 16,
        audio_prep: str = "torch",
    ):
        import torch
        from transformers import ClapModel, ClapProcessor

        self.model_id = model or DEFAULT_CLAP_MODEL
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if audio_prep not in AUDIO_PREP:
            raise ValueError(f"audio_prep must be one of {AUDIO_PREP}, got {audio_prep!r}")
        self.audio_prep = audio_prep
        self.processor = load_or_raise(
            lambda: ClapProcessor.from_pretrained(self.model_id), "CLAP", self.model_id, "model"
        )
        self.model = load_or_raise(
            lambda: ClapModel.from_pretrained(self.model_id, use_safetensors=None), "CLAP", self.model_id, "model"
        )
        self.model.eval().to(self.device)
        self.dtype = torch.float16 if (fp16 and self.device.type == "cuda") else torch.float32
        if self.dtype == torch.float16:
            self.model.half()
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.max_samples = int(fe.nb_max_samples)
        self.fusion = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        max_positions = int(getattr(self.model.config.text_config, "max_position_embeddings", 514))
        self.max_len = int(min(getattr(self.processor.tokenizer, "model_max_length", 512) or 512, max_positions - 2))
        self.info = EncoderInfo(
            "clap",
            self.model_id,
            weights_revision(model_dir(self.model_id)),
            int(self.model.config.projection_dim),
            {"sample_rate": self.sample_rate, **({"audio_prep": "torch"} if audio_prep == "torch" else {})},
        )

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """``texts`` (n,) -> float32 (n, D) unit rows, independent of batch composition."""
        return embed_texts_bucketed(
            texts,
            self.processor.tokenizer,
            dim=self.info.dim,
            max_len=self.max_len,
            batch_size=self.batch_size,
            device=self.device,
            forward=lambda feats: self.model.get_text_features(**feats).pooler_output,
        )

    def prepare_audio(self, waves: np.ndarray, sample_rate: int) -> np.ndarray:
        """float (n, T) at ``sample_rate`` -> float32 (n, T') at the model's rate, cut to its window."""
        import soxr

        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2:
            raise ValueError(f"waves must be (n, samples), got shape {waves.shape}")
        if sample_rate != self.sample_rate:
            waves = (
                np.stack([soxr.resample(w, sample_rate, self.sample_rate, quality="HQ") for w in waves])
                if len(waves)
                else np.zeros((0, 0), np.float32)
            )
        return np.ascontiguousarray(waves[:, : self.max_samples], dtype=np.float32)

    def embed_audio(self, waves: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono clips float (n, T) at ``sample_rate`` -> float32 (n, D) unit rows."""
        if self.audio_prep != "processor":
            return self._embed_audio_torch(waves, sample_rate)
        import torch

        waves = self.prepare_audio(waves, sample_rate)
        out = np.zeros((waves.shape[0], self.info.dim), dtype=np.float32)
        fe = self.processor.feature_extractor
        truncation = "fusion" if self.fusion else "rand_trunc"  # no randomness: inputs fit the window
        with torch.inference_mode():
            for s, e in fixed_batches(waves.shape[0], self.batch_size):
                feats = fe(
                    list(waves[s:e]),
                    sampling_rate=self.sample_rate,
                    truncation=truncation,
                    padding="repeatpad",
                    return_tensors="pt",
                )
                feats = {k: pad_batch(v, self.batch_size).to(self.device) for k, v in feats.items()}
                feats["input_features"] = feats["input_features"].to(self.dtype)
                emb = self.model.get_audio_features(**feats).pooler_output[: e - s]
                out[s:e] = emb.float().cpu().numpy()
        return l2_normalize(out)

    def _embed_audio_torch(self, waves: np.ndarray, sample_rate: int) -> np.ndarray:
        """:meth:`embed_audio` with resampling and the log-mel in torch on the model's device."""
        import torch

        from seeing_sound.encoders.clap_features import clap_features, input_needed, resample_poly
        from seeing_sound.precision import exact_matmul

        if self.audio_prep == "soxr":
            waves, sample_rate = self.prepare_audio(waves, sample_rate), self.sample_rate
        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2:
            raise ValueError(f"waves must be (n, samples), got shape {waves.shape}")
        out = np.zeros((waves.shape[0], self.info.dim), dtype=np.float32)
        if waves.shape[0] == 0:
            return out
        waves = waves[:, : input_needed(self.max_samples, int(sample_rate), self.sample_rate)]  # the rest is unused
        truncation = "fusion" if self.fusion else "rand_trunc"
        with torch.inference_mode():
            for s, e in fixed_batches(waves.shape[0], self.batch_size):
                x = torch.from_numpy(pad_batch(waves[s:e], self.batch_size)).to(self.device)
                with exact_matmul(torch):  # cuDNN would run the resampler's conv1d in TF32 (~-70 dB)
                    x = resample_poly(x, int(sample_rate), self.sample_rate)[:, : self.max_samples]
                    feats = clap_features(
                        x, self.processor.feature_extractor, truncation=truncation, padding="repeatpad", n_valid=e - s
                    )
                feats["input_features"] = feats["input_features"].to(self.dtype)
                emb = self.model.get_audio_features(**feats).pooler_output[: e - s]
                out[s:e] = emb.float().cpu().numpy()
        return l2_normalize(out)

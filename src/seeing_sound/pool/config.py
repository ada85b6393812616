"""Settings of ``pool build`` and ``pool embed`` (one field each: default, help, checks)."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.audio.loudness import BLOCK_SECONDS
from seeing_sound.builders import CLAP_AUDIO_PREP as AUDIO_PREP
from seeing_sound.builders import RETRIEVAL_ENCODERS as ENCODERS
from seeing_sound.config import Config, ConfigError, option

EMBED_DTYPES = ("float32", "float16")
AUDIO_PREP_HELP = (
    "clap: where audio input is prepared: torch (resampled and featurized on the model's device, "
    "embeddings within ~4e-4 of the processor's), soxr (CPU resampling, exact), processor "
    "(transformers' ClapFeatureExtractor on the CPU, how pools were embedded before this option) "
    "(ours: torch keeps a GPU fed)"
)


@dataclass(frozen=True)
class PoolBuildConfig(Config):
    """Standardization settings (paper A.7 defaults)."""

    sample_rate: int = option(16000, "target sample rate in Hz, soxr HQ resampling (paper: A.7)", min=1000)
    chunk_seconds: float = option(
        5.0, "chunk length in seconds; the last one is zero-padded (paper: A.7)", min=BLOCK_SECONDS
    )
    min_tail_seconds: float = option(
        0.0, "drop a last chunk with less real audio than this; 0 keeps every tail (paper: A.7)", min=0
    )
    shard_files: int = option(64, "source files per shard (ours)", min=1, fingerprint=False)

    def validate(self) -> None:
        if self.min_tail_seconds > self.chunk_seconds:
            raise ConfigError(
                "min_tail_seconds", self.min_tail_seconds, f"must be <= chunk_seconds ({self.chunk_seconds})"
            )

    @property
    def chunk_samples(self) -> int:
        return round(self.chunk_seconds * self.sample_rate)

    @property
    def min_tail_samples(self) -> int:
        return round(self.min_tail_seconds * self.sample_rate)


@dataclass(frozen=True)
class EmbedConfig(Config):
    """Which encoder embeds the pool, and how."""

    encoder: str = option(
        "clap",
        "clap embeds the audio; text embeds each chunk's description and labels (paper: 3.3, CLAP)",
        choices=ENCODERS,
    )
    model: str | None = option(
        None,
        "hub id or local path of the encoder (ours: the paper cites LAION-CLAP, no checkpoint)",
        default_text="laion/clap-htsat-unfused for clap, sentence-transformers/all-MiniLM-L6-v2 for text",
    )
    dtype: str = option(
        "float32", "stored precision; float16 halves the disk size (ours: exact scores)", choices=EMBED_DTYPES
    )
    fp16: bool = option(False, "run the encoder in half precision, GPU (ours: off, exact fp32)")
    # in the encoder identity the stage records (clap only), so not in the config fingerprint
    audio_prep: str = option("torch", AUDIO_PREP_HELP, choices=AUDIO_PREP, fingerprint=False)
    device: str = option("auto", "auto (CUDA if available), cpu or cuda[:N] (ours)", fingerprint=False)
    batch_size: int | None = option(
        None, "encoder batch size (ours)", min=1, fingerprint=False, default_text="the encoder's"
    )
    shard_chunks: int = option(4096, "chunks per shard (ours)", min=1, fingerprint=False)

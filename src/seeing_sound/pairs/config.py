"""Settings of ``pairs import`` (one field each: default, help, checks)."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.config import Config, option

AUDIO_FORMATS = ("flac", "wav")


@dataclass(frozen=True)
class PairsImportConfig(Config):
    """How each real (image, audio) pair or video becomes a pair of the dataset."""

    sample_rate: int = option(
        16000,
        "audio sample rate in Hz, soxr HQ resampling, mono by channel mean (ours: the pool's, paper A.7)",
        min=1000,
    )
    audio_format: str = option(
        "flac", "stored audio files (ours: lossless, half the size of WAV)", choices=AUDIO_FORMATS
    )
    pairs_per_shard: int = option(1000, "pairs per dataset shard, the unit of resume (ours)", min=1, fingerprint=False)

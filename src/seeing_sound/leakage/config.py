"""Settings of ``leakage`` (one field each: default, help, checks)."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.config import Config, option

IMAGE_METHODS = ("both", "clip", "phash")
AUDIO_SOURCES = ("auto", "chunks", "pool", "mixtures")
DEFAULT_CLIP = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class LeakageConfig(Config):
    """What counts as a near duplicate, and what is compared (see docs/leakage.md for the thresholds)."""

    images: bool = option(True, "compare training images with benchmark frames (ours: A.6 shows why it matters)")
    audio: bool = option(True, "compare training audio with benchmark audio (ours: benchmark audio may be in the pool)")
    image_method: str = option(
        "both",
        "image scores that may flag a pair; both: either rule flags, both are reported "
        "(ours: each catches copies the other misses)",
        choices=IMAGE_METHODS,
    )
    clip: str = option(DEFAULT_CLIP, "CLIP hub id or folder, a transformers CLIPModel (ours: as evaluate's)")
    clip_threshold: float = option(
        0.95, "near duplicate at CLIP image cosine >= this (ours: see docs/leakage.md)", gt=0, max=1
    )
    phash_distance: int = option(
        10, "near duplicate at perceptual-hash Hamming distance <= this, of 64 bits (ours: see docs/leakage.md)", min=0
    )
    audio_source: str = option(
        "auto",
        "training audio: chunks (the pool chunks the dataset's recipes use), pool (every chunk of the pool), "
        "mixtures (the dataset's stored audio); auto: chunks if the card names a pool, else mixtures "
        "(ours: the chunks are what training heard)",
        choices=AUDIO_SOURCES,
    )
    min_votes: int = option(
        10,
        "near duplicate audio: at least this many offset-consistent landmark hashes (ours: see docs/leakage.md)",
        min=1,
    )
    min_concentration: float = option(
        0.5,
        "... and at least this share of the agreeing hashes on the best offset (ours: see docs/leakage.md)",
        gt=0,
        max=1,
    )
    device: str = option("auto", "CLIP device: auto, cpu, cuda or cuda:N (ours)", fingerprint=False)
    batch_size: int = option(32, "CLIP batch size (ours)", min=1, fingerprint=False)
    shard_items: int = option(1024, "files per feature shard, the unit of resume (ours)", min=1, fingerprint=False)

    def validate(self) -> None:
        from seeing_sound.config import ConfigError

        if self.phash_distance > 64:
            raise ConfigError("phash_distance", self.phash_distance, "must be <= 64 (a phash has 64 bits)")
        if not (self.images or self.audio):
            raise ConfigError("images", self.images, "images and audio are both off: nothing to compare")

    @property
    def use_clip(self) -> bool:
        """CLIP embeddings are computed (phash always is: it costs nothing and is always reported)."""
        return self.images and self.image_method in ("both", "clip")

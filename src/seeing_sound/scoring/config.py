"""``ScoreConfig``: the settings of ``seeing-sound score`` (which models score the pairs, and how)."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.builders import DEFAULT_CLIP
from seeing_sound.config import Config, option
from seeing_sound.imaging import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ScoreConfig(Config):
    """A quality score per pair: the paper's AIS between a pair's mixture and its image."""

    wav2clip: str | None = option(
        None,
        "the official Wav2CLIP.pt checkpoint, the audio side of AIS (paper: 4.2)",
        default_text="Wav2CLIP.pt in the torch hub cache",
    )
    clip: str = option(
        DEFAULT_CLIP,
        "CLIP hub id or local folder, the image side of AIS (ours: ViT-B/32, Wav2CLIP's image space)",
    )
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "an image with more pixels is an error row, checked from the header before decoding "
        "(ours: Pillow's decompression-bomb limit)",
        min=1,
    )
    images_root: str | None = option(
        None, "override the dataset card's images root (ours)", fingerprint=False, default_text="the card's"
    )
    bins: int = option(20, "bars of the score histogram in the report (ours)", min=1, max=200, fingerprint=False)
    batch_size: int = option(
        16,
        "pairs read before the models run; the scores do not depend on it, every image and mixture is "
        "embedded alone (ours)",
        min=1,
        fingerprint=False,
    )
    device: str = option("auto", "auto (CUDA if available), cpu or cuda[:N] (ours)", fingerprint=False)

"""``EvaluateConfig``: every setting of ``seeing-sound evaluate`` in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.builders import DEFAULT_CLIP
from seeing_sound.config import Config, ConfigError, option
from seeing_sound.imaging import DEFAULT_MAX_PIXELS

#: the metrics of Table 1 plus KID
METRICS = ("fid", "kid", "iis", "ais")
#: raw: mean paired cosine (the paper's AIS/IIS); rank: SonicDiffusion's rank variant (not comparable)
PROTOCOLS = ("raw", "rank")
#: Inception input resizing: clean-fid's antialiased PIL bicubic, or pytorch-fid's bilinear tensor resize
RESIZE_POLICIES = ("clean", "legacy")


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """What ``evaluate_folders`` / ``evaluate_model`` compute, with which models, and how images are generated."""

    metrics: tuple[str, ...] = option(
        METRICS, "metrics to compute, comma separated: fid, kid, iis, ais (ours: the paper's FID, IIS, AIS plus KID)"
    )
    protocol: str = option(
        "raw", "raw: mean paired cosine; rank: SonicDiffusion's rank score (paper: 4.2, raw)", choices=PROTOCOLS
    )
    resize: str = option(
        "clean",
        "Inception resize: clean (PIL bicubic, antialiased) or legacy (pytorch-fid) "
        "(ours: clean-fid's; the paper does not say)",
        choices=RESIZE_POLICIES,
    )
    clip: str = option(
        DEFAULT_CLIP,
        "CLIP hub id or local folder, for IIS and the image side of AIS (ours: ViT-B/32, Wav2CLIP's image space)",
    )
    wav2clip: str | None = option(
        None,
        "the official Wav2CLIP.pt checkpoint for AIS (paper: 4.2)",
        default_text="Wav2CLIP.pt in the torch hub cache",
    )
    inception: str | None = option(
        None,
        "pytorch-fid's FID Inception weights, for FID and KID (paper: 4.2, FID)",
        default_text="pt_inception-2015-12-05-6726825d.pth in the torch hub cache",
    )
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "skip larger images, checked from the header before decoding (ours: Pillow's decompression-bomb limit)",
        min=1,
    )
    kid_subsets: int = option(100, "KID: random subsets averaged (ours: torch-fidelity's)", min=1)
    kid_subset_size: int = option(
        1000, "KID: rows per subset, clipped to the smaller set (ours: torch-fidelity's)", min=2
    )
    seed: int = option(
        0, "seed of every generated image (as `seeing-sound generate --seed`) and of KID's subsets (ours)"
    )
    steps: int = option(20, "sampling steps of generated images, with --model (PixArt-α: its sampler's)", min=1)
    guidance: float = option(
        4.5, "classifier-free guidance of generated images, with --model (PixArt-α: its sampler's)", min=0
    )
    device: str = option("auto", "auto (CUDA if available), cpu or cuda[:N] (ours)", fingerprint=False)
    batch_size: int = option(16, "feature-extractor batch size (ours)", min=1, fingerprint=False)
    samples: int = option(8, "items per benchmark on samples.png (ours)", min=0, fingerprint=False)

    def validate(self) -> None:
        if not self.metrics:
            raise ConfigError("metrics", self.metrics, "must name at least one metric")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ConfigError("metrics", ",".join(self.metrics), f"must be among {', '.join(METRICS)}")

    @property
    def needs_reference(self) -> bool:
        return any(m in self.metrics for m in ("fid", "kid", "iis"))

    @property
    def needs_audio(self) -> bool:
        return "ais" in self.metrics

    @property
    def needs_inception(self) -> bool:
        return any(m in self.metrics for m in ("fid", "kid"))

    @property
    def needs_clip(self) -> bool:
        return any(m in self.metrics for m in ("iis", "ais"))

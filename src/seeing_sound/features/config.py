"""Settings of ``features``: which AST and VAE, and how images and audio are fed to them."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.builders import DEFAULT_AST, DEFAULT_VAE
from seeing_sound.config import Config, ConfigError, option


@dataclass(frozen=True)
class FeaturesConfig(Config):
    """The two feature sets training reads: AST audio tokens (paper 3.4) and VAE latents (A.10)."""

    ast: str | None = option(
        DEFAULT_AST,
        "AST model id or folder; None skips the AST features (paper: 3.4, AST; the AudioSet checkpoint is ours)",
    )
    vae: str | None = option(
        DEFAULT_VAE,
        "VAE id or folder; a PixArt repo's vae/ subfolder is used; None skips the VAE latents "
        "(paper: 4.3, LDM's VAE as PixArt-α ships it)",
    )
    resolution: int = option(512, "square image size fed to the VAE, a multiple of 8 (paper: 4.3, 512×512)", min=8)
    pool: int = option(1, "average AST patch tokens over N time steps; 1 keeps the full sequence (paper: 3.4)", min=1)
    batch_size: int = option(16, "items per model call (ours)", min=1, fingerprint=False)
    device: str = option("auto", "auto, cpu, cuda or cuda:N (ours)", fingerprint=False)
    images_root: str | None = option(
        None, "override the dataset card's images root (ours)", fingerprint=False, default_text="the card's"
    )

    def validate(self) -> None:
        if self.resolution % 8:
            raise ConfigError("resolution", self.resolution, "must be a multiple of 8 (the VAE downsamples by 8)")
        if self.ast is None and self.vae is None:
            raise ConfigError("vae", None, "nothing to do: ast and vae are both None")

"""Load the pretrained parts (PixArt-α transformer, its VAE and scheduler) by hub id or local path.

Every loader goes through the libraries' real ``from_pretrained`` and turns "not there" into
:class:`seeing_sound.errors.ModelNotFoundError` naming the model and the command-line flag.
A hub id or a local folder may be either a full PixArt-α repository (``transformer/``, ``vae/``,
``scheduler/`` subfolders) or a folder holding just that component.
"""

from __future__ import annotations

from pathlib import Path

from seeing_sound.errors import ModelNotFoundError

DEFAULT_PIXART = "PixArt-alpha/PixArt-XL-2-512x512"
DEFAULT_AST = "MIT/ast-finetuned-audioset-10-10-0.4593"


def _subfolder(name_or_path: str, subfolder: str) -> str | None:
    """``subfolder`` unless ``name_or_path`` is a local folder that holds the component itself."""
    path = Path(name_or_path)
    if path.is_dir() and not (path / subfolder).is_dir() and (path / "config.json").is_file():
        return None
    return subfolder


def load_component(cls, name_or_path: str, subfolder: str, what: str, flag: str, **kwargs):
    """``cls.from_pretrained`` with the component's ``subfolder`` (if the folder has one)."""
    try:
        sub = _subfolder(str(name_or_path), subfolder)
        return cls.from_pretrained(str(name_or_path), subfolder=sub, **kwargs)
    except OSError as exc:  # hub errors and missing files are OSErrors
        raise ModelNotFoundError(what, str(name_or_path), flag, exc) from exc


def load_pixart_transformer(name_or_path: str = DEFAULT_PIXART, flag: str = "--pretrained"):
    from diffusers import PixArtTransformer2DModel

    return load_component(PixArtTransformer2DModel, name_or_path, "transformer", "PixArt-α transformer", flag)


def load_vae(name_or_path: str = DEFAULT_PIXART, flag: str = "--vae"):
    from diffusers import AutoencoderKL

    return load_component(AutoencoderKL, name_or_path, "vae", "VAE", flag)


def load_scheduler(name_or_path: str = DEFAULT_PIXART, kind: str = "dpm-solver"):
    """The checkpoint's noise schedule as a sampling scheduler (falls back to PixArt-α's linear betas)."""
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    classes = {"dpm-solver": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
    if kind not in classes:
        raise ValueError(f"scheduler must be one of {sorted(classes)}, got {kind!r}")
    cls = classes[kind]
    try:
        return cls.from_pretrained(str(name_or_path), subfolder=_subfolder(str(name_or_path), "scheduler"))
    except (OSError, ValueError):
        # The schedule PixArt-α was trained with: linear betas 1e-4 -> 0.02 over 1000 steps.
        return cls(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

"""Load the pretrained parts (PixArt-α transformer, its VAE and scheduler) by hub id or local path.

Every loader goes through the libraries' real ``from_pretrained`` and turns "not there" into
:class:`seeing_sound.errors.ModelNotFoundError` naming the model and the parameter that points elsewhere.
A hub id or a local folder may be either a full PixArt-α repository (``transformer/``, ``vae/``,
``scheduler/`` subfolders) or a folder holding just that component.
"""

from __future__ import annotations

from seeing_sound.builders import DEFAULT_PIXART, component_subfolder, load_component, load_vae

__all__ = ["DEFAULT_PIXART", "load_component", "load_pixart_transformer", "load_scheduler", "load_vae"]


def load_pixart_transformer(name_or_path: str = DEFAULT_PIXART, param: str = "pretrained"):
    from diffusers import PixArtTransformer2DModel

    return load_component(PixArtTransformer2DModel, name_or_path, "transformer", "PixArt-α transformer", param)


def load_scheduler(name_or_path: str = DEFAULT_PIXART, kind: str = "dpm-solver"):
    """The checkpoint's noise schedule as a sampling scheduler (falls back to PixArt-α's linear betas)."""
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    classes = {"dpm-solver": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
    if kind not in classes:
        raise ValueError(f"scheduler must be one of {sorted(classes)}, got {kind!r}")
    cls = classes[kind]
    try:
        return cls.from_pretrained(str(name_or_path), subfolder=component_subfolder(str(name_or_path), "scheduler"))
    except (OSError, ValueError):
        # The schedule PixArt-α was trained with: linear betas 1e-4 -> 0.02 over 1000 steps.
        return cls(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

"""The audio-to-image model: :class:`AudioProjector`, :class:`AudioPixArt` and the diffusers-style
:class:`AudioPixArtPipeline` (inference only; training lives in ``seeing_sound.model.training``).

The three are exported here but imported on first access: importing ``seeing_sound.model`` (which
``seeing_sound.model.training.config`` and the CLI do just to read defaults) must not pay for torch and
diffusers. ``from seeing_sound.model import AudioPixArtPipeline`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seeing_sound.model.audio_pixart import AudioPixArt
    from seeing_sound.model.pipeline import AudioPixArtPipeline
    from seeing_sound.model.projector import AudioProjector

_EXPORTS = {
    "AudioProjector": "seeing_sound.model.projector",
    "AudioPixArt": "seeing_sound.model.audio_pixart",
    "AudioPixArtPipeline": "seeing_sound.model.pipeline",
}

__all__ = ["AudioPixArt", "AudioPixArtPipeline", "AudioProjector"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # resolve once
        return value
    raise AttributeError(f"module 'seeing_sound.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

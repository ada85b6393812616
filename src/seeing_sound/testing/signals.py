"""Deterministic test signals and audio files (real files on disk, written by libsndfile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    """Sine tone, float32 (frames,) or (frames, channels); channel c is scaled by 1/(c+1)."""
    t = np.arange(round(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return x
    return np.stack([x / (c + 1) for c in range(channels)], axis=1)


def noise(seconds: float, sr: int, amp: float = 0.1, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Gaussian noise, float32, clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    shape = (round(seconds * sr),) if channels == 1 else (round(seconds * sr), channels)
    return np.clip(amp * rng.standard_normal(shape), -1, 1).astype(np.float32)


def write_audio(
    path: str | Path, x: np.ndarray, sr: int, subtype: str | None = None, format: str | None = None
) -> Path:
    """Write ``x`` with soundfile (format from the extension unless given)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype, format=format)
    return path

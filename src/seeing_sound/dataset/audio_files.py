"""Mixture audio on disk: deterministic 16-bit quantization, FLAC/WAV, and its checksum."""

from __future__ import annotations

import hashlib
import io

import numpy as np

FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}


def quantize_pcm16(x: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] -> int16 by round-half-even, clipped; (T,) -> (T,) '<i2'.

    Deterministic on every platform, so a rebuilt mixture quantizes to the same bytes.
    """
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")


def pcm_sha256(pcm: np.ndarray) -> str:
    """Checksum of the stored samples (little-endian int16), independent of the container."""
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).hexdigest()


def encode(pcm: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode int16 samples as a FLAC or WAV file (lossless either way)."""
    import soundfile as sf

    if fmt not in FORMATS:
        raise ValueError(f"audio format must be one of {sorted(FORMATS)}, got {fmt!r}")
    container, subtype = FORMATS[fmt]
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def read_pcm16(path) -> tuple[np.ndarray, int]:
    """Decode a stored mixture back to its int16 samples and sample rate."""
    import soundfile as sf

    pcm, sr = sf.read(str(path), dtype="int16", always_2d=False)
    return pcm, sr

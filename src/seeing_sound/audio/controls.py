"""Audio prompts for the paper's generation controls (Sections 4.5, Figs. 4-7).

* semantic mixing: superpose sources, each LUFS-normalized to its own target (the same
  Eq. 1 gains and headroom rule as the training mixtures);
* loudness interpolation: one source swept over a LUFS range while the others stay fixed;
* separated vs mixed: the same sources one after another (concatenation) instead of at once;
* acoustic space: reverberation (pedalboard's Freeverb-style ``Reverb``).

All functions take and return float32 mono arrays at one sample rate; only :func:`reverb`
needs pedalboard. Feed the results to ``seeing-sound generate``.
"""

from __future__ import annotations

import numpy as np

from seeing_sound.audio.loudness import BLOCK_SECONDS, integrated_loudness
from seeing_sound.audio.mix import gains_db, headroom_gain_db, render_mixture


def loudness_of(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS) of a mono signal; signals under 0.4 s are measured zero-padded to 0.4 s."""
    x = np.asarray(x, dtype=np.float32)
    block = round(BLOCK_SECONDS * sr)
    if x.size < block:
        x = np.pad(x, (0, block - x.size))
    return float(integrated_loudness(x, sr))


def _pad_to(sources: list[np.ndarray], n: int) -> np.ndarray:
    out = np.zeros((len(sources), n), dtype=np.float32)
    for i, s in enumerate(sources):
        out[i, : min(n, s.size)] = s[:n]
    return out


def superpose(sources: list[np.ndarray], targets_lufs: list[float], sr: int) -> tuple[np.ndarray, float]:
    """Sum of the sources, each normalized to its target loudness (Eq. 1), with headroom.

    Args:
        sources: K mono float32 arrays (any lengths; shorter ones are zero-padded).
        targets_lufs: K targets.
    Returns:
        (mixture (max length,) float32, mixture_gain_db applied for headroom).
    """
    if not sources or len(sources) != len(targets_lufs):
        raise ValueError(f"give one target per source, got {len(sources)} sources and {len(targets_lufs)} targets")
    loud = np.array([loudness_of(s, sr) for s in sources])
    if not np.isfinite(loud).all():
        raise ValueError(
            f"source {int(np.flatnonzero(~np.isfinite(loud))[0])} is silent: it cannot be loudness-normalized"
        )
    chunks = _pad_to(sources, max(s.size for s in sources))
    gains = gains_db(np.asarray(targets_lufs, dtype=np.float64), loud)
    mix = render_mixture(chunks, gains)
    g = headroom_gain_db(mix)
    return render_mixture(chunks, gains, g), g


def concatenate(sources: list[np.ndarray], targets_lufs: list[float], sr: int, gap_seconds: float = 0.0) -> np.ndarray:
    """The sources one after another (each normalized to its target), separated by silence."""
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    gap = np.zeros(round(gap_seconds * sr), dtype=np.float32)
    parts = []
    for i, (s, t) in enumerate(zip(sources, targets_lufs, strict=True)):
        y, _ = superpose([s], [t], sr)
        parts.extend([y] if i == 0 else [gap, y])
    out = np.concatenate(parts)
    g = headroom_gain_db(out)
    return out if g == 0.0 else out * np.float32(10 ** (g / 20))


def interpolate(
    fixed: list[np.ndarray], fixed_lufs: list[float], moving: np.ndarray, sweep_lufs: list[float], sr: int
) -> list[np.ndarray]:
    """Fig. 5: one mixture per value of ``sweep_lufs`` for the moving source, the others fixed."""
    return [superpose([*fixed, moving], [*list(fixed_lufs), float(t)], sr)[0] for t in sweep_lufs]


def reverb(
    x: np.ndarray,
    sr: int,
    *,
    room_size: float = 0.8,
    damping: float = 0.5,
    wet_level: float = 0.35,
    dry_level: float = 0.6,
    tail_seconds: float = 2.0,
) -> np.ndarray:
    """Add reverberation (a room of ``room_size`` in [0, 1]); the output keeps a tail of ``tail_seconds``."""
    from pedalboard import Reverb

    for name, v in (("room_size", room_size), ("damping", damping), ("wet_level", wet_level), ("dry_level", dry_level)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    x = np.concatenate([np.asarray(x, dtype=np.float32), np.zeros(round(tail_seconds * sr), np.float32)])
    y = Reverb(room_size=room_size, damping=damping, wet_level=wet_level, dry_level=dry_level)(x, sr)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    g = headroom_gain_db(y)
    return y if g == 0.0 else y * np.float32(10 ** (g / 20))

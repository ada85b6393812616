"""``seeing-sound compose``: build audio prompts for the paper's controls from audio files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seeing_sound.audio import controls

DEFAULT_LUFS = -23.0


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """A whole file as float32 mono at ``sample_rate`` (same decode path as the pool)."""
    from seeing_sound.audio.io import BadAudio, stream_mono
    from seeing_sound.errors import SeeingSoundError

    try:
        blocks = list(stream_mono(path, sample_rate))
    except BadAudio as exc:
        raise SeeingSoundError(f"{path}: {exc}") from None
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _write(path: Path, x: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="FLOAT")
    return path


def _targets(lufs: Sequence[float] | None, n: int) -> list[float]:
    if not lufs:
        return [DEFAULT_LUFS] * n
    if len(lufs) == 1:
        return list(lufs) * n
    if len(lufs) != n:
        raise ValueError(f"lufs: give one value, or one per source ({n}), got {len(lufs)}")
    return list(lufs)


def compose(
    mode: str,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    lufs: Sequence[float] | None = None,
    sample_rate: int = 16000,
    gap_seconds: float = 0.0,
    sweep: Sequence[float] = (-40.0, -10.0),
    steps: int = 5,
    room_size: float = 0.8,
    wet_level: float = 0.35,
) -> list[Path]:
    """Write the audio prompt(s) of one control; returns the written files (32-bit float WAV).

    ``mix``: superpose the inputs at their ``lufs`` targets. ``concat``: the same sources one
    after another. ``interpolate``: the last input swept from ``sweep[0]`` to ``sweep[1]`` LUFS
    in ``steps`` files under ``out`` (a folder), the others at their targets. ``reverb``:
    each input with reverberation.
    """
    if not inputs:
        raise ValueError("give at least one audio file")
    sources = [load_mono(p, sample_rate) for p in inputs]
    out = Path(out)
    if mode == "mix":
        return [_write(out, controls.superpose(sources, _targets(lufs, len(sources)), sample_rate)[0], sample_rate)]
    if mode == "concat":
        return [
            _write(
                out, controls.concatenate(sources, _targets(lufs, len(sources)), sample_rate, gap_seconds), sample_rate
            )
        ]
    if mode == "interpolate":
        if len(sources) < 2 or steps < 2:
            raise ValueError(
                "interpolate needs at least two inputs (the last one moves) and steps >= 2, "
                f"got {len(sources)} inputs, steps={steps}"
            )
        values = np.linspace(sweep[0], sweep[1], steps)
        fixed = _targets(lufs, len(sources) - 1) if lufs is None or len(lufs) != len(sources) else list(lufs[:-1])
        mixes = controls.interpolate(sources[:-1], fixed, sources[-1], list(values), sample_rate)
        return [
            _write(out / f"{i:02d}_{v:+.1f}LUFS.wav", m, sample_rate)
            for i, (v, m) in enumerate(zip(values, mixes, strict=True))
        ]
    if mode == "reverb":
        written = []
        for p, s in zip(inputs, sources, strict=True):
            y = controls.reverb(s, sample_rate, room_size=room_size, wet_level=wet_level)
            target = out if len(inputs) == 1 else out / f"{Path(p).stem}-reverb.wav"
            written.append(_write(target, y, sample_rate))
        return written
    raise ValueError(f"mode must be mix, concat, interpolate or reverb, got {mode!r}")

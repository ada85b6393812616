"""Acoustic spaces (Fig. 7): a :class:`Space` -- pedalboard's Freeverb-style ``Reverb``, a real room
impulse response (any file), or a synthetic one of a given RT60 -- with the RT60 measured on the IR.

The render path (:func:`seeing_sound.audio.mix.render_tracks`, :class:`seeing_sound.audio.mixture.Mixture`)
applies a space to a mixture; the controls of :mod:`seeing_sound.audio.controls` build mixtures in one.
Only the Freeverb space needs pedalboard.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

from seeing_sound.audio.io import stream_mono
from seeing_sound.audio.loudness import loudness_of
from seeing_sound.hashing import file_sha256

__all__ = ["SPACE_KINDS", "Space", "measure_rt60", "synthetic_rir"]

SPACE_KINDS = ("freeverb", "ir", "rt60")
#: -60 dB in amplitude over RT60 seconds: exp(-a * RT60) = 10**(-3)
_DECAY = 3.0 * np.log(10.0)


def synthetic_rir(rt60_s: float, sr: int, *, seed: int = 0, drr_db: float = 0.0) -> np.ndarray:
    """A room impulse response of reverberation time ``rt60_s``: exponentially decaying Gaussian
    noise (the statistical model of a diffuse late field, Polack), 1.5 x RT60 long (to -90 dB), plus
    a direct-path impulse ``drr_db`` above the reverberant energy. Unit energy; (N,) float32.

    Deterministic in (rt60_s, sr, seed). Chosen over an image-source simulation (pyroomacoustics)
    because the RT60 is exact by construction and it needs no room geometry or extra dependency.
    """
    if not (np.isfinite(rt60_s) and 0.05 <= rt60_s <= 20.0):
        raise ValueError(f"rt60_s must be in [0.05, 20] seconds, got {rt60_s}")
    n = max(2, round(1.5 * rt60_s * sr))
    t = np.arange(n, dtype=np.float64) / sr
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-_DECAY * t / rt60_s)
    tail[0] = 0.0
    h = tail / np.sqrt(np.sum(tail**2))
    h[0] = np.sqrt(10.0 ** (drr_db / 10.0))
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def measure_rt60(ir: np.ndarray, sr: int) -> dict[str, float | None]:
    """RT60 of an impulse response from its Schroeder energy decay curve (ISO 3382).

    EDC(t) = sum_{tau >= t} h(tau)^2 in dB re its start; T20 and T30 are least-squares lines
    fitted on -5..-25 dB and -5..-35 dB, extrapolated to -60 dB. A decay that never reaches the
    fit's end gives ``None`` for that estimate. Returns ``{"t20_s", "t30_s", "edt_s"}`` (EDT: 0..-10 dB).
    """
    h = np.asarray(ir, dtype=np.float64).reshape(-1)
    energy = np.cumsum((h**2)[::-1])[::-1]
    if energy.size == 0 or energy[0] <= 0:
        raise ValueError("the impulse response is silent")
    with np.errstate(divide="ignore"):
        edc = 10.0 * np.log10(energy / energy[0])
    t = np.arange(h.size) / sr

    def fit(hi: float, lo: float) -> float | None:
        sel = (edc <= hi) & (edc >= lo)
        if edc.min() > lo or sel.sum() < 3:
            return None
        slope = np.polyfit(t[sel], edc[sel], 1)[0]
        return float(-60.0 / slope) if slope < 0 else None

    return {"t20_s": fit(-5.0, -25.0), "t30_s": fit(-5.0, -35.0), "edt_s": fit(0.0, -10.0)}


@lru_cache(maxsize=8)
def _load_ir(path: str, sr: int) -> np.ndarray:
    blocks = list(stream_mono(path, sr))  # any rate, any channels: resampled, channel mean
    ir = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    e = float(np.sum(ir.astype(np.float64) ** 2))
    if not e > 0:
        raise ValueError(f"impulse response {path} is silent")
    return (ir / np.sqrt(e)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Space:
    """An acoustic space applied to a mixture (Fig. 7).

    ``kind``: ``"freeverb"`` (pedalboard ``Reverb``: ``room_size``, ``damping``, ``wet_level``,
    ``dry_level``, output longer by ``tail_s``); ``"ir"`` (convolution with the impulse response in
    ``ir_path``, any rate/channels, normalized to unit energy; ``ir_sha256`` pins the file);
    ``"rt60"`` (convolution with :func:`synthetic_rir` of ``rt60_s`` and ``seed``).
    ``match_loudness`` scales the reverberant result back to the dry signal's integrated loudness,
    so spaces differ in reverberation only, not in level.
    """

    kind: str
    room_size: float = 0.8
    damping: float = 0.5
    wet_level: float = 0.35
    dry_level: float = 0.6
    tail_s: float = 2.0
    ir_path: str | None = None
    ir_sha256: str | None = None
    rt60_s: float | None = None
    seed: int = 0
    match_loudness: bool = True

    def __post_init__(self):
        if self.kind not in SPACE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SPACE_KINDS)}, got {self.kind!r}")
        for name in ("room_size", "damping", "wet_level", "dry_level"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if not (np.isfinite(self.tail_s) and self.tail_s >= 0):
            raise ValueError(f"tail_s must be >= 0, got {self.tail_s}")
        if self.kind == "ir" and not self.ir_path:
            raise ValueError("an 'ir' space needs ir_path")
        if self.kind == "rt60" and self.rt60_s is None:
            raise ValueError("an 'rt60' space needs rt60_s")

    @classmethod
    def from_ir(cls, path: str | Path, **kw) -> Space:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"impulse response file not found: {path}")
        return cls(kind="ir", ir_path=str(path), ir_sha256=file_sha256(path, prefixed=True), **kw)

    def impulse_response(self, sr: int) -> np.ndarray:
        """The space's IR at ``sr`` (for Freeverb: its response to a unit impulse)."""
        if self.kind == "rt60":
            assert self.rt60_s is not None
            return synthetic_rir(float(self.rt60_s), sr, seed=self.seed)
        if self.kind == "ir":
            assert self.ir_path is not None
            if self.ir_sha256 and file_sha256(self.ir_path, prefixed=True) != self.ir_sha256:
                raise ValueError(f"impulse response {self.ir_path} differs from the recorded {self.ir_sha256}")
            return _load_ir(str(self.ir_path), int(sr))
        impulse = np.zeros(round(0.05 * sr), np.float32)
        impulse[0] = 1.0
        return self._freeverb(impulse, sr)

    def _freeverb(self, x: np.ndarray, sr: int) -> np.ndarray:
        from pedalboard import Reverb

        x = np.concatenate([np.asarray(x, dtype=np.float32), np.zeros(round(self.tail_s * sr), np.float32)])
        fx = Reverb(room_size=self.room_size, damping=self.damping, wet_level=self.wet_level, dry_level=self.dry_level)
        return np.asarray(fx(x, sr), dtype=np.float32).reshape(-1)

    def apply(self, x: np.ndarray, sr: int) -> np.ndarray:
        """``x`` (T,) float32 in this space: (T + tail,) float32."""
        from scipy.signal import fftconvolve

        x = np.asarray(x, dtype=np.float32)
        if self.kind == "freeverb":
            y = self._freeverb(x, sr)
        else:
            y = fftconvolve(x.astype(np.float64), self.impulse_response(sr).astype(np.float64)).astype(np.float32)
        if self.match_loudness:
            dry, wet = loudness_of(x, sr), loudness_of(y, sr)
            if np.isfinite(dry) and np.isfinite(wet):
                y *= np.float32(10.0 ** ((dry - wet) / 20.0))
        return y

    def rt60(self, sr: int) -> dict[str, float | None]:
        """Asked (``rt60_s``, for a synthetic space) next to the RT60 measured on the IR."""
        return {"asked_s": self.rt60_s, **measure_rt60(self.impulse_response(sr), sr)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Space:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

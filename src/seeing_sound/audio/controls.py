"""Audio prompts for the paper's generation controls (Sections 4.5, Figs. 4-7).

* semantic mixing: superpose sources, each LUFS-normalized to its own target (the same
  Eq. 1 gains and headroom rule as the training mixtures);
* loudness interpolation: one source swept over a LUFS range while the others stay fixed, with
  one gain policy for the whole sweep, and every step's levels measured;
* separated vs mixed: the same sources one after another (concatenation) instead of at once;
* acoustic space: a :class:`~seeing_sound.audio.space.Space` -- pedalboard's Freeverb-style ``Reverb``, a
  real room impulse response (any file), or a synthetic one of a given RT60 -- with the RT60 measured on the IR
  (:mod:`seeing_sound.audio.space`, re-exported here).

Every control builds a :class:`~seeing_sound.audio.mixture.Mixture` recipe and renders it through the
one render path of :mod:`seeing_sound.audio.mix`. All functions take and return float32 mono arrays
at one sample rate; only the Freeverb space needs pedalboard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from seeing_sound.audio.mix import headroom_gain_db, loudness_of
from seeing_sound.audio.mixture import MixTrack, Mixture, common_headroom, normalized_mixture

# The acoustic space lives in space.py (the render path needs it); importable from here as before.
from seeing_sound.audio.space import SPACE_KINDS, Space, measure_rt60, synthetic_rir

__all__ = [
    "SPACE_KINDS",
    "Space",
    "SweepStep",
    "concatenate",
    "interpolate",
    "loudness_of",
    "measure_rt60",
    "measured_levels",
    "reverb",
    "superpose",
    "synthetic_rir",
]

# ---------------------------------------------------------------------------------------------
# Controls


def measured_levels(mixture: Mixture, sources: Sequence[np.ndarray]) -> dict:
    """Loudness each track actually reaches in the rendered mixture -- rendered alone with the same
    gains, space and whole-mixture gain, measured over its own span (from its offset to its end,
    tail included) -- the mixture's own loudness and its peak."""
    mix = mixture.render(sources)
    offsets = mixture.offsets()
    tracks = [
        round(loudness_of(mixture.render_track(k, s)[offsets[k] :], mixture.sample_rate), 3)
        for k, s in enumerate(sources)
    ]
    return {
        "tracks_lufs": tracks,
        "mixture_lufs": round(loudness_of(mix, mixture.sample_rate), 3),
        "peak": float(np.max(np.abs(mix))) if mix.size else 0.0,
    }


def superpose(
    sources: list[np.ndarray], targets_lufs: list[float], sr: int, *, headroom: str = "peak"
) -> tuple[np.ndarray, float]:
    """Sum of the sources, each normalized to its target loudness (Eq. 1), with headroom.

    Args:
        sources: K mono float32 arrays (any lengths; shorter ones end early).
        targets_lufs: K targets.
        headroom: "peak" (the dataset's rule: scale down if the peak exceeds 0.99) or "none".
    Returns:
        (mixture (max length,) float32, mixture_gain_db applied for headroom).
    """
    m = normalized_mixture(sources, targets_lufs, sr, headroom=headroom)
    return m.render(sources), m.mixture_gain_db


def concatenate(
    sources: list[np.ndarray], targets_lufs: list[float], sr: int, gap_seconds: float = 0.0, *, headroom: str = "peak"
) -> np.ndarray:
    """The sources one after another (each normalized to its target), separated by silence."""
    return concat_mixture(sources, targets_lufs, sr, gap_seconds, headroom=headroom).render(sources)


def concat_mixture(
    sources: Sequence[np.ndarray],
    targets_lufs: Sequence[float],
    sr: int,
    gap_seconds: float = 0.0,
    *,
    names: Sequence | None = None,
    headroom: str = "peak",
    loudness: Sequence[float] | None = None,
    space: Space | None = None,
) -> Mixture:
    """The recipe of :func:`concatenate`: tracks at offsets ``sum(previous lengths + gaps)``, optionally in a space."""
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    gap = round(gap_seconds * sr)
    offsets, at = [], 0
    for s in sources:
        offsets.append(at / sr)
        at += len(s) + gap
    return normalized_mixture(
        sources, targets_lufs, sr, names=names, offsets_s=offsets, headroom=headroom, loudness=loudness, space=space
    )


@dataclasses.dataclass(frozen=True)
class SweepStep:
    """One step of a loudness sweep: the asked level of the moving source, the recipe, the samples
    and the levels measured on them (:func:`measured_levels`)."""

    asked_lufs: float
    mixture: Mixture
    audio: np.ndarray
    measured: dict

    @property
    def reached_lufs(self) -> float:
        """Level the moving (last) source actually reached."""
        return float(self.measured["tracks_lufs"][-1])


def interpolate(
    fixed: list[np.ndarray],
    fixed_lufs: list[float],
    moving: np.ndarray,
    sweep_lufs: Sequence[float],
    sr: int,
    *,
    headroom: str = "none",
    names: Sequence | None = None,
    loudness: Sequence[float] | None = None,
) -> list[SweepStep]:
    """Fig. 5: one mixture per value of ``sweep_lufs`` for the moving source, the others fixed.

    One gain policy for the whole sweep, so the fixed sources sound at one level in every step:
    ``headroom="none"`` (default) keeps every source exactly at its target (32-bit float output may
    peak over full scale); ``"sweep"`` applies one whole-mixture gain to every step (the largest cut
    any step needs), so nothing exceeds 0.99 and the fixed sources sit at ``target + gain`` throughout.
    A per-step ``"peak"`` rule would move the fixed sources as the other one grows: refused.
    """
    if headroom not in ("none", "sweep"):
        raise ValueError(f"headroom must be 'none' or 'sweep' for a sweep, got {headroom!r}")
    sources = [*fixed, moving]
    loud = list(loudness) if loudness is not None else [loudness_of(s, sr) for s in sources]
    mixtures = [
        normalized_mixture(sources, [*fixed_lufs, float(t)], sr, names=names, headroom="none", loudness=loud)
        for t in sweep_lufs
    ]
    if headroom == "sweep":
        mixtures = common_headroom(mixtures, [sources] * len(mixtures))
    return [
        SweepStep(float(t), m, m.render(sources), measured_levels(m, sources))
        for t, m in zip(sweep_lufs, mixtures, strict=True)
    ]


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
    """Add Freeverb reverberation (a room of ``room_size`` in [0, 1]); the output keeps a tail of
    ``tail_seconds``, at the input's loudness, with peak headroom. See :class:`Space` for real IRs."""
    space = Space(
        "freeverb",
        room_size=room_size,
        damping=damping,
        wet_level=wet_level,
        dry_level=dry_level,
        tail_s=tail_seconds,
        match_loudness=False,
    )
    return in_space([x], sr, space)[0]


def in_space(
    sources: Sequence[np.ndarray],
    sr: int,
    space: Space,
    targets_lufs: Sequence[float] | None = None,
    *,
    names: Sequence | None = None,
    headroom: str = "peak",
) -> tuple[np.ndarray, Mixture]:
    """Sources superposed (at their targets, or unchanged if no targets) in ``space``."""
    if targets_lufs is None:
        m = Mixture(
            tuple(MixTrack(source=n, gain_db=0.0) for n in (names or range(len(sources)))),
            sr,
            space=space,
            headroom="none",
        )
        if headroom == "peak":
            m = m.with_gain(headroom_gain_db(m.render(sources)), "peak")
    else:
        m = normalized_mixture(sources, targets_lufs, sr, names=names, space=space, headroom=headroom)
    return m.render(sources), m

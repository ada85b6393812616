"""Mixtures as recipes: :class:`MixTrack` (a source, its gain and start) and :class:`Mixture`.

A :class:`Mixture` (after lhotse's ``MixedCut``/``MixTrack``) is what a dataset row, ``rebuild``,
the controls and the app record; it renders through :func:`seeing_sound.audio.mix.render_tracks`,
the one render path, so every mixture is made the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from seeing_sound.audio.mix import PcmSource, gains_db, headroom_gain_db, loudness_of, render_tracks
from seeing_sound.audio.space import Space


@dataclasses.dataclass(frozen=True)
class MixTrack:
    """One source of a :class:`Mixture`: what it is, its gain and where it starts.

    ``source`` names the audio (a pool chunk id, or a file path / label for a control);
    ``gain_db`` is Eq. 1's ``G = target_lufs - loudness_lufs`` (both kept when known, so the recipe
    says *why* the gain is what it is); ``offset_s`` places the source in time (0 = superposed).
    """

    source: int | str
    gain_db: float
    offset_s: float = 0.0
    target_lufs: float | None = None
    loudness_lufs: float | None = None

    def __post_init__(self):
        if not np.isfinite(self.gain_db):
            raise ValueError(f"gain_db must be finite, got {self.gain_db}")
        if not (np.isfinite(self.offset_s) and self.offset_s >= 0):
            raise ValueError(f"offset_s must be finite and >= 0, got {self.offset_s}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MixTrack:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass(frozen=True)
class Mixture:
    """A mixture as a recipe (lhotse's ``MixedCut``): tracks, sample rate, whole-mixture gain
    (headroom, in dB, <= 0 under the ``"peak"`` policy) and an optional acoustic space.

    :meth:`render` turns it into samples given the tracks' audio, through :func:`render_tracks`.
    Records are immutable: :meth:`with_gain` etc. return new ones.
    """

    tracks: tuple[MixTrack, ...]
    sample_rate: int
    mixture_gain_db: float = 0.0
    space: Space | None = None
    #: how ``mixture_gain_db`` was chosen: "peak" (per mixture, the dataset's rule), "sweep" (one gain
    #: for a series), "none" (0 dB: levels exactly as asked, float output may exceed full scale)
    headroom: str = "peak"

    def __post_init__(self):
        object.__setattr__(self, "tracks", tuple(self.tracks))
        if not self.tracks:
            raise ValueError("a mixture needs at least one track")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        if not np.isfinite(self.mixture_gain_db):
            raise ValueError(f"mixture_gain_db must be finite, got {self.mixture_gain_db}")
        if self.headroom not in HEADROOM_POLICIES:
            raise ValueError(f"headroom must be one of {', '.join(HEADROOM_POLICIES)}, got {self.headroom!r}")

    @property
    def gains(self) -> np.ndarray:
        return np.array([t.gain_db for t in self.tracks], dtype=np.float64)

    def offsets(self) -> list[int]:
        return [round(t.offset_s * self.sample_rate) for t in self.tracks]

    def with_gain(self, mixture_gain_db: float, headroom: str | None = None) -> Mixture:
        return dataclasses.replace(self, mixture_gain_db=float(mixture_gain_db), headroom=headroom or self.headroom)

    def render(
        self, signals: Sequence[np.ndarray], factors: np.ndarray | None = None, *, length: int | None = None
    ) -> np.ndarray:
        """Samples (float32) of the recipe; ``signals[k]`` is track k's audio (int16 rows with their
        ``factors``, as ``AudioPool.pcm_rows`` gives them, or float32 with no factors)."""
        if len(signals) != len(self.tracks):
            raise ValueError(f"give one signal per track ({len(self.tracks)}), got {len(signals)}")
        f = np.ones(len(self.tracks), np.float32) if factors is None else np.asarray(factors, np.float32)
        coef = (10.0 ** (self.gains / 20.0)).astype(np.float32) * f.reshape(-1)
        return render_tracks(
            signals,
            coef,
            self.offsets(),
            length=length,
            space=self.space,
            sample_rate=self.sample_rate,
            mixture_gain_db=self.mixture_gain_db,
        )

    def render_track(self, k: int, signal: np.ndarray, *, length: int | None = None) -> np.ndarray:
        """Track ``k`` alone, as it sounds in the rendered mixture (same gains, space and mixture gain)."""
        alone = dataclasses.replace(self, tracks=(self.tracks[k],))
        return alone.render([signal], length=length)

    def to_dict(self) -> dict:
        return {
            "tracks": [t.to_dict() for t in self.tracks],
            "sample_rate": int(self.sample_rate),
            "mixture_gain_db": float(self.mixture_gain_db),
            "headroom": self.headroom,
            "space": None if self.space is None else self.space.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Mixture:
        space = None
        if d.get("space"):
            space = Space.from_dict(d["space"])
        return cls(
            tracks=tuple(MixTrack.from_dict(t) for t in d["tracks"]),
            sample_rate=int(d["sample_rate"]),
            mixture_gain_db=float(d.get("mixture_gain_db") or 0.0),
            space=space,
            headroom=d.get("headroom", "peak"),
        )

    @classmethod
    def from_pair(cls, row: dict, sample_rate: int | None = None) -> Mixture:
        """The recipe of a pairs-dataset row (``components`` + ``mixture_gain_db``)."""
        comps = row.get("components") or []
        return cls(
            tracks=tuple(
                MixTrack(
                    source=int(c["chunk_id"]),
                    gain_db=float(c["gain_db"]),
                    target_lufs=c.get("target_lufs"),
                    loudness_lufs=c.get("chunk_lufs"),
                )
                for c in comps
            ),
            sample_rate=int(sample_rate or row.get("sample_rate") or 16000),
            mixture_gain_db=float(row.get("mixture_gain_db") or 0.0),
        )

    def render_from_pool(self, pool: PcmSource) -> np.ndarray:
        """Render a recipe whose sources are pool chunk ids (what ``rebuild`` does, same bits)."""
        rows, factors = pool.pcm_rows([int(t.source) for t in self.tracks])
        return self.render(rows, factors)


HEADROOM_POLICIES = ("peak", "sweep", "none")


def normalized_mixture(
    sources: Sequence[np.ndarray],
    targets_lufs: Sequence[float],
    sample_rate: int,
    *,
    names: Sequence[Any] | None = None,
    offsets_s: Sequence[float] | None = None,
    space: Space | None = None,
    headroom: str = "peak",
    loudness: Sequence[float] | None = None,
) -> Mixture:
    """The recipe that LUFS-normalizes each source to its target (Eq. 1) and sums them.

    ``loudness`` (measured if not given) is each source's integrated loudness; a silent source
    raises ``ValueError``. ``headroom="peak"`` then scales the whole mixture down if its peak exceeds
    :data:`PEAK_CEILING` (the dataset's rule); ``"none"`` keeps every source exactly at its target
    (float output may exceed full scale); ``"sweep"`` is set by the caller for a series
    (:func:`common_headroom`).
    """
    if not sources or len(sources) != len(targets_lufs):
        raise ValueError(f"give one target per source, got {len(sources)} sources and {len(targets_lufs)} targets")
    loud = np.array([loudness_of(s, sample_rate) for s in sources] if loudness is None else loudness, np.float64)
    if not np.isfinite(loud).all():
        raise ValueError(
            f"source {int(np.flatnonzero(~np.isfinite(loud))[0])} is silent: it cannot be loudness-normalized"
        )
    gains = gains_db(np.asarray(targets_lufs, dtype=np.float64), loud)
    names = list(names) if names is not None else list(range(len(sources)))
    offs = list(offsets_s) if offsets_s is not None else [0.0] * len(sources)
    mixture = Mixture(
        tracks=tuple(
            MixTrack(source=n, gain_db=float(g), offset_s=float(o), target_lufs=float(t), loudness_lufs=float(lo))
            for n, g, o, t, lo in zip(names, gains, offs, targets_lufs, loud, strict=True)
        ),
        sample_rate=int(sample_rate),
        space=space,
        headroom=headroom,
    )
    if headroom == "peak":
        mixture = mixture.with_gain(headroom_gain_db(mixture.render(sources)))
    return mixture


def common_headroom(mixtures: Sequence[Mixture], signals: Sequence[Sequence[np.ndarray]]) -> list[Mixture]:
    """One whole-mixture gain for a series (the ``"sweep"`` policy): the smallest per-mixture headroom
    gain, so no mixture clips and every source keeps the same level offset in every mixture."""
    g = min(headroom_gain_db(m.with_gain(0.0).render(s)) for m, s in zip(mixtures, signals, strict=True))
    return [m.with_gain(g, "sweep") for m in mixtures]

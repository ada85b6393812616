"""LUFS-normalize retrieved chunks and sum them (paper Section 3.3, Appendix A.9, Eq. 1).

All pure numpy. A mixture is a *recipe* (:mod:`seeing_sound.audio.mixture`): a ``Mixture`` of ``MixTrack`` s (source id,
gain in dB, start offset), a whole-mixture gain and optionally an acoustic space (after lhotse's
``MixedCut``/``MixTrack``). :func:`render_tracks` is the one render path: gain -> sum -> space ->
whole-mixture gain. ``sonify``, ``rebuild`` (through :func:`render_scaled` / :func:`mix_from_pool`,
whose signatures and bits are unchanged), the dataset browser and every control of
:mod:`seeing_sound.audio.controls` render through it, so a rebuilt mixture is bit-identical to the
original and a control's prompt is made exactly like a training mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

# loudness_of lives in loudness.py (space.py needs it too); re-exported, importable from here as before.
from seeing_sound.audio.loudness import loudness_of as loudness_of
from seeing_sound.audio.space import Space


class PcmSource(Protocol):
    """Where mixing reads chunks from (an :class:`~seeing_sound.pool.AudioPool` is one): the stored int16
    rows of ``ids`` and their float32 factors (``row * factor`` is the chunk)."""

    def pcm_rows(self, ids) -> tuple[list[np.ndarray], np.ndarray]: ...


#: default target range (LUFS). The paper only says "very small variance"; -23 LUFS is the
#: EBU R128 programme level, and +/-2 LU varies the sources' balance a little (the loudness
#: control of Fig. 5 needs *some* variation) without one source routinely burying another.
DEFAULT_LUFS_RANGE = (-25.0, -21.0)
#: mixtures whose peak exceeds this are scaled down as a whole (recorded as mixture_gain_db)
PEAK_CEILING = 0.99
#: domain tag that separates the loudness draw from retrieval's choice for the same concept
_LUFS_STREAM = 0x4C554653  # "LUFS"


def target_lufs(seeds: np.ndarray, lufs_range: tuple[float, float] = DEFAULT_LUFS_RANGE) -> np.ndarray:
    """Per-concept loudness targets γ ~ U[lo, hi], one independent draw per seed.

    Args:
        seeds: (Q,) uint64, from ``concept_seed(seed, image_id, concept_index)``.
    Returns:
        (Q,) float64. U = top 53 bits of SplitMix64(seed XOR a "LUFS" tag) / 2**53: a
        vectorized, version-proof draw that depends on its own seed only (never on batch
        order or size), and is independent of retrieval's choice for the same concept.
    """
    from seeing_sound.seeding import splitmix64

    lo, hi = (float(v) for v in lufs_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi <= 0):
        raise ValueError(f"lufs_range must be finite with lo <= hi <= 0, got {lufs_range}")
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    u = (splitmix64(seeds ^ np.uint64(_LUFS_STREAM)) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return lo + (hi - lo) * u


def gains_db(target: np.ndarray, loudness: np.ndarray) -> np.ndarray:
    """Eq. 1's gain G = γ − l (dB) per chunk; (K,), (K,) -> (K,) float64.

    Raises ``ValueError`` for a silent chunk (l = -inf): there is no gain that normalizes it.
    """
    target = np.asarray(target, dtype=np.float64)
    loudness = np.asarray(loudness, dtype=np.float64)
    if not np.isfinite(loudness).all():
        raise ValueError("loudness must be finite: silent chunks cannot be loudness-normalized")
    return target - loudness


def render_mixture(chunks: np.ndarray, gains: np.ndarray, mixture_gain_db: float = 0.0) -> np.ndarray:
    """Sum of ``chunks[k] * 10**(gains[k] / 20)``, times the mixture gain.

    Args:
        chunks: (K, T) float32, the pool chunks as read.
        gains: (K,) float64, dB per chunk.
        mixture_gain_db: whole-mixture gain in dB (<= 0: headroom, see :func:`headroom_gain_db`).
    Returns:
        (T,) float32; :func:`render_scaled` with unit factors (same bits).
    """
    chunks = np.asarray(chunks, dtype=np.float32)
    gains = np.asarray(gains, dtype=np.float64).reshape(-1)
    if chunks.ndim != 2 or chunks.shape[0] != gains.size:
        raise ValueError(f"chunks must be (K, T) with K = len(gains) = {gains.size}, got {chunks.shape}")
    return render_scaled(list(chunks), np.ones(gains.size, np.float32), gains, mixture_gain_db)


def render_scaled(rows, factors: np.ndarray, gains: np.ndarray, mixture_gain_db: float = 0.0) -> np.ndarray:
    """:func:`render_mixture` straight from stored int16 rows: ``sum(rows[k] * factors[k] * 10**(gains[k]/20))``.

    Args:
        rows: K arrays (T,) of int16 as stored in the pool (``AudioPool.pcm_rows``).
        factors: (K,) float32 int16 -> float scale of each row.
        gains: (K,) float64 dB.
    Returns:
        (T,) float32. One float32 multiply-add pass per row in a fixed order (no float32 copy
        of each chunk first; K is 1-3, so float32 loses nothing audible): ``sonify`` and
        ``rebuild`` both render through here, so their bits agree.
    """
    gains = np.asarray(gains, dtype=np.float64).reshape(-1)
    factors = np.asarray(factors, dtype=np.float32).reshape(-1)
    if len(rows) != gains.size or factors.size != gains.size:
        raise ValueError(
            f"rows, factors and gains must have one entry per chunk, got {len(rows)}, {factors.size}, {gains.size}"
        )
    if not rows:
        raise ValueError("a mixture needs at least one chunk")
    coef = (10.0 ** (gains / 20.0)).astype(np.float32) * factors
    return render_tracks(rows, coef, mixture_gain_db=mixture_gain_db)


def render_tracks(
    rows: Sequence[np.ndarray],
    coef: np.ndarray,
    offsets: Sequence[int] | None = None,
    *,
    length: int | None = None,
    space: Space | None = None,
    sample_rate: int | None = None,
    mixture_gain_db: float = 0.0,
) -> np.ndarray:
    """The one render path: ``sum_k rows[k] * coef[k]`` placed at ``offsets[k]``, then the acoustic
    ``space`` (if any), then the whole-mixture gain.

    Args:
        rows: K arrays (T_k,), int16 or float32.
        coef: (K,) float32 linear factors (``10**(gain/20)`` times the row's int16 scale).
        offsets: K start samples (default all 0).
        length: output samples (default ``max(offsets[k] + T_k)``); longer rows are cut.
        space: an :class:`~seeing_sound.audio.space.Space` applied to the sum (needs ``sample_rate``).
    Returns:
        (length,) float32. One float32 multiply-add pass per row in a fixed order; with zero offsets
        and equal lengths the first row is multiplied straight into the output (no ``0 + x`` pass, which
        would turn ``-0.0`` into ``0.0``), so the bits equal those of the original two-line render.
    """
    coef = np.asarray(coef, dtype=np.float32).reshape(-1)
    if not len(rows):
        raise ValueError("a mixture needs at least one chunk")
    if coef.size != len(rows):
        raise ValueError(f"rows and coef must have one entry per track, got {len(rows)} and {coef.size}")
    offs = [0] * len(rows) if offsets is None else [int(o) for o in offsets]
    if len(offs) != len(rows) or min(offs) < 0:
        raise ValueError(f"offsets must be {len(rows)} start samples >= 0, got {offsets}")
    n = max(o + len(r) for o, r in zip(offs, rows, strict=True)) if length is None else int(length)
    first = rows[0]
    if offs[0] == 0 and len(first) == n:
        mix = np.multiply(first, coef[0], dtype=np.float32)
        start = 1
    else:
        mix = np.zeros(n, dtype=np.float32)
        start = 0
    tmp = np.empty(n, dtype=np.float32)
    for k in range(start, len(rows)):
        m = max(0, min(len(rows[k]), n - offs[k]))
        if m == 0:
            continue
        np.multiply(rows[k][:m], coef[k], out=tmp[:m], dtype=np.float32)
        mix[offs[k] : offs[k] + m] += tmp[:m]
    if space is not None:
        if sample_rate is None:
            raise ValueError("a mixture with an acoustic space needs its sample_rate")
        mix = space.apply(mix, int(sample_rate))
    return apply_gain(mix, mixture_gain_db)


def mix_from_pool(
    pool: PcmSource, ids, loudness: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """:func:`mix_recipe` reading the chunks from an ``AudioPool`` without materializing them.

    Returns (gains_db (K,), mixture_gain_db, mixture (T,) float32); the mixture equals
    ``render_scaled(*pool.pcm_rows(ids), gains, mixture_gain_db)`` bit for bit.
    """
    rows, factors = pool.pcm_rows(ids)
    return _mix(rows, factors, loudness, targets)


def _mix(rows, factors, loudness, targets) -> tuple[np.ndarray, float, np.ndarray]:
    """Gains from loudness and targets, render, headroom: the one mixing step."""
    gains = gains_db(targets, loudness)
    mix = render_scaled(rows, factors, gains)
    g_mix = headroom_gain_db(mix)
    return gains, g_mix, apply_gain(mix, g_mix)  # == render_scaled(rows, factors, gains, g_mix), bit for bit


def apply_gain(mix: np.ndarray, gain_db: float) -> np.ndarray:
    """``mix * 10**(gain_db / 20)`` in place (float32); 0 dB leaves it untouched."""
    if gain_db != 0.0:
        mix *= np.float32(10.0 ** (float(gain_db) / 20.0))
    return mix


def headroom_gain_db(mix: np.ndarray, ceiling: float = PEAK_CEILING) -> float:
    """0 dB if ``mix`` peaks at or under ``ceiling``, else the (negative) gain that brings its
    peak to ``ceiling``. The sum of normalized sources can exceed full scale; scaling the
    whole mixture (and recording by how much) loses nothing and keeps the file playable."""
    peak = max(float(mix.max()), -float(mix.min())) if mix.size else 0.0
    if peak <= ceiling:
        return 0.0
    return 20.0 * np.log10(ceiling / peak)


def mix_recipe(chunks: np.ndarray, loudness: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The whole mixing step: gains from loudness and targets, headroom, final samples.

    Returns (gains_db (K,), mixture_gain_db, mixture (T,) float32).
    """
    chunks = np.asarray(chunks, dtype=np.float32)
    return _mix(list(chunks), np.ones(chunks.shape[0], np.float32), loudness, targets)


# ---------------------------------------------------------------------------------------------
# The mixture record

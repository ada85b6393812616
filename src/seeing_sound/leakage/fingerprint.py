"""Audio fingerprints robust to resampling, re-encoding, gain and offset: spectral-peak landmarks.

The method is Wang's (2003, the Shazam paper), in pure numpy:

1. **Spectrogram.** Mono audio is resampled to 8 kHz (the band where music and effects keep their
   strongest, most codec-proof peaks) and turned into a log-magnitude STFT (512-sample Hann
   window = 64 ms, hop 128 = 16 ms, 257 bins of 15.6 Hz).
2. **Peaks.** A time-frequency point is a peak when it is the maximum of its neighbourhood
   (±``PEAK_FREQ`` bins, ±``PEAK_TIME`` frames) and within ``PEAK_RANGE_DB`` of the clip's loudest
   bin; at most ``PEAKS_PER_SECOND`` of the strongest are kept per second. Peaks are relative to
   the clip itself, so a gain change or a 16 kHz -> 22.05 kHz -> 16 kHz round trip leaves them
   where they were, and lossy codecs keep the strong ones.
3. **Landmarks.** Each peak (anchor) is paired with up to ``FAN_OUT`` later peaks in a target zone
   (1..``MAX_DT`` frames later, within ±``MAX_DF`` bins): hash = (f1, f2, dt) packed in 24 bits,
   stored with the anchor's frame. A hash does not depend on where the clip starts.
4. **Offset-consistent votes.** Two clips share audio when many of their hashes agree *and* the
   agreeing hashes have the same time offset (query frame - reference frame). Votes are counted
   per (reference, offset) over a 2-frame window (an offset that is not a whole number of hops
   splits its votes between two neighbouring frames). The score of a pair is its best offset's
   votes; ``ratio`` divides it by the smaller clip's hash count.

Hashes that occur in very many reference positions (a stationary hum, a pure tone) say little about
identity and cost much time; :func:`match` ignores those above ``max_postings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: fingerprint sample rate and STFT (see the module docs)
FP_RATE = 8000
N_FFT = 512
HOP = 128
PEAK_FREQ = 8
PEAK_TIME = 4
PEAK_RANGE_DB = 50.0
PEAKS_PER_SECOND = 40
FAN_OUT = 6
MAX_DT = 63
MAX_DF = 64
#: seconds per STFT hop (the unit of :attr:`Match.offset_frames`)
FRAME_SECONDS = HOP / FP_RATE


@dataclass(frozen=True)
class Fingerprint:
    """Landmark hashes of one clip: ``hashes`` int64 (n,) and their anchor frames ``times`` int32 (n,)."""

    hashes: np.ndarray
    times: np.ndarray
    frames: int

    def __len__(self) -> int:
        return int(self.hashes.size)


def _resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate == FP_RATE or x.size == 0:
        return x
    import soxr

    return np.asarray(soxr.resample(x, sample_rate, FP_RATE, quality="HQ"), dtype=np.float32)


def log_spectrogram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono audio (n,) at ``sample_rate`` -> log magnitude in dB, float32 (frames, N_FFT // 2 + 1)."""
    x = _resample(audio, sample_rate)
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    frames = 1 + (x.size - N_FFT) // HOP
    windows = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:frames]
    mag = np.abs(np.fft.rfft(windows * np.hanning(N_FFT).astype(np.float32), axis=1))
    return (20.0 * np.log10(mag + 1e-9)).astype(np.float32)


def _running_max(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Maximum over a window of ±``radius`` along ``axis`` (edges padded with -inf)."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    p = np.pad(a, pad, constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(p, 2 * radius + 1, axis=axis).max(axis=-1)


def spectral_peaks(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark peaks of a log spectrogram (frames, bins): (frame, bin) int arrays sorted by frame, bin."""
    if spec.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    local = _running_max(_running_max(spec, PEAK_TIME, 0), PEAK_FREQ, 1)
    floor = float(spec.max()) - PEAK_RANGE_DB
    is_peak = (spec == local) & (spec > floor)
    is_peak[:, 0] = False  # DC carries offsets, not content
    t, f = np.nonzero(is_peak)
    if t.size == 0:
        return t, f
    strength = spec[t, f]
    block = t // max(1, round(1.0 / FRAME_SECONDS))  # one-second blocks
    order = np.lexsort((-strength, block))  # by block, strongest first
    block_sorted = block[order]
    starts = np.searchsorted(block_sorted, block_sorted, side="left")
    rank = np.arange(order.size) - starts
    keep = order[rank < PEAKS_PER_SECOND]
    keep = keep[np.lexsort((f[keep], t[keep]))]
    return t[keep], f[keep]


def landmarks(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair each peak with up to FAN_OUT later peaks in its target zone -> (hashes int64, anchor frames int32)."""
    hashes: list[np.ndarray] = []
    times: list[np.ndarray] = []
    n = t.size
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    taken = np.zeros(n, np.int64)
    # Peaks are sorted by frame: the j-th later peak of every anchor at once, for j = 1, 2, ...
    for j in range(1, n):
        i = np.arange(n - j)
        k = i + j
        dt = t[k] - t[i]
        alive = (dt <= MAX_DT) & (taken[i] < FAN_OUT)
        if not alive.any():
            break
        ok = alive & (np.abs(f[k] - f[i]) <= MAX_DF)  # dt 0: same frame, higher bin
        ii = i[ok]
        hashes.append((f[ii].astype(np.int64) << 15) | (f[k[ok]].astype(np.int64) << 6) | dt[ok].astype(np.int64))
        times.append(t[ii].astype(np.int32))
        taken[ii] += 1
    if not hashes:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    return np.concatenate(hashes), np.concatenate(times)


def fingerprint(audio: np.ndarray, sample_rate: int) -> Fingerprint:
    """Landmark fingerprint of mono ``audio`` (n,) at ``sample_rate`` (see the module docs)."""
    spec = log_spectrogram(audio, sample_rate)
    if not np.isfinite(spec).all() or float(np.max(np.abs(np.asarray(audio, np.float32)), initial=0.0)) == 0.0:
        return Fingerprint(np.zeros(0, np.int64), np.zeros(0, np.int32), int(spec.shape[0]))
    t, f = spectral_peaks(spec)
    h, times = landmarks(t, f)
    return Fingerprint(h, times, int(spec.shape[0]))


@dataclass(frozen=True)
class Match:
    """The best offset-consistent agreement between a query clip and one reference clip."""

    query: int
    ref: int
    votes: int  # hashes that agree at the best offset (2-frame window)
    ratio: float  # votes / hash count of the smaller of the two clips
    offset_frames: int  # query frame - reference frame at the best offset
    matched: int  # agreeing hashes at any offset (the best offset's and chance ones)

    @property
    def concentration(self) -> float:
        """Share of the agreeing hashes that agree on the best offset: near 1 for shared audio, small when
        the agreement is spread over every offset (chance, or stationary sound such as a steady hum)."""
        return self.votes / self.matched if self.matched else 0.0

    @property
    def offset_s(self) -> float:
        """Where the reference starts in the query, in seconds (positive: later than the query's start)."""
        return self.offset_frames * FRAME_SECONDS


class FingerprintIndex:
    """Reference fingerprints, inverted by hash, for :func:`match`."""

    def __init__(self, refs: Sequence[Fingerprint]):
        counts = np.array([len(r) for r in refs], dtype=np.int64)
        self.counts = counts
        self.size = len(refs)
        if counts.sum():
            h = np.concatenate([r.hashes for r in refs])
            t = np.concatenate([r.times for r in refs]).astype(np.int64)
            owner = np.repeat(np.arange(len(refs), dtype=np.int64), counts)
            order = np.argsort(h, kind="stable")
            self.hashes, self.times, self.owner = h[order], t[order], owner[order]
        else:
            self.hashes = np.zeros(0, np.int64)
            self.times = np.zeros(0, np.int64)
            self.owner = np.zeros(0, np.int64)


def match(
    query: Fingerprint,
    index: FingerprintIndex,
    *,
    query_id: int = 0,
    min_votes: int = 1,
    max_postings: int = 5000,
) -> list[Match]:
    """Every reference with at least ``min_votes`` offset-consistent votes for ``query``, best first."""
    if not len(query) or not index.hashes.size:
        return []
    lo = np.searchsorted(index.hashes, query.hashes, side="left")
    hi = np.searchsorted(index.hashes, query.hashes, side="right")
    n = hi - lo
    use = (n > 0) & (n <= max_postings)
    if not use.any():
        return []
    lo, n, qt = lo[use], n[use], query.times[use].astype(np.int64)
    # Expand every (query hash, posting) pair without a Python loop.
    total = int(n.sum())
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    pos = starts + np.arange(total)
    refs = index.owner[pos]
    offsets = np.repeat(qt, n) - index.times[pos]
    span = 1 << 24  # offsets are within ±2**23 frames (~37 h at 16 ms)
    keys = refs * span + (offsets + span // 2)
    uniq, counts = np.unique(keys, return_counts=True)
    # 2-frame window: votes at offset o plus those at o + 1 (same reference)
    nxt = np.searchsorted(uniq, uniq + 1)
    has_next = (nxt < uniq.size) & (uniq[np.minimum(nxt, uniq.size - 1)] == uniq + 1)
    window = counts + np.where(has_next, counts[np.minimum(nxt, uniq.size - 1)], 0)
    ref_of = uniq // span
    matched = np.bincount(ref_of, weights=counts, minlength=index.size)
    order = np.lexsort((-window, ref_of))
    first = np.ones(order.size, bool)
    first[1:] = ref_of[order][1:] != ref_of[order][:-1]
    best = order[first]
    out = []
    for b in best:
        votes = int(window[b])
        if votes < min_votes:
            continue
        r = int(ref_of[b])
        smaller = max(1, min(len(query), int(index.counts[r])))
        offset = int(uniq[b] % span) - span // 2
        out.append(Match(query_id, r, votes, votes / smaller, offset, int(matched[r])))
    out.sort(key=lambda m: (-m.votes, m.ref))
    return out

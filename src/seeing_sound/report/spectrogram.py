"""Spectrogram thumbnails for the report: log-magnitude STFT in numpy, a fixed colormap, PNG bytes.

The scale is absolute (dBFS, not normalised per image), so two thumbnails side by side compare:
a quiet component looks darker than a loud one. Same samples give the same bytes.
"""

from __future__ import annotations

import io
import itertools

import numpy as np

N_FFT = 512
WIDTH = 160  # frames (pixels) across, whatever the duration
HEIGHT = 64  # frequency rows on a log axis from the first FFT bin up to Nyquist
DB_RANGE = (-90.0, 0.0)  # dBFS mapped onto the colormap; below is black, above is the top colour

# Stops of a dark-to-bright "magma"-like map, interpolated to 256 entries once.
_STOPS = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
     [252, 255, 164]],
    dtype=np.float64,
)  # fmt: skip
COLORMAP = (
    np.stack(
        [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c]) for c in range(3)], axis=1
    )
    .round()
    .astype(np.uint8)
)


def log_spectrogram(x: np.ndarray, n_fft: int = N_FFT, frames: int = WIDTH) -> np.ndarray:
    """Log-magnitude STFT of a mono signal.

    Args:
        x: float (n,) samples, full scale 1.0 (shorter than ``n_fft``: zero-padded).
        n_fft: FFT size (Hann window); hop is chosen so that there are ``frames`` frames.
        frames: number of time frames.
    Returns:
        float32 (n_fft // 2, frames) in dBFS: a full-scale sine peaks near 0 dB.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    starts = np.linspace(0, x.size - n_fft, frames).round().astype(np.int64)
    window = np.hanning(n_fft)
    segments = x[starts[:, None] + np.arange(n_fft)[None, :]] * window
    mag = np.abs(np.fft.rfft(segments, axis=1))[:, : n_fft // 2] * (2.0 / window.sum())
    return (20.0 * np.log10(np.maximum(mag, 1e-6))).T.astype(np.float32)


def spectrogram_rgb(x: np.ndarray) -> np.ndarray:
    """uint8 (HEIGHT, WIDTH, 3) image of ``log_spectrogram(x)``: low frequencies at the bottom.

    Rows are log-spaced in frequency (each the loudest of its FFT bins), like the ear and like
    mel spectrograms: a 220 Hz hum sits a third of the way up, not on the bottom row."""
    db = log_spectrogram(x)
    edges = np.geomspace(1, db.shape[0], HEIGHT + 1).astype(np.int64)
    rows = np.stack([db[lo : max(hi, lo + 1)].max(axis=0) for lo, hi in itertools.pairwise(edges)])
    rows = rows[::-1]
    lo, hi = DB_RANGE
    level = np.clip((rows - lo) / (hi - lo), 0.0, 1.0)
    return COLORMAP[(level * 255).round().astype(np.int64)]


def spectrogram_png(x: np.ndarray) -> bytes:
    """PNG bytes of :func:`spectrogram_rgb` (a few kB; no timestamps, so deterministic)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(spectrogram_rgb(x), "RGB").save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()

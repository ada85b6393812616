"""Streaming decode -> mono -> resample, with bad files classified by reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: extensions we hand to libsndfile; anything else is recorded as ``unsupported_format``
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf"}
)

#: input frames decoded per block: bounded memory for hour-long files, large enough to amortize calls
BLOCK_FRAMES = 1 << 16


class BadAudio(Exception):
    """A source file that cannot become pool chunks; ``reason`` is a short stable key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def file_checksum(path: str | Path, bufsize: int = 1 << 20) -> str:
    """Content checksum of a source file, ``"blake3:<hex>"``.

    BLAKE3 is cryptographic like SHA-256 but ~3x faster here (2.6 vs 0.9 GB/s on one core),
    which matters when every source byte is hashed once at ingest.
    """
    from blake3 import blake3

    h = blake3(max_threads=1)
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return "blake3:" + h.hexdigest()


def downmix(block: np.ndarray) -> np.ndarray:
    """Channel mean, (frames, channels) -> (frames,).

    The mean, not the sum: summing correlated stereo doubles the amplitude (+6 dB), which
    clips full-scale material and shifts every loudness value the mixer relies on.
    """
    if block.ndim == 1:
        return block
    if block.shape[1] == 1:
        return block[:, 0]
    # Column adds: numpy's axis=1 reduction over 2 channels is ~10x slower than this.
    out = block[:, 0].copy()
    for c in range(1, block.shape[1]):
        out += block[:, c]
    out *= np.float32(1.0 / block.shape[1])
    return out


def stream_mono(path: str | Path, sample_rate: int, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks of ``path`` resampled to ``sample_rate`` (soxr HQ).

    Streams: memory is bounded by ``block_frames`` whatever the file length.
    Raises :class:`BadAudio` (reasons: ``empty_file``, ``unsupported_format``,
    ``unreadable``, ``empty``, ``decode_error``, ``non_finite``).
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise BadAudio("unsupported_format", f"extension {path.suffix or '(none)'!r}")
    try:
        if path.stat().st_size == 0:
            raise BadAudio("empty_file", "0 bytes")
        fh = sf.SoundFile(str(path))
    except BadAudio:
        raise
    except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError/TypeError
        raise BadAudio("unreadable", str(exc).splitlines()[0][:200]) from None
    with fh:
        if fh.samplerate <= 0 or fh.channels <= 0:
            raise BadAudio("unreadable", f"samplerate={fh.samplerate} channels={fh.channels}")
        resampler = None
        if fh.samplerate != sample_rate:
            resampler = soxr.ResampleStream(fh.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
        total = 0
        while True:
            try:
                block = fh.read(block_frames, dtype="float32", always_2d=True)
            except Exception as exc:
                raise BadAudio("decode_error", f"after {total} frames: {str(exc).splitlines()[0][:200]}") from None
            last = block.shape[0] < block_frames
            if block.size and not np.isfinite(block).all():
                raise BadAudio("non_finite", f"NaN/inf near frame {total}")
            total += block.shape[0]
            mono = downmix(block)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if mono.size:
                yield mono
            if last:
                break
        if total == 0:
            raise BadAudio("empty", "no audio frames")

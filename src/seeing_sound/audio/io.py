"""Streaming decode -> mono -> resample, with bad files classified by reason."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: extensions we hand to libsndfile; anything else is recorded as ``unsupported_format``
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf"}
)

log = logging.getLogger(__name__)

#: input frames decoded per block: bounded memory for hour-long files, large enough to amortize calls
BLOCK_FRAMES = 1 << 16
#: after a block fails to decode, it is re-read in steps this small so every good frame before the damage is kept
SALVAGE_FRAMES = 1 << 10


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


def _salvage(path: Path, start: int, limit: int) -> np.ndarray | None:
    """Frames ``start..`` (at most ``limit``) of a file whose block read failed, in small steps until
    the damage; (frames, channels) float32, or None if not one more frame decodes."""
    import soundfile as sf

    pieces = []
    try:
        with sf.SoundFile(str(path)) as fh:
            fh.seek(start)
            got = 0
            while got < limit:
                piece = fh.read(min(SALVAGE_FRAMES, limit - got), dtype="float32", always_2d=True)
                if not piece.shape[0]:
                    break
                pieces.append(piece)
                got += piece.shape[0]
    except Exception:  # the damage itself: keep what came before it
        pass
    return np.concatenate(pieces) if pieces else None


def stream_mono(
    path: str | Path, sample_rate: int, block_frames: int = BLOCK_FRAMES, status: dict | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks of ``path`` resampled to ``sample_rate`` (soxr HQ).

    Streams: memory is bounded by ``block_frames`` whatever the file length.
    Raises :class:`BadAudio` (reasons: ``empty_file``, ``unsupported_format``,
    ``unreadable``, ``empty``, ``decode_error``, ``non_finite``).

    A file damaged part-way (a FLAC cut mid-body) keeps every frame that decodes before the
    damage; ``status["truncated"]`` (when ``status`` is given) then says how much was kept and
    why, so the caller can flag the file. Only a file where nothing decodes is ``decode_error``.
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
                last = block.shape[0] < block_frames
            except Exception as exc:
                error = str(exc).splitlines()[0][:200]
                block = _salvage(path, total, block_frames)
                if block is None and total == 0:
                    raise BadAudio("decode_error", f"after {total} frames: {error}") from None
                block = block if block is not None else np.zeros((0, fh.channels), np.float32)
                last = True
                kept = total + block.shape[0]
                detail = f"kept {kept} of {fh.frames} frames; decoding stopped: {error}"
                log.warning("%s: truncated, %s", path, detail)
                if status is not None:
                    status["truncated"] = detail
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

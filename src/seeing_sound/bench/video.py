"""One video -> its center frame and its whole audio track (16 kHz mono), decoded with PyAV.

The paper's protocol (A.5): "selecting one single frame, typically the center one, from the
video, while keeping the entirety of the audio track". The center is half the video stream's
duration after its first frame; the frame shown at that instant (the last one whose
presentation time is not after it) is extracted. Audio is downmixed (channel mean) and
resampled with soxr HQ by the same helpers the pool uses.

Bad files raise :class:`BadVideo` with a short stable ``reason``: ``empty_file``,
``unreadable``, ``no_video``, ``no_audio``, ``no_frames``, ``empty_audio``, ``decode_error``,
``non_finite``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.audio.io import downmix

log = logging.getLogger(__name__)

#: a frame whose time is within this of the center still counts as "not after it" (float rounding)
_TIME_EPS = 1e-6
#: samples an int PCM format's full scale maps to, by PyAV format name (planar or packed)
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class BadVideo(Exception):
    """A video that cannot become a benchmark item; ``reason`` is a short stable key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedVideo:
    """``image`` uint8 (H, W, 3) RGB; ``audio`` float32 (n,) mono at ``sample_rate``."""

    image: np.ndarray
    frame_time_s: float
    video_duration_s: float | None
    audio: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def import_av() -> Any:
    """PyAV, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - the video extra
        raise ImportError("decoding videos needs PyAV: pip install 'seeing-sound[video]'") from exc
    return av


def _open(path: Path) -> Any:
    av = import_av()
    try:
        if path.stat().st_size == 0:
            raise BadVideo("empty_file", "0 bytes")
        return av.open(str(path))
    except BadVideo:
        raise
    except Exception as exc:  # PyAV raises av.error.* (InvalidDataError, ...), OSError for I/O
        raise BadVideo("unreadable", str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _video_span(container: Any, stream: Any) -> tuple[float, float | None]:
    """(start, duration) of the video stream in seconds; duration None when the file does not say."""
    start = _seconds(stream.start_time, stream.time_base) or 0.0
    duration = _seconds(stream.duration, stream.time_base)
    if not duration and container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return start, duration if duration and duration > 0 else None


def _frame_at(path: Path, target: float | None) -> tuple[np.ndarray, float]:
    """RGB frame shown at ``target`` seconds (relative to the stream's start) and its time.

    ``target`` None: the duration is unknown, so the frames are counted first and the middle one
    (index n // 2) is taken.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise BadVideo("no_video", "no video stream")
        stream = container.streams.video[0]
        start, _ = _video_span(container, stream)
        best = None
        try:
            if target is None:
                n = sum(1 for _ in container.decode(stream))
                if n == 0:
                    raise BadVideo("no_frames", "the video stream holds no decodable frame")
                container.seek(0)
                for i, frame in enumerate(container.decode(stream)):
                    if i == n // 2:
                        best = frame
                        break
            else:
                when = start + target
                for attempt in ("seek", "from_start"):
                    if attempt == "seek" and stream.time_base is not None:
                        container.seek(int(when / stream.time_base), stream=stream, backward=True)
                    else:
                        container.seek(0)
                    best = None
                    overshot = False
                    for frame in container.decode(stream):
                        t = frame.time
                        if t is None:
                            continue
                        if t <= when + _TIME_EPS:
                            best = frame
                        else:
                            overshot = best is None  # the seek landed after the center
                            break
                    if best is not None or not overshot:
                        break
        except BadVideo:
            raise
        except Exception as exc:
            if best is None:
                raise BadVideo("decode_error", f"video: {str(exc).splitlines()[0][:200]}") from None
        if best is None:
            raise BadVideo("no_frames", "no frame at or before the center")
        t_best = best.time if best.time is not None else start
        return best.to_ndarray(format="rgb24"), max(0.0, float(t_best) - start)


def _as_float(frame: Any) -> np.ndarray:
    """An ``av.AudioFrame`` as float32 (samples, channels) in [-1, 1]."""
    arr = frame.to_ndarray()
    name = frame.format.name
    planar = bool(frame.format.is_planar)
    channels = len(frame.layout.channels)
    x = arr.T if planar else arr.reshape(-1, channels)
    base = name.rstrip("p")
    if base in ("flt", "dbl"):
        return np.asarray(x, dtype=np.float32)
    if base == "u8":
        return ((x.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if base in _INT_SCALE:
        return (x.astype(np.float64) / _INT_SCALE[base]).astype(np.float32)
    raise BadVideo("decode_error", f"audio sample format {name!r} not supported")


def decode_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The whole first audio track, float32 mono at ``sample_rate`` (soxr HQ); see :class:`BadVideo`."""
    import soxr

    with _open(path) as container:
        if not container.streams.audio:
            raise BadVideo("no_audio", "no audio stream")
        stream = container.streams.audio[0]
        resampler = None
        native = None
        blocks: list[np.ndarray] = []
        got = 0
        try:
            for frame in container.decode(stream):
                x = _as_float(frame)
                if not x.size:
                    continue
                if native is None:
                    native = int(frame.sample_rate)
                    if native != sample_rate:
                        resampler = soxr.ResampleStream(native, sample_rate, 1, dtype="float32", quality="HQ")
                if not np.isfinite(x).all():
                    raise BadVideo("non_finite", f"NaN/inf near sample {got}")
                got += x.shape[0]
                mono = downmix(np.ascontiguousarray(x))
                blocks.append(resampler.resample_chunk(mono) if resampler is not None else mono)
        except BadVideo:
            raise
        except Exception as exc:
            if not got:
                raise BadVideo("decode_error", f"audio: {str(exc).splitlines()[0][:200]}") from None
            log.warning("%s: audio truncated after %d samples: %s", path, got, str(exc).splitlines()[0][:200])
        if not got:
            raise BadVideo("empty_audio", "the audio stream holds no samples")
        if resampler is not None:
            blocks.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.concatenate(blocks).astype(np.float32, copy=False)


def decode_video(path: str | Path, sample_rate: int = 16000) -> DecodedVideo:
    """Center frame and whole audio of ``path``; raises :class:`BadVideo` (see the module docs)."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise BadVideo("no_video", "no video stream")
        if not container.streams.audio:
            raise BadVideo("no_audio", "no audio stream")
        _, duration = _video_span(container, container.streams.video[0])
    image, frame_time = _frame_at(path, None if duration is None else duration / 2)
    audio = decode_audio(path, sample_rate)
    return DecodedVideo(image, frame_time, duration, audio, sample_rate)

"""Tiny synthetic videos in each benchmark's official layout, for tests, docs and smoke runs.

Frame ``i`` is a flat colour that encodes ``i`` (red = ``FRAME_STEP * i``), so the extracted
frame can be told from its pixels; the audio is a sine tone, so its length and frequency can be
checked. Written with PyAV's built-in encoders (MPEG-4 part 2 video, AAC audio): no network, no
system FFmpeg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seeing_sound.bench.video import import_av

#: red-channel step between consecutive frames (MPEG-4 at a high bit rate keeps flat colours within ~2)
FRAME_STEP = 10


def frame_index_of(image: np.ndarray) -> int:
    """The frame index a synthetic frame encodes (mean red channel / FRAME_STEP)."""
    return round(float(np.asarray(image)[..., 0].mean()) / FRAME_STEP)


def write_video(
    path: str | Path,
    *,
    frames: int = 21,
    fps: int = 10,
    size: tuple[int, int] = (32, 24),
    tone_hz: float | None = 440.0,
    sample_rate: int = 44100,
    channels: int = 2,
    audio_seconds: float | None = None,
) -> Path:
    """Write an MP4 of ``frames`` frames at ``fps``; ``tone_hz`` None writes no audio stream.

    ``frames`` must stay below 256 / FRAME_STEP so the red channel can encode every index.
    """
    if frames * FRAME_STEP > 255:
        raise ValueError(f"frames must be <= {255 // FRAME_STEP} to be encodable, got {frames}")
    av = import_av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 4_000_000
        audio = None
        if tone_hz is not None:
            audio = out.add_stream("aac", rate=sample_rate)
            audio.layout = "stereo" if channels == 2 else "mono"
        for i in range(frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = FRAME_STEP * i
            img[..., 1] = 128
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and tone_hz is not None:
            seconds = frames / fps if audio_seconds is None else audio_seconds
            t = np.arange(round(seconds * sample_rate)) / sample_rate
            x = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            planes = np.ascontiguousarray(np.stack([x] * channels))
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=audio.layout.name)
            frame.sample_rate = sample_rate
            for packet in audio.encode(frame):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def write_vggsound_release(root: str | Path, rows: list[tuple[str, int, str, str]], **video) -> Path:
    """``root/vggsound.csv`` (no header) and ``root/video/{id}_{start:06d}.mp4`` for each row; returns the CSV."""
    import csv

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    csv_path = root / "vggsound.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        for yid, start, label, split in rows:
            writer.writerow([yid, start, label, split])
    for yid, start, _, _ in rows:
        write_video(root / "video" / f"{yid}_{start:06d}.mp4", **video)
    return csv_path


def write_greatest_hits_release(root: str | Path, videos: dict[str, list[tuple[float, str]]], **video) -> Path:
    """``root/{stem}_denoised.mp4`` and ``root/{stem}_times.txt`` (time material action reaction) per video."""
    root = Path(root)
    for stem, hits in videos.items():
        write_video(root / f"{stem}_denoised.mp4", **video)
        lines = [f"{t:.4f} {material} hit static" for t, material in hits]
        (root / f"{stem}_times.txt").write_text("\n".join(lines) + "\n")
    return root

"""Pool ingest throughput vs. its floor (decode + resample) and a naive baseline.

Prints one Markdown table; every row is measured in this run, so compare ratios, not
absolute times. Usage: python benchmarks/bench_pool.py [--small] [--minutes M]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of_cpu, table
from seeing_sound.audio.io import stream_mono
from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.testing.signals import noise, write_audio

SR_IN, SR = 44100, 16000


def make_sources(root: Path, ext: str, minutes: float, files: int) -> float:
    seconds = minutes * 60 / files
    for i in range(files):
        x = noise(seconds, SR_IN, amp=0.2, channels=2, seed=i)
        write_audio(root / f"{i:03d}.{ext}", x, SR_IN, subtype="PCM_16")
    return minutes * 60


def floor(paths):
    for p in paths:
        for _ in stream_mono(p, SR):
            pass


def naive(paths):
    meter = pyloudnorm.Meter(SR)
    for p in paths:
        x, sr = sf.read(str(p), dtype="float32")
        y = soxr.resample(x.mean(axis=1), sr, SR, quality="HQ")
        for s in range(0, y.size, 5 * SR):
            c = np.zeros(5 * SR, np.float32)
            seg = y[s : s + 5 * SR]
            c[: seg.size] = seg
            meter.integrated_loudness(c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", action="store_true", help="1 minute of audio per format instead of 4")
    ap.add_argument("--minutes", type=float, default=None)
    args = ap.parse_args()
    minutes = args.minutes or (1.0 if args.small else 4.0)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_pool_"))
    try:
        for ext in ("wav", "flac"):
            src = tmp / ext
            audio_s = make_sources(src, ext, minutes, files=16)
            paths = sorted(src.iterdir())

            def full(workers: int, name: str, ext: str = ext, src: Path = src):
                out = tmp / f"pool-{ext}-{name}"
                shutil.rmtree(out, ignore_errors=True)
                build_pool([src], out, shard_files=8, workers=workers, progress=False)  # 2 shards: one per worker

            measured = {
                "floor: decode+downmix+resample": best_of_cpu(lambda paths=paths: floor(paths)),
                "naive: read+soxr+pyloudnorm": best_of_cpu(lambda paths=paths: naive(paths)),
                "pool build --workers 1": best_of_cpu(lambda: full(1, "w1")),
                "pool build --workers 2": best_of_cpu(lambda: full(2, "w2")),
            }
            floor_cpu = measured["floor: decode+downmix+resample"][1]
            w1_wall = measured["pool build --workers 1"][0]
            for name, (wall, cpu) in measured.items():
                rows.append(
                    {
                        "format": ext,
                        "path": name,
                        "wall s": wall,
                        "cpu s": cpu,
                        "x realtime/core (cpu)": audio_s / cpu,
                        "vs floor (cpu)": floor_cpu / cpu,
                        "speedup vs w1 (wall)": w1_wall / wall if "workers 2" in name else "",
                    }
                )
        pool = AudioPool.open(tmp / "pool-wav-w1")
        rng = np.random.default_rng(0)
        ids = rng.integers(0, len(pool), 20000)
        t0 = time.perf_counter()
        for i in ids:
            pool.chunk(int(i))
        t = time.perf_counter() - t0
        print(table(rows, f"pool ingest, {minutes:g} min of 44.1 kHz stereo 16-bit per format, 16 files"))
        per_read_us = t / len(ids) * 1e6
        print(f"\nrandom chunk reads: {len(ids) / t:,.0f} chunks/s ({per_read_us:.0f} us each) over {len(pool)} chunks")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Three-source mixtures/s per core: our render path vs. a naive baseline, and the encode step.

The render (read 3 pool chunks + gains + sum) is pure memory traffic; the naive baseline
re-measures each chunk's loudness with pyloudnorm per mix and allocates per step. Encoding
(FLAC vs 16-bit WAV) is reported separately. Usage: python benchmarks/bench_mix.py [--small]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyloudnorm

sys.path.insert(0, str(Path(__file__).parent))
from _util import cpu_seconds, table
from seeing_sound.audio.mix import mix_from_pool, target_lufs
from seeing_sound.dataset.audio_files import encode, quantize_pcm16
from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.testing.signals import noise, write_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", action="store_true", help="500 chunks, 300 mixtures")
    args = ap.parse_args()
    n_chunks, n_mix = (500, 300) if args.small else (3000, 2000)
    tmp = Path(tempfile.mkdtemp(prefix="bench_mix_"))
    try:
        for i in range(n_chunks // 20):
            write_audio(tmp / f"src/{i:04d}.wav", noise(100, 16000, amp=0.05 + 0.01 * (i % 20), seed=i), 16000)
        build_pool([tmp / "src"], tmp / "pool", progress=False, workers=2)
        pool = AudioPool.open(tmp / "pool")
        lufs = pool.manifest.column("loudness_lufs").to_numpy()
        rng = np.random.default_rng(0)
        recipes = rng.integers(0, len(pool), (n_mix, 3))
        targets = target_lufs(np.arange(n_mix * 3, dtype=np.uint64)).reshape(n_mix, 3)
        meter = pyloudnorm.Meter(16000)

        def ours():
            # keep only a few mixtures: holding all of them would time page faults of fresh memory,
            # which `sonify` never pays (it writes each mixture and drops it)
            kept = []
            for n, (ids, t) in enumerate(zip(recipes, targets, strict=True)):
                mix = mix_from_pool(pool, ids, lufs[ids], t)[2]
                if n < 200:
                    kept.append(mix)
            return kept

        def naive(recipes, targets):
            out = []
            for ids, t in zip(recipes, targets, strict=True):
                mix = np.zeros(pool.chunk_samples)
                for i, g in zip(ids, t, strict=True):
                    x = pool.chunk(int(i)).astype(np.float64)
                    mix = mix + pyloudnorm.normalize.loudness(x, meter.integrated_loudness(x), g)
                out.append(mix.astype(np.float32))
            return out

        def cpu(fn):  # CPU seconds: meaningful even when other jobs share the cores
            c0 = cpu_seconds()
            out = fn()
            return cpu_seconds() - c0, out

        for s in range(0, len(pool), 256):  # warm the page cache: measure the render, not disk faults
            pool.chunks(range(s, min(s + 256, len(pool))))
        rows = []
        t_ours, mixes = cpu(ours)
        k = max(1, n_mix // 10)  # the naive render is slow: time a tenth of the mixtures, scale to n_mix
        t_naive = cpu(lambda: naive(recipes[:k], targets[:k]))[0] * n_mix / k
        pcms = [quantize_pcm16(m) for m in mixes]
        # per-mixture rates: scale the encode time of the kept mixtures to n_mix
        t_flac = cpu(lambda: [encode(p, 16000, "flac") for p in pcms])[0] * n_mix / len(pcms)
        t_wav = cpu(lambda: [encode(p, 16000, "wav") for p in pcms])[0] * n_mix / len(pcms)
        for name, t in (
            ("render: ours (read 3 chunks, gains, sum, headroom)", t_ours),
            ("render: naive (pyloudnorm per mix, allocations)", t_naive),
            ("encode: FLAC 16-bit", t_flac),
            ("encode: WAV 16-bit", t_wav),
        ):
            rows.append({"step": name, "mixtures/s/core": n_mix / t, "vs naive render": t_naive / t})
        print(
            table(
                rows, f"mixing, {n_mix} three-source 5 s mixtures from a pool of {len(pool)} chunks (warm page cache)"
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Settings of ``bench prepare`` (one field each: default, help, checks)."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.config import Config, option

BENCHMARKS = ("vggsound", "folder", "greatest-hits")


@dataclass(frozen=True)
class BenchConfig(Config):
    """How each video becomes an item (the paper's protocol, A.5: center frame, whole audio track)."""

    sample_rate: int = option(
        16000,
        "audio sample rate in Hz, soxr HQ resampling, mono by channel mean (ours: the pool's, paper A.7)",
        min=1000,
    )
    shard_items: int = option(32, "videos per shard, the unit of resume (ours)", min=1, fingerprint=False)

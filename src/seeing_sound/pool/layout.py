"""Where things live inside a pool folder (one place, so readers and writers agree)."""

from __future__ import annotations

from pathlib import Path

from seeing_sound.engine import shard_name

POOL_FORMAT = "seeing-sound-pool"
POOL_FORMAT_VERSION = 1
CHUNK_DTYPE = "<f2"  # little-endian float16: 2 bytes/sample like int16, no clipping of resampler overshoot


def pool_json(root: Path) -> Path:
    return Path(root) / "pool.json"


def chunks_rel(index: int) -> str:
    return f"chunks/{shard_name(index)}.f16"


def manifest_rel(index: int) -> str:
    return f"manifest/{shard_name(index)}.parquet"


def errors_rel(index: int) -> str:
    return f"errors/{shard_name(index)}.parquet"

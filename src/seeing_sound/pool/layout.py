"""Where things live inside a pool folder (one place, so readers and writers agree)."""

from __future__ import annotations

from pathlib import Path

from seeing_sound.engine import shard_name

POOL_FORMAT = "seeing-sound-pool"
POOL_FORMAT_VERSION = 2  # 2: manifests gain `truncated`
CHUNK_DTYPE = "<i2"  # 16-bit PCM: 2 bytes/sample; int16 -> float32 is ~15x faster to read than float16
#: a chunk's int16 sample q means q * pcm_scale / PCM_FULL_SCALE; pcm_scale > 1 only for chunks
#: whose peak exceeds full scale (resampler overshoot, hot float sources), so nothing clips
PCM_FULL_SCALE = 32767.0


def pool_json(root: Path) -> Path:
    return Path(root) / "pool.json"


def chunks_rel(index: int) -> str:
    return f"chunks/{shard_name(index)}.i16"


def manifest_rel(index: int) -> str:
    return f"manifest/{shard_name(index)}.parquet"


def errors_rel(index: int) -> str:
    return f"errors/{shard_name(index)}.parquet"


def embeddings_root(pool_root: str | Path, key: str) -> Path:
    return Path(pool_root) / "embeddings" / key


def vectors_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.npy"


def ids_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.ids.npy"


def skipped_rel(key: str, index: int) -> str:
    return f"embeddings/{key}/{shard_name(index)}.skipped.parquet"

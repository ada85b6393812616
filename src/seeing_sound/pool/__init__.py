"""The standardized audio pool (paper A.7): build it, open it, read chunks by id."""

from seeing_sound.pool.info import pool_summary
from seeing_sound.pool.run import EmbedReport, PoolBuildReport, build_pool, embed_pool
from seeing_sound.pool.stage import PoolConfig
from seeing_sound.pool.store import AudioPool

__all__ = ["AudioPool", "EmbedReport", "PoolBuildReport", "PoolConfig", "build_pool", "embed_pool", "pool_summary"]

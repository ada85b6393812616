"""The standardized audio pool (paper A.7): build it, open it, read chunks by id."""

from seeing_sound.pool.build import PoolBuildReport, PoolConfig, build_pool
from seeing_sound.pool.info import pool_summary
from seeing_sound.pool.store import AudioPool

__all__ = ["AudioPool", "PoolConfig", "PoolBuildReport", "build_pool", "pool_summary"]

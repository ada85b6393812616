"""The pairs dataset: metadata recipes + rendered mixtures, rebuildable from the pool."""

from seeing_sound.dataset.reader import PairsDataset
from seeing_sound.dataset.writer import DatasetWriter, write_card, write_pairs_shard

__all__ = ["PairsDataset", "DatasetWriter", "write_pairs_shard", "write_card"]

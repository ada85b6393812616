"""The pairs dataset: metadata recipes + rendered mixtures, rebuildable from the pool."""

from seeing_sound.dataset.reader import PairsDataset
from seeing_sound.dataset.writer import DatasetWriter, write_card, write_pairs_shard

__all__ = ["DatasetWriter", "PairsDataset", "write_card", "write_pairs_shard"]

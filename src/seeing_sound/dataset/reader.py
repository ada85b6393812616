"""Read a pairs dataset: card, metadata, mixture audio, image paths (all inside their roots)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.dataset import layout
from seeing_sound.dataset.audio_files import read_pcm16
from seeing_sound.dataset.paths import safe_join
from seeing_sound.errors import SeeingSoundError


class PairsDataset:
    """A sonified image dataset on disk (layout: docs/sonify.md, "The pairs dataset")."""

    def __init__(self, root: Path, card: dict, images_root: str | Path | None = None):
        self.root = Path(root)
        self.card = card
        base = Path(images_root if images_root is not None else card["images_root"])
        self.images_root = base if base.is_absolute() else (self.root / base)
        counts = [s["pairs"] for s in card["shards"]]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @classmethod
    def open(cls, path: str | Path, images_root: str | Path | None = None) -> PairsDataset:
        root = Path(path)
        card_file = layout.card_path(root)
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is a file, not a dataset folder"
            raise SeeingSoundError(f"dataset {root} {what}")
        if not card_file.exists() and (root / "pool.json").exists():
            raise SeeingSoundError(
                f"{root} is an audio pool, not a pairs dataset; give the folder `seeing-sound sonify --out` wrote"
            )
        if not card_file.exists() and (root / "images").is_dir() and (root / "concepts").is_dir():
            raise SeeingSoundError(f"{root} holds a concepts run, not a pairs dataset; sonify it first")
        if not card_file.exists():
            raise SeeingSoundError(
                f"{root} is not a pairs dataset: dataset.json missing (run `seeing-sound sonify` to finish it)"
            )
        card = json.loads(card_file.read_text())
        if card.get("format") != layout.DATASET_FORMAT:
            raise SeeingSoundError(f"{card_file} is not a seeing-sound pairs dataset card")
        return cls(root, card, images_root)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def num_shards(self) -> int:
        return len(self.card["shards"])

    def shard_rows(self, k: int) -> list[int]:
        """Global row indices of metadata shard ``k``."""
        return list(range(int(self._offsets[k]), int(self._offsets[k + 1])))

    @cached_property
    def metadata(self) -> pa.Table:
        tables = [pq.read_table(self.root / layout.metadata_rel(s["index"])) for s in self.card["shards"]]
        if not tables:
            from seeing_sound.dataset.schema import METADATA

            return METADATA.empty_table()
        return pa.concat_tables(tables)

    def row(self, i: int) -> dict:
        return self.metadata.slice(i, 1).to_pylist()[0]

    def audio_path(self, i: int) -> Path:
        return safe_join(self.root, self.metadata.column("audio_path")[i].as_py())

    def audio(self, i: int) -> np.ndarray:
        """Mixture ``i`` as float32 (n,) at the dataset's sample rate."""
        pcm, _ = read_pcm16(self.audio_path(i))
        return pcm.astype(np.float32) / 32767.0

    def image_path(self, i: int) -> Path:
        """Image of pair ``i``, resolved inside the images root (``..``/absolute refused)."""
        return safe_join(self.images_root, self.metadata.column("image_path")[i].as_py())

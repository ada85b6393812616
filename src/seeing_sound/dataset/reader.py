"""Read a pairs dataset: card, metadata, mixture audio, image paths (all inside their roots)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.dataset import layout
from seeing_sound.dataset.audio_files import read_pcm16
from seeing_sound.dataset.image_store import is_folder_root, open_store, source_ref
from seeing_sound.dataset.paths import safe_join
from seeing_sound.errors import SeeingSoundError
from seeing_sound.image_sources import spec_path
from seeing_sound.imaging import DEFAULT_MAX_PIXELS, decode


def load_rgb(source: Path | bytes):
    """The image at ``source`` (a path or its bytes) as an 8-bit RGB PIL image (the one decoder: bit
    depth, EXIF, alpha on white)."""
    return decode(source, max_pixels=DEFAULT_MAX_PIXELS).image


class PairsDataset:
    """A sonified image dataset on disk (layout: docs/sonify.md, "The pairs dataset").

    A map-style dataset: ``len(ds)`` pairs, ``ds[i]`` a dict of the decoded image and mixture with
    the pair's ids, concepts and recipe (see :meth:`__getitem__`); :meth:`to_datasets` gives a
    ``datasets.Dataset`` view without an export.
    """

    def __init__(self, root: Path, card: dict, images_root: str | Path | None = None):
        self.root = Path(root)
        self.card = card
        spec = os.fspath(images_root if images_root is not None else card["images_root"])
        if is_folder_root(spec):
            base = Path(spec)
            self.images_root = base if base.is_absolute() else (self.root / base)
            self.images_spec = str(self.images_root)
        else:  # tar shards, Parquet or a datasets folder (seeing_sound.image_sources), read in place
            self.images_spec = spec
            self.images_root = spec_path(spec)
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
        # shards of one dataset written by versions with and without a field (a resumed run) still concatenate
        return pa.concat_tables(tables, promote_options="permissive")

    def row(self, i: int) -> dict:
        return self.metadata.slice(i, 1).to_pylist()[0]

    def audio_path(self, i: int) -> Path:
        return safe_join(self.root, self.metadata.column("audio_path")[i].as_py())

    def audio(self, i: int) -> np.ndarray:
        """Mixture ``i`` as float32 (n,) at the dataset's sample rate."""
        pcm, _ = read_pcm16(self.audio_path(i))
        return pcm.astype(np.float32) / 32767.0

    def image_path(self, i: int) -> Path:
        """Image file of pair ``i``, resolved inside the images folder (``..``/absolute refused).

        Only for images in a folder; wherever they live, :meth:`image_source` gives what to decode.
        """
        if not is_folder_root(self.images_spec):
            raise SeeingSoundError(
                f"the images of {self.root} are read in place from {self.images_spec}, not files in a folder: "
                "use image_source(i) or image_bytes(i)"
            )
        return safe_join(self.images_root, self.metadata.column("image_path")[i].as_py())

    def image_source(self, i: int) -> Path | bytes:
        """What to decode for pair ``i``'s image: a path inside the images folder, or the image's bytes
        read from its tar shard or table (:class:`~seeing_sound.dataset.image_store.ImageStore`)."""
        return open_store(self.images_spec).source(self.metadata.column("image_path")[i].as_py())

    def image_ref(self, i: int) -> str:
        """Pair ``i``'s image as one string for a stage's items (see ``image_store.source_ref``)."""
        return source_ref(self.images_spec, self.metadata.column("image_path")[i].as_py())

    def image_bytes(self, i: int) -> bytes:
        """Pair ``i``'s image file, as bytes, wherever it lives."""
        return open_store(self.images_spec).read(self.metadata.column("image_path")[i].as_py())

    @property
    def sample_rate(self) -> int:
        return int(self.card["sample_rate"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Pair ``i`` as a dict, the map-style dataset protocol (``len(ds)``, ``ds[i]``, negative ``i``).

        Keys: ``image`` (PIL RGB), ``audio`` (float32 (n,) at ``sampling_rate``), ``sampling_rate``,
        ``pair_id``, ``image_id``, ``concepts`` (the components' concept texts, in order) and ``recipe``
        (the components: chunk ids, scores, target LUFS, gains). For a ``torch.utils.data.DataLoader``
        pass ``collate_fn=PairsDataset.collate`` (images stay a list: their sizes differ).
        """
        n = len(self)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"pair index must be an integer, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for a dataset of {n} pairs")
        i = int(i) % n
        row = self.row(i)
        comps = row.get("components") or []
        return {
            "image": load_rgb(self.image_source(i)),
            "audio": self.audio(i),
            "sampling_rate": self.sample_rate,
            "pair_id": row["pair_id"],
            "image_id": row["image_id"],
            "concepts": [c.get("concept") for c in comps],
            "recipe": comps,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Batch ``ds[i]`` dicts: audio stacked (n, T) when all clips have one length, else a list;
        images, ids, concepts and recipes as lists (numbers stay numbers)."""
        batch: dict[str, Any] = {key: [it[key] for it in items] for key in items[0]} if items else {}
        if items and len({len(a) for a in batch["audio"]}) == 1:
            batch["audio"] = np.stack(batch["audio"])
        return batch

    def webdataset_shards(self) -> list[Path]:
        """The WebDataset tars ``sonify --copy-images`` wrote (``webdataset/shard-NNNNNN.tar``), in order."""
        shards = [self.root / layout.webdataset_rel(s["index"]) for s in self.card["shards"]]
        missing = [p for p in shards if not p.is_file()]
        if missing:
            raise SeeingSoundError(
                f"{self.root} has no WebDataset shards ({missing[0].name} missing): sonify it with --copy-images"
            )
        return shards

    def iter_webdataset(self, *, shuffle_shards: bool = False, seed: int = 0) -> Iterator[dict[str, Any]]:
        """Stream the pairs from the WebDataset shards, shard by shard (no random access into a tar):
        the same dicts as ``ds[i]``. Wrap it in a ``torch.utils.data.IterableDataset`` to train at
        scale; each ``DataLoader`` worker then reads its own share of the shards."""
        from seeing_sound.dataset.streaming import iter_webdataset

        return iter_webdataset(self.webdataset_shards(), shuffle_shards=shuffle_shards, seed=seed)

    def to_datasets(self):
        """A ``datasets.Dataset`` view of the pairs, with nothing written: the metadata table in memory,
        images (PIL) and audio (float32, ``sampling_rate``) decoded when a row is read (``set_transform``)."""
        import datasets
        from datasets.table import InMemoryTable

        table = self.metadata
        ids = pa.array(range(len(self)), pa.int64())
        view = datasets.Dataset(InMemoryTable(table.append_column("_row", ids)))

        def decode(batch: dict[str, list]) -> dict[str, list]:
            rows = [self[int(i)] for i in batch["_row"]]
            return {key: [r[key] for r in rows] for key in ("image", "audio", "sampling_rate", "pair_id",
                                                            "image_id", "concepts", "recipe")}  # fmt: skip

        view.set_transform(decode)
        return view

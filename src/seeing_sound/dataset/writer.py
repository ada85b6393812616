"""Write pair shards (metadata + mixture audio) and the dataset card."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound import __version__
from seeing_sound.dataset import layout
from seeing_sound.dataset.audio_files import encode, pcm_sha256, quantize_pcm16
from seeing_sound.dataset.schema import METADATA, metadata_schema, normalize_component
from seeing_sound.engine.shards import move_into_place, write_json_atomic


def write_pairs_shard(
    root: Path, index: int, rows: Sequence[dict], audios: Sequence[np.ndarray], *, sample_rate: int, fmt: str
) -> dict:
    """Write shard ``index`` under ``root``: one audio file per row and the metadata Parquet.

    Each audio is quantized to 16-bit (see :func:`quantize_pcm16`), encoded as ``fmt``, and
    its ``mixture_sha256`` taken over the int16 samples. Returns ``{"index", "pairs"}``.
    """
    if len(rows) != len(audios):
        raise ValueError(f"rows and audios must have the same length, got {len(rows)} and {len(audios)}")
    root = Path(root)
    (root / layout.audio_dir_rel(index)).mkdir(parents=True, exist_ok=True)
    out_rows = []
    # components carry ``grounding`` only when the concepts were CLIP-checked (every recipe then has it)
    grounded = any("grounding" in c for row in rows for c in row.get("components") or [])
    for i, (row, audio) in enumerate(zip(rows, audios, strict=True)):
        pcm = quantize_pcm16(audio)
        rel = layout.audio_rel(index, i, fmt)
        (root / rel).write_bytes(encode(pcm, sample_rate, fmt))
        full = {name: row.get(name) for name in METADATA.names}
        full["components"] = [normalize_component(c, grounded) for c in row.get("components") or []]
        full.update(audio_path=rel, sample_rate=sample_rate, num_samples=int(pcm.size), mixture_sha256=pcm_sha256(pcm))
        out_rows.append(full)
    (root / "metadata").mkdir(exist_ok=True)
    schema = metadata_schema(grounded)
    pq.write_table(pa.Table.from_pylist(out_rows, schema=schema), root / layout.metadata_rel(index))
    return {"index": index, "pairs": len(out_rows)}


def write_card(
    root: Path, *, images_root: str, sample_rate: int, audio_format: str, shards: list[dict], **fields
) -> dict:
    """Write ``dataset.json``: format, version, images root, shards, plus any extra fields
    (models, prompts, parameters, counts). Key-sorted, so equal content gives equal bytes."""
    card = {
        "format": layout.DATASET_FORMAT,
        "format_version": layout.DATASET_FORMAT_VERSION,
        "seeing_sound_version": __version__,
        "images_root": str(images_root),
        "sample_rate": sample_rate,
        "audio_format": audio_format,
        "shards": shards,
        **fields,
    }
    write_json_atomic(layout.card_path(root), card)
    return card


class DatasetWriter:
    """Write a small pairs dataset directly (tests, imports); the ``sonify`` stage uses the
    same shard writer through the resumable engine.

    >>> with DatasetWriter(out, images_root) as w:
    ...     w.add(pair_id="cat", image_id="cat", image_path="cat.png", audio=x, components=[...])
    """

    def __init__(
        self,
        out: str | Path,
        images_root: str | Path,
        *,
        sample_rate: int = 16000,
        audio_format: str = "flac",
        shard_size: int = 1000,
        **card_fields,
    ):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.root = Path(out)
        self.images_root = str(images_root)
        self.sample_rate = sample_rate
        self.audio_format = audio_format
        self.shard_size = shard_size
        self.card_fields = card_fields
        self._rows: list[dict] = []
        self._audio: list[np.ndarray] = []
        self._shards: list[dict] = []

    def __enter__(self) -> DatasetWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, *, pair_id: str, image_id: str, image_path: str, audio: np.ndarray, **fields) -> None:
        self._rows.append({"pair_id": pair_id, "image_id": image_id, "image_path": image_path, **fields})
        self._audio.append(np.asarray(audio, dtype=np.float32))
        if len(self._rows) == self.shard_size:
            self._flush()

    def _flush(self) -> None:
        index = len(self._shards)
        scratch = self.root / f".tmp-{index}"
        shutil.rmtree(scratch, ignore_errors=True)
        info = write_pairs_shard(
            scratch, index, self._rows, self._audio, sample_rate=self.sample_rate, fmt=self.audio_format
        )
        for rel in (layout.audio_dir_rel(index), layout.metadata_rel(index)):
            move_into_place(scratch / rel, self.root / rel)
        shutil.rmtree(scratch, ignore_errors=True)
        self._shards.append(info)
        self._rows, self._audio = [], []

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        if self._rows:
            self._flush()
        pairs = sum(s["pairs"] for s in self._shards)
        fields = {"counts": {"pairs": pairs}} | self.card_fields
        write_card(
            self.root,
            images_root=self.images_root,
            sample_rate=self.sample_rate,
            audio_format=self.audio_format,
            shards=self._shards,
            **fields,
        )

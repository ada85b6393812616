"""Stream pairs from the WebDataset shards ``sonify --copy-images`` writes, for training at scale.

Each shard ``DATASET/webdataset/shard-NNNNNN.tar`` holds, per pair, ``<key>.<image ext>``,
``<key>.<flac|wav>`` and ``<key>.json`` (the pair's metadata row), in pair order. Shards are read
sequentially, member after member — no random access into a tar, so they stream from any storage —
and each pair comes out as the same dict as ``PairsDataset[i]``. No dependency beyond the standard
library's ``tarfile``: the format is WebDataset's, readable by ``webdataset`` too.
"""

from __future__ import annotations

import io
import json
import logging
import random
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.dataset.audio_files import FORMATS
from seeing_sound.errors import SeeingSoundError
from seeing_sound.imaging import DEFAULT_MAX_PIXELS, DecodeError, decode

log = logging.getLogger(__name__)

#: largest member read into memory; a larger declared size is a damaged or hostile shard
MAX_MEMBER_BYTES = 256 << 20


def _pair(parts: dict[str, bytes]) -> dict[str, Any]:
    """The ``PairsDataset[i]`` dict of one pair's members (raises ValueError naming what is wrong)."""
    import soundfile as sf

    if "json" not in parts:
        raise ValueError("no .json member")
    row = json.loads(parts["json"])
    audio_ext = next((e for e in FORMATS if e in parts), None)
    image_ext = next((e for e in parts if e not in FORMATS and e != "json"), None)
    if audio_ext is None or image_ext is None:
        raise ValueError(f"needs an image, an audio and a .json member, has {sorted(parts)}")
    pcm, sr = sf.read(io.BytesIO(parts[audio_ext]), dtype="int16", always_2d=False)
    comps = row.get("components") or []
    return {
        "image": decode(parts[image_ext], max_pixels=DEFAULT_MAX_PIXELS).image,
        "audio": pcm.astype(np.float32) / 32767.0,
        "sampling_rate": int(sr),
        "pair_id": row["pair_id"],
        "image_id": row["image_id"],
        "concepts": [c.get("concept") for c in comps],
        "recipe": comps,
    }


def _members(shard: Path) -> Iterator[tuple[str, str, bytes]]:
    """(key, extension, bytes) of each regular member, in tar order, bounded by MAX_MEMBER_BYTES."""
    with tarfile.open(shard, "r|") as tar:  # "r|": a stream, read front to back
        for member in tar:
            if not member.isfile():
                continue
            if member.size > MAX_MEMBER_BYTES:
                raise SeeingSoundError(f"{shard}: member {member.name!r} declares {member.size} bytes; damaged shard?")
            name = Path(member.name).name
            key, _, ext = name.partition(".")
            fh = tar.extractfile(member)
            yield key, ext.lower(), fh.read() if fh is not None else b""


def _grouped(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) of each pair: consecutive members sharing a key, as WebDataset groups them."""
    key: str | None = None
    parts: dict[str, bytes] = {}
    for k, ext, data in _members(shard):
        if key is not None and k != key:
            yield key, parts
            parts = {}
        key = k
        parts[ext] = data
    if key is not None:
        yield key, parts


def iter_shard(shard: str | Path, stats: dict | None = None) -> Iterator[dict[str, Any]]:
    """Every pair of one WebDataset shard, in order. A pair that cannot be decoded is skipped with a
    warning naming the shard and key, and counted in ``stats["skipped"]`` (``stats["pairs"]``: read)."""
    shard = Path(shard)
    stats = {} if stats is None else stats
    for key, parts in _grouped(shard):
        try:
            item = _pair(parts)
        except (ValueError, KeyError, RuntimeError, DecodeError, OSError) as exc:
            stats["skipped"] = stats.get("skipped", 0) + 1
            log.warning("%s: pair %s skipped (%s)", shard, key, str(exc).splitlines()[0] if str(exc) else exc)
            continue
        stats["pairs"] = stats.get("pairs", 0) + 1
        yield item


def _worker_share(shards: Sequence[Path]) -> Sequence[Path]:
    """Inside a torch ``DataLoader`` worker, that worker's shards (every ``num_workers``-th)."""
    torch = sys.modules.get("torch")  # only when the caller already uses torch
    info = torch.utils.data.get_worker_info() if torch is not None else None
    return shards if info is None else shards[info.id :: info.num_workers]


def iter_webdataset(
    shards: Sequence[str | Path], *, shuffle_shards: bool = False, seed: int = 0, stats: dict | None = None
) -> Iterator[dict[str, Any]]:
    """Pairs of ``shards`` (in the given order, or shuffled by ``seed``), one shard at a time.

    Inside a torch ``DataLoader`` with ``num_workers > 0`` each worker reads its own share of the
    shards, so every pair comes out once per epoch.
    """
    order = [Path(s) for s in shards]
    if shuffle_shards:
        random.Random(seed).shuffle(order)
    for shard in _worker_share(order):
        yield from iter_shard(shard, stats)

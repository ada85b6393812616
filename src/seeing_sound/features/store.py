"""Precomputed features beside a dataset: ``DATASET/features/<kind>-<key>/``.

One safetensors file per metadata shard (``shard-000003.safetensors``) holding ``rows`` (int64
dataset row indices of the items that succeeded) and the feature tensors (fp16):

* ``ast``: ``embeds`` ``(n, tokens, dim)`` — AST last hidden state (optionally time-pooled);
* ``vae``: ``mean`` and ``std`` ``(n, 4, h, w)`` — the latent posterior, already multiplied by the
  VAE's ``scaling_factor``; training draws ``mean + std * noise`` with a per-step seed.

``features.json`` records the model, options and shapes; the training code checks it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.errors import SeeingSoundError

KINDS = ("ast", "vae")


def model_slug(name_or_path: str) -> str:
    """A folder-safe short name: the last path component of a hub id or path."""
    tail = Path(str(name_or_path).rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)


def feature_dir(root: str | Path, kind: str, key: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Path(root) / "features" / f"{kind}-{key}"


def write_shard(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write one feature shard (deterministic bytes for equal inputs)."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=metadata)


@dataclass
class FeatureSet:
    """Read access to one ``features/<kind>-<key>`` folder."""

    path: Path
    card: dict
    shards: list[Path] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path) -> FeatureSet:
        path = Path(path)
        card_path = path / "features.json"
        if not card_path.is_file():
            raise SeeingSoundError(f"{path} holds no features.json; run `seeing-sound features` first")
        card = json.loads(card_path.read_text())
        return cls(path=path, card=card, shards=sorted(path.glob("shard-*.safetensors")))

    @property
    def kind(self) -> str:
        return self.card["kind"]

    def row_index(self) -> dict[int, tuple[int, int]]:
        """dataset row -> (position in ``shards``, position inside that shard)."""
        from safetensors import safe_open

        index: dict[int, tuple[int, int]] = {}
        for s, shard in enumerate(self.shards):
            with safe_open(str(shard), framework="np") as fh:
                for pos, row in enumerate(fh.get_tensor("rows").tolist()):
                    index[int(row)] = (s, pos)
        return index


def find_feature_set(root: str | Path, kind: str, name: str | None = None) -> FeatureSet:
    """The ``kind`` feature folder of a dataset: ``name`` (folder name) or the only one there is."""
    base = Path(root) / "features"
    if name:
        path = base / name if (base / name).is_dir() else Path(name)
        return FeatureSet.open(path)
    found = sorted(p for p in base.glob(f"{kind}-*") if (p / "features.json").is_file())
    if not found:
        raise SeeingSoundError(f"no {kind.upper()} features under {base}; run `seeing-sound features {root}` first")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise SeeingSoundError(
            f"several {kind.upper()} feature sets under {base} ({names}); choose one with --{kind}-features"
        )
    return FeatureSet.open(found[0])

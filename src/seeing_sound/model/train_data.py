"""Training inputs: paired AST/VAE feature tensors and a resumable, seeded batch order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seeing_sound.features.store import FeatureSet


@dataclass(frozen=True)
class BatchPlan:
    """Which items micro-batch ``k`` holds: epoch-wise seeded permutations, last partial batch dropped.

    A pure function of ``(num_items, batch_size, seed, k)``, so a resumed run reads exactly the
    batches an uninterrupted run would have read.
    """

    num_items: int
    batch_size: int
    seed: int

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_items < self.batch_size:
            raise ValueError(f"need at least batch_size={self.batch_size} items to train on, have {self.num_items}")

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // self.batch_size

    def batch(self, k: int) -> np.ndarray:
        """Item positions ``(batch_size,)`` of micro-batch ``k`` (0-based, across epochs)."""
        epoch, j = divmod(k, self.batches_per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        return perm[j * self.batch_size : (j + 1) * self.batch_size]


class BatchSampler(torch.utils.data.Sampler):
    """Yields :meth:`BatchPlan.batch` for ``k = start, start + stride, ...`` (endless).

    With several processes, process ``p`` of ``P`` uses ``start = m0 * P + p`` and ``stride = P``.
    """

    def __init__(self, plan: BatchPlan, start: int = 0, stride: int = 1):
        self.plan, self.start, self.stride = plan, start, stride

    def __iter__(self):
        k = self.start
        while True:
            yield self.plan.batch(k).tolist()
            k += self.stride

    def __len__(self):  # accelerate asks; the run is bounded by max_steps, not by this
        return 2**31


class PairFeatures(torch.utils.data.Dataset):
    """Items ``{"row", "audio" (T, D) fp16, "mean"/"std" (C, h, w) fp16}`` of rows present in both sets."""

    def __init__(self, ast: FeatureSet, vae: FeatureSet, rows: list[int] | None = None):
        self.ast, self.vae = ast, vae
        self._ast_index, self._vae_index = ast.row_index(), vae.row_index()
        common = sorted(set(self._ast_index) & set(self._vae_index))
        self.rows = common if rows is None else [r for r in rows if r in set(common)]
        self._handles: dict = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _open(self, path):
        from safetensors import safe_open

        key = str(path)
        if key not in self._handles:  # opened lazily so the dataset pickles into loader workers
            self._handles[key] = safe_open(key, framework="pt")
        return self._handles[key]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        s, pos = self._ast_index[row]
        audio = self._open(self.ast.shards[s]).get_slice("embeds")[pos : pos + 1][0]
        s, pos = self._vae_index[row]
        vae = self._open(self.vae.shards[s])
        mean = vae.get_slice("mean")[pos : pos + 1][0]
        std = vae.get_slice("std")[pos : pos + 1][0]
        return {"row": row, "audio": audio, "mean": mean, "std": std}


def collate(items: list[dict]) -> dict:
    return {
        "row": torch.tensor([it["row"] for it in items]),
        "audio": torch.stack([it["audio"] for it in items]),
        "mean": torch.stack([it["mean"] for it in items]),
        "std": torch.stack([it["std"] for it in items]),
    }

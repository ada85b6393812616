"""Training inputs: paired AST/VAE feature tensors and a resumable, seeded batch order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seeing_sound.dataset import PairsDataset
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
        present = set(common)
        self.rows = common if rows is None else [r for r in rows if r in present]
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


def _sources(items: list[dict]) -> dict:
    """``{"dataset": (B,)}`` when the items come from several datasets (:class:`~.train_sets.ConcatRows`)."""
    return {"dataset": torch.tensor([it["dataset"] for it in items])} if items and "dataset" in items[0] else {}


def collate(items: list[dict]) -> dict:
    return {
        "row": torch.tensor([it["row"] for it in items]),
        **_sources(items),
        "audio": torch.stack([it["audio"] for it in items]),
        "mean": torch.stack([it["mean"] for it in items]),
        "std": torch.stack([it["std"] for it in items]),
    }


class PairAudio(torch.utils.data.Dataset):
    """Items ``{"row", "wave" (n,) float32, "mean"/"std"}``: the raw mixture instead of AST tokens.

    For ``ast_online``: rows are those of the VAE set; the mixture (FLAC/WAV) is decoded here,
    so in DataLoader workers, and turned into tokens by :class:`OnlineAst` in the training process.
    """

    def __init__(self, dataset: str, vae: FeatureSet):
        self.dataset, self.vae = dataset, vae
        self._vae_index = vae.row_index()
        self.rows = sorted(self._vae_index)
        self._pairs: PairsDataset | None = None
        self._handles: dict = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # opened lazily, so the dataset pickles into loader workers
        return {**self.__dict__, "_pairs": None, "_handles": {}}

    def _open(self, path):
        from safetensors import safe_open

        if str(path) not in self._handles:
            self._handles[str(path)] = safe_open(str(path), framework="pt")
        return self._handles[str(path)]

    def __getitem__(self, i: int) -> dict:
        from seeing_sound.dataset import PairsDataset
        from seeing_sound.errors import SeeingSoundError

        if self._pairs is None:
            self._pairs = PairsDataset.open(self.dataset)
        pairs = self._pairs
        row = self.rows[i]
        try:
            wave = pairs.audio(row)
        except Exception as exc:  # precomputed features skip such rows; online there is no list to skip them from
            raise SeeingSoundError(
                f"ast_online: cannot read the mixture of row {row} ({pairs.audio_path(row)}: {exc}); "
                "run `seeing-sound features` (which skips bad audio) and train on the precomputed tokens"
            ) from exc
        s, pos = self._vae_index[row]
        vae = self._open(self.vae.shards[s])
        return {
            "row": row,
            "wave": torch.from_numpy(wave),
            "mean": vae.get_slice("mean")[pos : pos + 1][0],
            "std": vae.get_slice("std")[pos : pos + 1][0],
        }


class OnlineAst:
    """A frozen AST that turns a batch's mixtures into the tokens ``seeing-sound features`` would store.

    bf16 on a GPU that has it, float32 on the CPU; filterbank in torch on the same device
    (:func:`~seeing_sound.encoders.ast.ast_fbank`). Tokens are pooled like the features'
    ``--pool`` and rounded to fp16 as the stored features are, so both paths train on the same inputs.
    """

    def __init__(self, model: str, pool: int, device, batch_size: int = 8):
        from seeing_sound.encoders.ast import load_ast

        device = torch.device(device)
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.encoder = load_ast(model, device=str(device), dtype=torch.bfloat16 if bf16 else None, param="ast_model")
        self.encoder.model.requires_grad_(False)
        self.pool, self.batch_size, self.model = pool, batch_size, model
        f, t = self.encoder.grid
        self.card: dict[str, Any] = {"kind": "ast", "model": model, "pool": pool, "dim": self.encoder.hidden_size}
        self.card["tokens"] = 2 + f * (-(-t // pool))

    def __call__(self, waves) -> torch.Tensor:
        """``(B, tokens, dim)`` fp16 on the AST's device from a list of 1-D waveforms (tensors or arrays)."""
        arrays = [w.numpy() if torch.is_tensor(w) else np.asarray(w, np.float32) for w in waves]
        tokens = self.encoder.encode_torch(arrays, batch_size=self.batch_size)
        if self.pool > 1:
            f, t = self.encoder.grid
            b, _, d = tokens.shape
            patches = tokens[:, 2:].reshape(b, f, t, d)
            runs = [patches[:, :, s : s + self.pool].mean(dim=2) for s in range(0, t, self.pool)]
            tokens = torch.cat([tokens[:, :2], torch.stack(runs, dim=2).reshape(b, -1, d)], dim=1)
        return tokens.half()


def collate_audio(items: list[dict]) -> dict:
    """Like :func:`collate`, with ``"wave"`` a list (mixtures may differ in length)."""
    return {
        "row": torch.tensor([it["row"] for it in items]),
        **_sources(items),
        "wave": [it["wave"] for it in items],
        "mean": torch.stack([it["mean"] for it in items]),
        "std": torch.stack([it["std"] for it in items]),
    }

"""Training inputs: paired AST/VAE feature tensors, or the dataset's mixtures and images encoded in the
training process (``ast_online``, ``vae_online``), and a resumable, seeded batch order."""

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


class PairSources(torch.utils.data.Dataset):
    """Items of a run that computes AST tokens and/or VAE latents in the training process.

    ``ast`` None (``ast_online``): the item holds ``"wave"`` (n,) float32, the decoded mixture;
    else ``"audio"`` (T, D) fp16 read from the AST set. ``vae`` None (``vae_online``): the item holds
    ``"pixels"`` (resolution, resolution, 3) float32 in [-1, 1], the image decoded, center-cropped
    and scaled exactly as ``seeing-sound features`` feeds its VAE (:func:`load_pixels`); else
    ``"mean"``/``"std"`` (C, h, w) fp16 read from the VAE set. Decoding happens here, so in DataLoader
    workers; the encoders (:class:`OnlineAst`, :class:`OnlineVae`) run in the training process.

    Rows: those of the feature set that is read (both read: use :class:`PairFeatures`); with neither,
    every row of the dataset.
    """

    def __init__(self, dataset: str, ast: FeatureSet | None, vae: FeatureSet | None, resolution: int | None = None):
        if vae is None and resolution is None:
            raise ValueError("vae_online needs the resolution images are fed to the VAE at")
        self.dataset, self.ast, self.vae, self.resolution = dataset, ast, vae, resolution
        self._ast_index = ast.row_index() if ast is not None else None
        self._vae_index = vae.row_index() if vae is not None else None
        if self._ast_index is not None and self._vae_index is not None:
            self.rows = sorted(set(self._ast_index) & set(self._vae_index))
        elif self._ast_index is not None:
            self.rows = sorted(self._ast_index)
        elif self._vae_index is not None:
            self.rows = sorted(self._vae_index)
        else:
            self.rows = list(range(len(PairsDataset.open(dataset))))
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

    def _slice(self, fs: FeatureSet, index: dict, row: int, name: str) -> torch.Tensor:
        s, pos = index[row]
        return self._open(fs.shards[s]).get_slice(name)[pos : pos + 1][0]

    def __getitem__(self, i: int) -> dict:
        from seeing_sound.errors import SeeingSoundError

        if self._pairs is None:
            self._pairs = PairsDataset.open(self.dataset)
        pairs = self._pairs
        row = self.rows[i]
        item: dict[str, Any] = {"row": row}
        if self.ast is None:
            try:
                item["wave"] = torch.from_numpy(pairs.audio(row))
            except Exception as exc:  # precomputed features skip such rows; online there is no list to skip them from
                raise SeeingSoundError(
                    f"ast_online: cannot read the mixture of row {row} ({pairs.audio_path(row)}: {exc}); "
                    "run `seeing-sound features` (which skips bad audio) and train on the precomputed tokens"
                ) from exc
        else:
            item["audio"] = self._slice(self.ast, self._ast_index or {}, row, "embeds")
        if self.vae is None:
            assert self.resolution is not None
            item["pixels"] = torch.from_numpy(load_pixels(pairs, row, self.resolution))
        else:
            item["mean"] = self._slice(self.vae, self._vae_index or {}, row, "mean")
            item["std"] = self._slice(self.vae, self._vae_index or {}, row, "std")
        return item


class PairAudio(PairSources):
    """Items ``{"row", "wave" (n,) float32, "mean"/"std"}``: the raw mixture instead of AST tokens.

    For ``ast_online`` with precomputed latents: rows are those of the VAE set; the mixture
    (FLAC/WAV) is decoded here, so in DataLoader workers, and turned into tokens by
    :class:`OnlineAst` in the training process.
    """

    def __init__(self, dataset: str, vae: FeatureSet):
        super().__init__(dataset, None, vae)


def load_pixels(pairs: PairsDataset, row: int, resolution: int) -> np.ndarray:
    """Row ``row``'s image as the VAE input ``(resolution, resolution, 3)`` float32 in [-1, 1].

    The ``features`` stage's decode, step for step (``VaeFeatureStage._load_image``): the image
    wherever it lives (:meth:`PairsDataset.image_source`: a file, or bytes from a tar shard or a
    table), :func:`~seeing_sound.imaging.open_image` with its pixel cap, shorter side resized and
    center-cropped (:func:`~seeing_sound.features.stage.center_crop_resize`), ``x / 127.5 - 1``. An
    image that cannot be read stops the run naming it (``features`` skips and counts it instead).
    """
    from seeing_sound.errors import SeeingSoundError
    from seeing_sound.features.stage import center_crop_resize
    from seeing_sound.imaging import DEFAULT_MAX_PIXELS, open_image

    try:
        with open_image(pairs.image_source(row), max_pixels=DEFAULT_MAX_PIXELS) as im:
            im = center_crop_resize(im, resolution)
        return np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    except Exception as exc:
        try:
            from seeing_sound.dataset.image_store import ref_label

            where = ref_label(pairs.image_ref(row))
        except Exception:  # the reference itself is what is broken (a path escaping the images root)
            where = str(pairs.metadata.column("image_path")[row].as_py())
        raise SeeingSoundError(
            f"vae_online: cannot read the image of row {row} ({where}: {exc}); "
            "run `seeing-sound features` (which skips unreadable images) and train on the precomputed latents"
        ) from exc


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
    """Like :func:`collate` for :class:`PairSources` items: ``"wave"`` a list (mixtures may differ in
    length), ``"pixels"`` stacked ``(B, 3, H, W)``; whichever of audio/wave and mean,std/pixels they hold."""
    out: dict[str, Any] = {"row": torch.tensor([it["row"] for it in items]), **_sources(items)}
    first = items[0] if items else {}
    if "wave" in first:
        out["wave"] = [it["wave"] for it in items]
    if "audio" in first:
        out["audio"] = torch.stack([it["audio"] for it in items])
    if "pixels" in first:
        out["pixels"] = torch.stack([it["pixels"] for it in items]).permute(0, 3, 1, 2)
    else:
        out["mean"] = torch.stack([it["mean"] for it in items])
        out["std"] = torch.stack([it["std"] for it in items])
    return out


class OnlineVae:
    """A frozen VAE that turns a batch's pixels into the latents ``seeing-sound features`` would store.

    The VAE of ``model`` (a PixArt-α repository's ``vae/``, as ``features --vae`` defaults to), in
    float32 on the training device as the features stage runs it; posterior mean and std times
    ``scaling_factor``, rounded to fp16 as the stored features are, so both paths train on the same
    inputs. ``card`` stands in for a VAE feature set's card (model, resolution, latent shape).
    """

    def __init__(self, model: str, resolution: int, device):
        from seeing_sound.builders import load_vae
        from seeing_sound.errors import SeeingSoundError

        self.device = torch.device(device)
        self.vae = load_vae(model, param="pretrained").to(self.device).eval()
        self.vae.requires_grad_(False)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if resolution % scale:
            raise SeeingSoundError(
                f"vae_resolution {resolution} is not a multiple of the VAE's downsampling ({scale}) in {model}"
            )
        c, h = int(self.vae.config.latent_channels), resolution // scale
        self.card: dict[str, Any] = {
            "kind": "vae",
            "model": model,
            "resolution": resolution,
            "latent_shape": [c, h, h],
            "online": True,
        }

    def __call__(self, pixels: torch.Tensor, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` ``(B, C, h, w)`` fp16 on the CPU (where the noise is drawn) from ``(B, 3, H, W)`` pixels."""
        from seeing_sound.errors import SeeingSoundError

        with torch.no_grad():
            dist = self.vae.encode(pixels.to(self.device, self.vae.dtype)).latent_dist
            mean = (dist.mean.float() * self.scaling_factor).half().cpu()
            std = (dist.std.float() * self.scaling_factor).half().cpu()
        bad = ~(torch.isfinite(mean).flatten(1).all(1) & torch.isfinite(std).flatten(1).all(1))
        if bad.any():
            which = [int(r) for r in (rows[bad] if rows is not None else bad.nonzero().flatten())]
            raise SeeingSoundError(
                f"vae_online: the VAE gave non-finite latents for rows {which}; "
                "`seeing-sound features` skips such images: train on its precomputed latents"
            )
        return mean, std

"""Settings of a training run (``seeing-sound train``): one field each, with its default, help and checks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from seeing_sound.builders import DEFAULT_AST
from seeing_sound.config import Config, ConfigError, option
from seeing_sound.model.diffusion import LOSS_TYPES
from seeing_sound.model.loading import DEFAULT_PIXART

#: Settings that must not change when a run is resumed: they decide which batches and noise it sees,
#: the model's shapes, or what only the run's start used (so a new value would be recorded but
#: unused). ``resume`` refuses a change of one, naming it. Every other setting is applied from the
#: resumed step on and recorded in ``train_config.json``'s ``changes`` (see ``resume.py``); the
#: datasets and their excluded rows (exclusion lists and the pair-score threshold) are compared by
#: ``sets.check_resume_datasets``.
RESUME_KEYS = (
    "batch_size",
    "grad_accum",
    "seed",
    "loss",
    "uncond_prob",
    "ast_features",
    "vae_features",
    "ast_online",
    "ast_model",
    "ast_pool",
    "vae_online",
    "vae_resolution",
    "pretrained",  # the architecture, VAE and scheduler; the weights come from the checkpoint
    "ema_decay",  # the checkpoint's EMA restores its own decay (and an EMA cannot start or stop mid-run)
    "pretrain_projector_steps",  # runs only before step 1
    "pretrain_batch_size",
)
#: Settings a resume does not compare: checked elsewhere (datasets, exclusions), or not settings of the run.
RESUME_UNCOMPARED = (
    "dataset",
    "out",
    "resume",
    "progress",
    "exclude_pairs",
    "min_pair_score",
    "pair_scores",
    "score_column",
)
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
#: Experiment trackers ``report_to`` takes (accelerate's ``log_with``); both come with the ``track`` extra.
REPORT_TO = ("none", "tensorboard", "wandb")


@dataclass(frozen=True)
class TrainConfig(Config):
    """A training run (paper Section 4.3). Frozen: the recipe never changes it."""

    dataset: tuple[str, ...] = option(
        help="dataset roots holding features/ast-*/ and features/vae-*/ (none needed with ast_online and "
        "vae_online); one path, or several trained on together"
    )
    out: str = option(help="run folder: checkpoints/, samples/, pipeline/, log.jsonl")
    pretrained: str = option(
        DEFAULT_PIXART,
        "PixArt-α checkpoint (hub id or folder) all weights but the projector come from (paper: 4.3, 512×512)",
    )
    ast_features: str | None = option(
        None, "folder under each DATASET/features (ours)", default_text="the only ast-* one"
    )
    vae_features: str | None = option(
        None, "folder under each DATASET/features (ours)", default_text="the only vae-* one"
    )
    ast_online: bool = option(
        False,
        "compute AST tokens in the training process from the dataset's mixtures (frozen AST, bf16 on a GPU) "
        "instead of reading features/ast-*: no 1.86 MB per pair on disk, ~4% more compute per sample "
        "(paper: 4.3 precomputes them)",
    )
    ast_model: str = option(
        DEFAULT_AST, "AST model id or folder of --ast-online (paper: 3.4, AST; the AudioSet checkpoint is ours)"
    )
    ast_pool: int = option(
        1, "with ast_online: average AST patch tokens over N time steps, as features' pool (paper: 3.4)", min=1
    )
    vae_online: bool = option(
        False,
        "compute the VAE latents in the training process from the dataset's images (wherever they live: "
        "folder, tar shards, Parquet) with --pretrained's VAE, fp32 as features runs it, instead of reading "
        "features/vae-*: nothing on disk, one VAE encode per sample and step; with ast_online no features at all "
        "(paper: 4.3 precomputes them)",
    )
    vae_resolution: int = option(
        512,
        "with vae_online: square image size fed to the VAE (shorter side resized, center crop), "
        "as features' --resolution (paper: 4.3, 512×512)",
        min=8,
    )
    max_steps: int = option(
        1000, "optimizer steps to train up to; a resumed run continues to this (ours: a first run; paper: ~0.5M)", min=1
    )
    batch_size: int = option(8, "examples per device per micro-batch (ours: fits one GPU; paper: 640 in total)", min=1)
    grad_accum: int = option(1, "micro-batches per optimizer step (ours: see --batch-size)", min=1)
    lr: float = option(3.16e-5, "AdamW learning rate (paper: 4.3)", gt=0)
    weight_decay: float = option(3e-2, "AdamW weight decay (paper: 4.3, as PixArt-α)", min=0)
    warmup_steps: int = option(0, "linear LR warm-up steps (ours: short runs; PixArt-α: 1000)", min=0)
    max_grad_norm: float = option(
        1.0, "gradient clipping; 0 turns it off (ours: with AdamW eps 1e-8; PixArt-α: 0.01 with eps 1e-10)", min=0
    )
    uncond_prob: float = option(
        0.1, "probability to replace the audio by the null embedding for CFG (PixArt-α: caption dropout)", min=0, lt=1
    )
    loss: str = option(
        "hybrid", "hybrid: eps MSE + VLB, learned variance; eps-mse: MSE only (PixArt-α)", choices=LOSS_TYPES
    )
    mixed_precision: str = option(
        "auto",
        "auto = bf16 on a GPU that has it, else fp32; or no, bf16, fp16 "
        "(ours: bf16 needs no loss scaling; PixArt-α: fp16)",
        choices=MIXED_PRECISION,
    )
    gradient_checkpointing: bool = option(
        False, "trade compute for activation memory (ours: off, faster; PixArt-α: on)"
    )
    ema_decay: float = option(
        0.0,
        "> 0 keeps an EMA of the weights, used for samples and the saved pipeline (ours: off, one model copy less; "
        "PixArt-α: 0.9999)",
        min=0,
        lt=1,
    )
    checkpoint_every: int = option(500, "save a checkpoint every N steps and at the end (ours)", min=1)
    keep_checkpoints: int = option(3, "keep the newest N checkpoints; 0 keeps all (ours)", min=0)
    sample_every: int = option(500, "render a validation grid PNG every N steps; 0: never (ours)", min=0)
    num_validation: int = option(4, "validation audios in the grid (ours)", min=1)
    sample_steps: int = option(20, "DPM-Solver steps for the grid (PixArt-α: its sampler's)", min=1)
    guidance_scale: float = option(4.5, "classifier-free guidance for the grid (PixArt-α: its sampler's)", min=0)
    log_every: int = option(10, "log loss and samples/s every N steps (ours)", min=1)
    seed: int = option(0, "fixes init, batch order and every noise draw (ours)")
    resume: str | None = option(None, '"latest" or a checkpoint folder (ours)', default_text="start a new run")
    report_to: str = option(
        "none",
        "also log loss, lr, grad norm, samples/s and the validation grids to a tracker: tensorboard "
        "(OUT/logs/seeing-sound) or wandb (OUT/wandb; WANDB_MODE=offline needs no account); the track extra (ours)",
        choices=REPORT_TO,
        fingerprint=False,
    )
    num_workers: int = option(0, "DataLoader worker processes (ours)", min=0)
    pretrain_projector_steps: int = option(
        0,
        "> 0: contrastive projector pre-training steps against the T5 text projection first "
        "(paper: A.11, the projector trains from scratch)",
        min=0,
    )
    pretrain_batch_size: int = option(32, "batch size of the projector pre-training (ours: A.11 gives none)", min=1)
    exclude_pairs: tuple[str, ...] = option(
        (),
        "exclude_pairs.txt files of `seeing-sound leakage` (one pair id a line): those pairs are left out "
        "of training; a file beside its leakage.json applies to the dataset that check ran on "
        "(ours: leakage lists are opt-in)",
    )
    min_pair_score: float | None = option(
        None,
        "keep only pairs whose score (`seeing-sound score`) is >= this; pairs without a score are left out "
        "(ours: off, the paper trains on every pair)",
        default_text="every pair",
    )
    pair_scores: tuple[str, ...] = option(
        (),
        "scores.parquet files (or `score --out` folders) of `seeing-sound score`, one per dataset in order, "
        "read with min_pair_score (ours)",
        default_text="DATASET/scores/scores.parquet",
    )
    score_column: str = option(
        "pair_score", "the column of the scores file min_pair_score compares, e.g. ais_<key> of other models (ours)"
    )
    progress: bool = option(True, "show a progress bar (ours)", fingerprint=False)

    def __post_init__(self):
        # One path (str or os.PathLike) is the single-dataset form of the library API: a 1-tuple.
        object.__setattr__(self, "dataset", _paths(self.dataset))
        object.__setattr__(self, "exclude_pairs", _paths(self.exclude_pairs))
        object.__setattr__(self, "pair_scores", _paths(self.pair_scores))
        super().__post_init__()

    def validate(self) -> None:
        if not self.dataset or not all(isinstance(d, str) and d for d in self.dataset):
            raise ConfigError("dataset", self.dataset, "must name at least one dataset folder")
        resolved = [str(Path(d).expanduser().resolve()) for d in self.dataset]  # "a" and "./a" are one folder
        twice = sorted({d for d, r in zip(self.dataset, resolved, strict=True) if resolved.count(r) > 1})
        if twice:
            raise ConfigError("dataset", self.dataset, f"lists {', '.join(twice)} more than once")
        if self.min_pair_score is not None and not math.isfinite(self.min_pair_score):
            raise ConfigError("min_pair_score", self.min_pair_score, "must be a finite number")
        if self.pair_scores and self.min_pair_score is None:
            raise ConfigError("pair_scores", self.pair_scores, "is read only with min_pair_score: set a threshold too")
        if self.pair_scores and len(self.pair_scores) != len(self.dataset):
            raise ConfigError(
                "pair_scores", self.pair_scores, f"must name one scores file per dataset ({len(self.dataset)})"
            )
        if self.vae_resolution % 8:
            raise ConfigError(
                "vae_resolution", self.vae_resolution, "must be a multiple of 8 (the VAE downsamples by 8)"
            )
        if self.vae_online and self.vae_features is not None:
            raise ConfigError(
                "vae_features", self.vae_features, "is read only without vae_online (which encodes the images)"
            )
        for name in ("out", "pretrained"):
            value = getattr(self, name)
            if value is None or not str(value):
                raise ConfigError(name, value, "must be a folder path or hub id")


def _paths(value) -> tuple[str, ...]:
    """``"a"`` / ``Path("a")`` -> ``("a",)``; a list or tuple of paths -> a tuple of str; None -> ``()``."""
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (os.fspath(value),)
    return tuple(os.fspath(v) if isinstance(v, (str, os.PathLike)) else v for v in value)

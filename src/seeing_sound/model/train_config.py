"""Settings of a training run (``seeing-sound train``), one comment per field."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from seeing_sound.model.diffusion import LOSS_TYPES
from seeing_sound.model.loading import DEFAULT_PIXART

#: Settings that must not change when a run is resumed (they decide which batches and noise it sees).
RESUME_KEYS = ("batch_size", "grad_accum", "seed", "loss", "uncond_prob", "ast_features", "vae_features")


@dataclass
class TrainConfig:
    dataset: str  # dataset root holding features/ast-*/ and features/vae-*/
    out: str  # run folder: checkpoints/, samples/, pipeline/, log.jsonl
    pretrained: str = DEFAULT_PIXART  # PixArt-α checkpoint (hub id or folder) all weights but the projector come from
    ast_features: str | None = None  # folder name under DATASET/features (default: the only ast-* one)
    vae_features: str | None = None  # folder name under DATASET/features (default: the only vae-* one)
    max_steps: int = 1000  # optimizer steps to train up to (a resumed run continues to this)
    batch_size: int = 8  # examples per device per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3.16e-5  # AdamW learning rate (paper, Section 4.3)
    weight_decay: float = 3e-2  # AdamW weight decay (paper, Section 4.3)
    warmup_steps: int = 0  # linear LR warm-up (PixArt-α used 1000)
    max_grad_norm: float = 1.0  # gradient clipping; 0 turns it off
    uncond_prob: float = 0.1  # probability to replace the audio by the null embedding (CFG dropout)
    loss: str = "hybrid"  # "hybrid" (eps MSE + VLB, learned variance, as PixArt-α) or "eps-mse"
    mixed_precision: str = "auto"  # "auto" = bf16 on a GPU that has it, else fp32; or "no", "bf16", "fp16"
    gradient_checkpointing: bool = False  # trade compute for activation memory
    ema_decay: float = 0.0  # > 0 keeps an EMA of the weights (used for samples and the saved pipeline)
    checkpoint_every: int = 500  # save_state every N steps (and at the end)
    keep_checkpoints: int = 3  # keep the newest N checkpoints (0 keeps all)
    sample_every: int = 500  # render a validation grid PNG every N steps (0: never)
    num_validation: int = 4  # validation audios in the grid
    sample_steps: int = 20  # DPM-Solver steps for the grid
    guidance_scale: float = 4.5  # classifier-free guidance for the grid
    log_every: int = 10  # log loss and samples/s every N steps
    seed: int = 0  # fixes init, batch order and every noise draw
    resume: str | None = None  # "latest" or a checkpoint folder
    tensorboard: bool = False  # also log to TensorBoard under OUT/logs
    num_workers: int = 0  # DataLoader worker processes
    pretrain_projector_steps: int = 0  # > 0: contrastive projector pre-training first (paper A.11)
    pretrain_batch_size: int = 32  # batch size of the projector pre-training
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        positive = (
            "max_steps",
            "batch_size",
            "grad_accum",
            "checkpoint_every",
            "log_every",
            "sample_steps",
            "num_validation",
            "pretrain_batch_size",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "keep_checkpoints", "sample_every", "num_workers", "pretrain_projector_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.uncond_prob < 1:
            raise ValueError(f"uncond_prob must be in [0, 1), got {self.uncond_prob}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.loss not in LOSS_TYPES:
            raise ValueError(f"loss must be one of {LOSS_TYPES}, got {self.loss!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)

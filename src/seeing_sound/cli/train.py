"""``seeing-sound train DATASET --out RUN``: train AudioPixArt on precomputed features.

Multi-GPU / multi-node: ``accelerate launch [--multi_gpu --num_processes N ...] $(which seeing-sound) train ...``.
"""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import non_negative_float, positive_float, positive_int


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(sub) -> None:
    from seeing_sound.builders import DEFAULT_PIXART

    p = sub.add_parser(
        "train",
        help="train the audio-to-image model (accelerate; resumable)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dataset", help="pairs dataset with features/ (run `seeing-sound features` first)")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, samples/, pipeline/, log.jsonl)")
    p.add_argument("--pretrained", default=DEFAULT_PIXART, help="PixArt-α checkpoint id or folder to start from")
    p.add_argument("--ast-features", help="folder under DATASET/features (default: the only ast-*)")
    p.add_argument("--vae-features", help="folder under DATASET/features (default: the only vae-*)")
    p.add_argument("--max-steps", type=positive_int, default=1000, help="optimizer steps in total")
    p.add_argument("--batch-size", type=positive_int, default=8, help="examples per device per micro-batch")
    p.add_argument("--grad-accum", type=positive_int, default=1, help="gradient accumulation steps")
    p.add_argument("--lr", type=positive_float, default=3.16e-5, help="AdamW learning rate (paper)")
    p.add_argument("--weight-decay", type=non_negative_float, default=3e-2, help="AdamW weight decay (paper)")
    p.add_argument("--warmup-steps", type=_non_negative_int, default=0, help="linear LR warm-up steps")
    p.add_argument("--max-grad-norm", type=non_negative_float, default=1.0, help="gradient clipping (0 = off)")
    p.add_argument("--uncond-prob", type=non_negative_float, default=0.1, help="CFG audio dropout probability")
    p.add_argument(
        "--loss",
        choices=["hybrid", "eps-mse"],
        default="hybrid",
        help="hybrid = eps MSE + VLB with learned variance (PixArt-α); eps-mse = MSE only",
    )
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="auto = bf16 on a GPU that supports it",
    )
    p.add_argument("--gradient-checkpointing", action="store_true", help="save activation memory")
    p.add_argument("--ema-decay", type=non_negative_float, default=0.0, help="> 0 keeps an EMA of the weights")
    p.add_argument("--checkpoint-every", type=positive_int, default=500, help="save_state every N steps")
    p.add_argument("--keep-checkpoints", type=_non_negative_int, default=3, help="newest N kept (0 = all)")
    p.add_argument("--sample-every", type=_non_negative_int, default=500, help="validation grid every N steps")
    p.add_argument("--num-validation", type=positive_int, default=4, help="validation audios in the grid")
    p.add_argument("--sample-steps", type=positive_int, default=20, help="DPM-Solver steps for the grid")
    p.add_argument("--guidance-scale", type=non_negative_float, default=4.5, help="CFG scale for the grid")
    p.add_argument("--log-every", type=positive_int, default=10, help="log loss and samples/s every N steps")
    p.add_argument("--seed", type=int, default=0, help="fixes init, batch order and noise")
    p.add_argument("--resume", nargs="?", const="latest", help="continue from the latest (or the given) checkpoint")
    p.add_argument("--tensorboard", action="store_true", help="log to TensorBoard under OUT/logs")
    p.add_argument("--num-workers", type=_non_negative_int, default=0, help="DataLoader workers")
    p.add_argument(
        "--pretrain-projector",
        type=_non_negative_int,
        default=0,
        metavar="STEPS",
        help="contrastive projector pre-training steps against the T5 text projection (paper A.11)",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.model.train import train
    from seeing_sound.model.train_config import TrainConfig

    cfg = TrainConfig(
        dataset=args.dataset,
        out=args.out,
        pretrained=args.pretrained,
        ast_features=args.ast_features,
        vae_features=args.vae_features,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        max_grad_norm=args.max_grad_norm,
        uncond_prob=args.uncond_prob,
        loss=args.loss,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        ema_decay=args.ema_decay,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        sample_every=args.sample_every,
        num_validation=args.num_validation,
        sample_steps=args.sample_steps,
        guidance_scale=args.guidance_scale,
        log_every=args.log_every,
        seed=args.seed,
        resume=args.resume,
        tensorboard=args.tensorboard,
        num_workers=args.num_workers,
        pretrain_projector_steps=args.pretrain_projector,
        progress=args.progress,
    )
    train(cfg)
    return 0

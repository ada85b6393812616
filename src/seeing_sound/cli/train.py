"""``seeing-sound train DATASET [DATASET ...] --out RUN``: train AudioPixArt on precomputed features.

``--ast-online`` / ``--vae-online`` compute the AST tokens / VAE latents in the training process
from the dataset's mixtures / images instead; with both, no ``seeing-sound features`` run is needed.

Several datasets (e.g. imported real pairs and sonified ones) train together, their rows mixed
in one seeded batch order; their features must match (same AST and VAE folders and shapes).

Multi-GPU / multi-node: ``accelerate launch [--multi_gpu --num_processes N ...] $(which seeing-sound) train ...``.
Every option and default comes from :class:`~seeing_sound.model.training.config.TrainConfig`.
"""

from __future__ import annotations

from seeing_sound.cli.options import add_config_options, config_from_args, record_hints
from seeing_sound.model.training.config import TrainConfig

FLAGS = {"pretrain_projector_steps": "--pretrain-projector"}


def register(sub) -> None:
    p = sub.add_parser("train", help="train the audio-to-image model (accelerate; resumable)")
    p.add_argument(
        "dataset",
        nargs="+",
        help="pairs dataset(s) with features/ (run `seeing-sound features` on each first, or train with "
        "--ast-online --vae-online); several train together",
    )
    p.add_argument("--out", required=True, help="run folder (checkpoints/, samples/, pipeline/, log.jsonl)")
    add_config_options(
        p,
        TrainConfig,
        exclude=("dataset", "out", "resume", "progress"),
        flags=FLAGS,
        metavars={
            "pretrain_projector_steps": "STEPS",
            "exclude_pairs": "FILE[,FILE]",
            "min_pair_score": "X",
            "pair_scores": "FILE[,FILE]",
            "score_column": "COLUMN",
        },
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=TrainConfig.__dataclass_fields__["resume"].default,
        help="continue from the latest (or the given) checkpoint",
    )
    record_hints(
        p,
        {
            "resume='latest'": "--resume",
            "loss='eps-mse'": "--loss eps-mse",
            "pretrained PATH": "--pretrained PATH",
            "pretrain_projector_steps": "--pretrain-projector",
            "exclude_pairs:": "--exclude-pairs:",
            "ast_features": "--ast-features",
            "vae_features": "--vae-features",
            "vae_online": "--vae-online",
            "vae_resolution": "--vae-resolution",
        },
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.model.training.recipe import train

    cfg = config_from_args(
        args, TrainConfig, dataset=tuple(args.dataset), out=args.out, resume=args.resume, progress=args.progress
    )
    train(cfg)
    return 0

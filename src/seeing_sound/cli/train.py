"""``seeing-sound train DATASET --out RUN``: train AudioPixArt on precomputed features.

Multi-GPU / multi-node: ``accelerate launch [--multi_gpu --num_processes N ...] $(which seeing-sound) train ...``.
Every option and default comes from :class:`~seeing_sound.model.train_config.TrainConfig`.
"""

from __future__ import annotations

from seeing_sound.cli.options import add_config_options, config_from_args, record_hints
from seeing_sound.model.train_config import TrainConfig

FLAGS = {"pretrain_projector_steps": "--pretrain-projector"}


def register(sub) -> None:
    p = sub.add_parser("train", help="train the audio-to-image model (accelerate; resumable)")
    p.add_argument("dataset", help="pairs dataset with features/ (run `seeing-sound features` first)")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, samples/, pipeline/, log.jsonl)")
    add_config_options(
        p,
        TrainConfig,
        exclude=("dataset", "out", "resume", "progress"),
        flags=FLAGS,
        metavars={"pretrain_projector_steps": "STEPS"},
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=TrainConfig.__dataclass_fields__["resume"].default,
        help="continue from the latest (or the given) checkpoint",
    )
    record_hints(
        p, {"resume='latest'": "--resume", "loss='eps-mse'": "--loss eps-mse", "pretrained PATH": "--pretrained PATH"}
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.model.train import train

    cfg = config_from_args(
        args, TrainConfig, dataset=args.dataset, out=args.out, resume=args.resume, progress=args.progress
    )
    train(cfg)
    return 0

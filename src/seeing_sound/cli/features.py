"""``seeing-sound features DATASET``: precompute AST audio tokens and VAE latents for training."""

from __future__ import annotations

import argparse

from seeing_sound.builders import DEFAULT_AST, DEFAULT_VAE
from seeing_sound.cli.common import add_stage_args, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "features",
        help="precompute AST and VAE features of a pairs dataset (resumable)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dataset", help="pairs dataset folder (features go to DATASET/features/)")
    p.add_argument("--ast", default=DEFAULT_AST, help="AST model id or folder")
    p.add_argument("--vae", default=DEFAULT_VAE, help="VAE id or folder (a PixArt repo's vae/ subfolder is used)")
    p.add_argument("--only", choices=["ast", "vae"], help="compute only one of the two feature sets")
    p.add_argument("--resolution", type=positive_int, default=512, help="square image size fed to the VAE")
    p.add_argument(
        "--ast-pool",
        type=positive_int,
        default=1,
        help="average AST patch tokens over N time steps (1 = full sequence, as in the paper)",
    )
    p.add_argument("--images-root", help="override the dataset card's images root")
    p.add_argument("--batch-size", type=positive_int, default=16, help="items per model call")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_stage_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.features import compute_features

    reports = compute_features(
        args.dataset,
        ast=None if args.only == "vae" else args.ast,
        vae=None if args.only == "ast" else args.vae,
        resolution=args.resolution,
        pool=args.ast_pool,
        batch_size=args.batch_size,
        device=args.device,
        images_root=args.images_root,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    return 0 if all(r.items_out > 0 for r in reports.values()) else 1

"""``seeing-sound features DATASET``: precompute AST audio tokens and VAE latents for training."""

from __future__ import annotations

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.features.config import FeaturesConfig


def register(sub) -> None:
    p = sub.add_parser(
        "features",
        help="precompute AST and VAE features of a pairs dataset (resumable)",
    )
    p.add_argument("dataset", help="pairs dataset folder (features go to DATASET/features/)")
    add_config_options(
        p,
        FeaturesConfig,
        include=("ast", "vae"),
        helps={
            "ast": "AST model id or folder (paper: AST, 4.3; the checkpoint is ours)",
            "vae": "VAE id or folder (a PixArt repo's vae/ subfolder is used) (paper: LDM's VAE, 4.3)",
        },
    )
    p.add_argument("--only", choices=["ast", "vae"], help="compute only one of the two feature sets")
    add_config_options(
        p,
        FeaturesConfig,
        include=("resolution", "pool", "images_root", "batch_size", "device"),
        flags={"pool": "--ast-pool"},
    )
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.features import compute_features

    eng = engine_from_args(args)
    skip = {"vae": None} if args.only == "ast" else {"ast": None} if args.only == "vae" else {}
    reports = compute_features(
        args.dataset,
        config_from_args(args, FeaturesConfig, **skip),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=eng,
    )
    if eng.slice is not None or not all(r.complete for r in reports.values()):
        done = ", ".join(f"{kind} {r.ran} run, {r.skipped} already done" for kind, r in reports.items())
        print(f"slice done: {done} (run once without --shard-slice to finish the features)")
        return 0
    return 0 if all(r.items_out > 0 for r in reports.values()) else 1

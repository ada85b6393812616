"""``seeing-sound sonify --images DIR --pool POOL --out DATASET``."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import add_stage_args, positive_int
from seeing_sound.cli.concepts import add_concept_options, concept_options, vlm_specs


def register(sub) -> None:
    from seeing_sound.audio.mix import DEFAULT_LUFS_RANGE

    p = sub.add_parser(
        "sonify",
        help="turn an image folder into audio-visual pairs (concepts, retrieve, mix)",
        description="The paper's image sonification: sounding concepts per image (VLM or --concepts), "
        "silent-image filter, CLAP/text retrieval with Algorithm 1, LUFS-normalized mixing, and a "
        "rebuildable pairs dataset. Every stage resumes after a crash.",
    )
    p.add_argument("--images", metavar="DIR", help="image folder (walked recursively)")
    p.add_argument("--pool", required=True, metavar="POOL", help="audio pool from `pool build`")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder to create or resume")
    p.add_argument(
        "--concepts",
        metavar="FILE",
        help="start from existing concepts: a `concepts` run folder or a "
        "JSONL/CSV/Parquet file of (image_id, concept) rows",
    )
    add_concept_options(p)  # --vlm, prompts, filter, back-end knobs: as `seeing-sound concepts`
    r = p.add_argument_group("retrieval and mixing")
    r.add_argument("--encoder", choices=["clap", "text"], default="clap", help="query/pool encoder (default clap)")
    r.add_argument("--model", help="encoder model id or local path (default per encoder)")
    r.add_argument("--topk", type=positive_int, default=None, help="Algorithm 1's k (default 100, see README)")
    r.add_argument("--no-ssr", action="store_true", help="skip the signed square root (ablation)")
    r.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    r.add_argument(
        "--lufs-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=list(DEFAULT_LUFS_RANGE),
        help="target loudness range per component, LUFS (default %(default)s)",
    )
    o = p.add_argument_group("output")
    o.add_argument("--audio-format", choices=["flac", "wav"], default="flac", help="mixture files (default flac)")
    o.add_argument("--pairs-per-shard", type=positive_int, default=1000)
    o.add_argument("--copy-images", action="store_true", help="also write WebDataset tar shards (image+audio+json)")
    add_stage_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from seeing_sound.sonify import sonify

    if args.images is None and args.concepts is None:
        raise ValueError("give --images DIR (and/or --concepts FILE)")
    report = sonify(
        args.images,
        args.pool,
        args.out,
        concepts=args.concepts,
        vlms=vlm_specs(args),
        concept_options=concept_options(args),
        encoder=args.encoder,
        model=args.model,
        topk=args.topk,
        ssr=not args.no_ssr,
        seed=args.seed,
        lufs_range=tuple(args.lufs_range),
        audio_format=args.audio_format,
        pairs_per_shard=args.pairs_per_shard,
        copy_images=args.copy_images,
        device=args.device,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(report.summary())
    return 0 if report.pairs else 1

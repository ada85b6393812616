"""``seeing-sound sonify --images DIR --pool POOL --out DATASET``."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.concepts import add_concept_options, concepts_config
from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.sonify.config import SonifyConfig


def register(sub) -> None:
    p = sub.add_parser(
        "sonify",
        help="turn an image folder into audio-visual pairs (concepts, retrieve, mix)",
        description="The paper's image sonification: sounding concepts per image (VLM or --concepts), "
        "silent-image filter, CLAP/text retrieval with Algorithm 1, LUFS-normalized mixing, and a "
        "rebuildable pairs dataset. Every stage resumes after a crash.",
    )
    p.add_argument(
        "--images", metavar="IMAGES",
        help="image folder (walked recursively), tar shards or a pattern of them ('shards/sa_{000000..000999}.tar'), "
        "a Parquet file ('data.parquet#id=key,image=jpg') or hf:PATH[:SPLIT]: read in place",
    )  # fmt: skip
    p.add_argument("--pool", required=True, metavar="POOL", help="audio pool from `pool build`")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder to create or resume")
    p.add_argument(
        "--concepts",
        metavar="FILE",
        help="start from existing concepts: a `concepts` run folder or a "
        "JSONL/CSV/Parquet file of (image_id, concept) rows",
    )
    add_concept_options(p)  # --vlm, prompts, filter, back-end knobs (incl. --device): as `seeing-sound concepts`
    r = p.add_argument_group("retrieval and mixing")
    add_config_options(
        r,
        SonifyConfig,
        include=("encoder", "model", "audio_prep", "topk", "ssr", "seed", "lufs_range"),
        metavars={"lufs_range": ("LO", "HI")},
    )
    x = p.add_argument_group("exclusions (the lists `seeing-sound leakage` writes)")
    add_config_options(
        x,
        SonifyConfig,
        include=("exclude_images", "exclude_chunks"),
        metavars={"exclude_images": "FILE", "exclude_chunks": "FILE"},
    )
    o = p.add_argument_group("output")
    add_config_options(o, SonifyConfig, include=("audio_format", "pairs_per_shard", "copy_images"))
    add_stage_args(p)
    add_engine_args(p, multi_stage=True)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from seeing_sound.sonify import sonify

    if args.images is None and args.concepts is None:
        raise ValueError("give --images DIR (and/or --concepts FILE)")
    # Every setting is checked here, before the first stage writes anything.
    cfg = config_from_args(args, SonifyConfig, device=args.device, concepts_config=concepts_config(args))
    report = sonify(
        args.images,
        args.pool,
        args.out,
        cfg,
        concepts=args.concepts,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if not report.complete:
        print(f"slice done: {report.pairs} pairs mixed by this slice (run once without --shard-slice to finish)")
        return 0
    print(report.summary())
    return 0 if report.pairs else 1

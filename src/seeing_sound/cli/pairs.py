"""``seeing-sound pairs import``: real (image, audio) pairs or videos -> a pairs dataset."""

from __future__ import annotations

import argparse
import json
import sys

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args


def register(sub) -> None:
    from seeing_sound.pairs.config import PairsImportConfig

    p = sub.add_parser("pairs", help="real audio-visual pairs: import a folder into a pairs dataset")
    psub = p.add_subparsers(dest="pairs_command", metavar="SUBCOMMAND")
    psub.required = True
    i = psub.add_parser(
        "import",
        help="turn (image, audio) files matched by stem, or videos, into a pairs dataset",
        description="Files under SRC are grouped by their path without extension: one image + one audio file "
        "make a pair (x.jpg + x.wav), a video alone gives its center frame and whole audio track (as bench "
        "prepare). Unpaired, ambiguous and unreadable inputs are rows of DATASET/import/errors.parquet with a "
        "reason (in = out + skipped + failed). The dataset has sonify's layout: features and train read it. "
        "Resumable: rerun the same command after a crash.",
    )
    i.add_argument("src", metavar="SRC", help="folder of image+audio files and/or videos")
    i.add_argument("--out", required=True, metavar="DATASET", help="pairs dataset to create or resume")
    add_config_options(i, PairsImportConfig)
    i.add_argument("--json", action="store_true", help="print the counts as JSON")
    add_stage_args(i)
    add_engine_args(i)
    i.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from seeing_sound.pairs import PairsImportConfig, import_pairs

    report = import_pairs(
        args.src,
        args.out,
        config_from_args(args, PairsImportConfig),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if args.json:
        print(json.dumps({"root": str(report.root), "counts": report.counts, "complete": report.complete},
                         indent=2, sort_keys=True))  # fmt: skip
    else:
        print(report.summary())
    if report.counts["out"] == 0 and report.complete:
        print("seeing-sound: error: no pair could be imported", file=sys.stderr)
        return 1
    return 0

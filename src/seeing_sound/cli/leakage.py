"""``seeing-sound leakage``: near-duplicate images and audio between training data and benchmarks."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args


def register(sub) -> None:
    from seeing_sound.leakage.config import LeakageConfig

    p = sub.add_parser(
        "leakage",
        help="find benchmark items whose image or audio is (nearly) in the training data",
        description="Compares every training image with every benchmark frame (CLIP cosine and perceptual hash, "
        "both reported) and the training audio (the pool chunks a dataset's recipes use, a whole pool, or a "
        "dataset's stored audio) with every benchmark track (landmark fingerprints robust to resampling, "
        "re-encoding, gain and offset). Writes OUT/leakage.json, leakage.md, image_pairs.parquet/.csv, "
        "audio_pairs.parquet/.csv, contact_sheet.png and exclude_images.txt, exclude_chunks.txt, "
        "exclude_pairs.txt (one id a line). Features are cached in OUT/_features: rerun to resume.",
    )
    p.add_argument("--train", required=True, metavar="DATASET", help="a pairs dataset, or a folder of images")
    p.add_argument(
        "--benchmark", required=True, nargs="+", metavar="BENCH", help="prepared benchmark folder(s) (bench prepare)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created, or resumed)")
    p.add_argument("--pool", metavar="POOL", help="the pool of the dataset's chunks (default: the one its card names)")
    add_config_options(
        p,
        LeakageConfig,
        flags={"images": "--no-images", "audio": "--no-audio"},
        helps={"images": "do not compare images (ours)", "audio": "do not compare audio (ours)"},
    )
    p.add_argument("--json", action="store_true", help="print leakage.json")
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from seeing_sound.leakage import check_leakage
    from seeing_sound.leakage.config import LeakageConfig
    from seeing_sound.leakage.report import FILES

    report = check_leakage(
        args.train,
        args.benchmark,
        args.out,
        config_from_args(args, LeakageConfig),
        pool=args.pool,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if args.json and report.complete:
        print((report.out / FILES["json"]).read_text(), end="")
    else:
        print(report.summary())
    return 0

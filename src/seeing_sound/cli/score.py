"""``seeing-sound score DATASET --out DIR``: a quality score per pair (the paper's AIS of its mixture and image)."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args


def register(sub) -> None:
    from seeing_sound.scoring.config import ScoreConfig

    p = sub.add_parser(
        "score",
        help="score every pair of a dataset: AIS of its mixture and image (resumable)",
        description="Embeds each pair's mixture with Wav2CLIP and its image with CLIP (the models of `evaluate`'s "
        "AIS) and writes OUT/scores.parquet (pair_id, pair_score = the AIS cosine, error, the stored retrieval "
        "scores, one ais_<key> column per pair of models scored into OUT), report.json, report.md and "
        "histogram.svg. A pair that cannot be read is a row with a null score and its error. A dataset that "
        "changed since OUT was scored (other mixtures or images under the same pair ids) stops the run; "
        "--overwrite scores it again. "
        "`train --min-pair-score X` and `export hf --min-pair-score X` keep the pairs scoring X or more; "
        "they read DATASET/scores/scores.parquet unless told another file.",
    )
    p.add_argument("dataset", metavar="DATASET", help="a pairs dataset (from `sonify` or `pairs import`)")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created, or resumed); DATASET/scores is where train and export look by default",
    )
    add_config_options(p, ScoreConfig, metavars={"wav2clip": "PATH", "clip": "ID"})
    p.add_argument("--json", action="store_true", help="print report.json")
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from seeing_sound.scoring import ScoreConfig, score_pairs

    report = score_pairs(
        args.dataset,
        args.out,
        config_from_args(args, ScoreConfig),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if args.json and report.complete:
        print((report.out / "report.json").read_text(), end="")
    else:
        print(report.summary())
    return 0

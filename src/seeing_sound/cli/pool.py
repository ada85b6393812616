"""``seeing-sound pool build|info|embed``."""

from __future__ import annotations

import argparse
import json

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.pool.config import PoolBuildConfig


def register(sub) -> None:
    p = sub.add_parser("pool", help="build and inspect the standardized audio pool")
    psub = p.add_subparsers(dest="pool_command", metavar="SUBCOMMAND")
    psub.required = True

    b = psub.add_parser(
        "build",
        help="standardize audio files into a pool of 16 kHz mono 5 s chunks",
        description="Walk SRC folders/files, resample to --sample-rate (soxr HQ), downmix to mono (channel mean), "
        "cut non-overlapping --chunk-seconds chunks (last one zero-padded), measure BS.1770-4 loudness per chunk. "
        "Resumable: rerun the same command after a crash.",
    )
    b.add_argument("sources", nargs="+", metavar="SRC", help="audio folders (walked recursively) or files")
    b.add_argument("--out", required=True, metavar="POOL", help="pool folder to create or resume")
    b.add_argument(
        "--descriptions", metavar="FILE", help="CSV/JSONL: source path|file name|stem -> description, labels"
    )
    add_config_options(b, PoolBuildConfig, include=("chunk_seconds", "sample_rate", "min_tail_seconds", "shard_files"))
    add_stage_args(b)
    add_engine_args(b)
    b.set_defaults(handler=_build)

    i = psub.add_parser("info", help="summarize a pool (files, chunks, hours, silent chunks, loudness, errors)")
    i.add_argument("pool", metavar="POOL")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(handler=_info)

    try:
        from seeing_sound.cli.pool_embed import register_embed
    except ModuleNotFoundError as exc:
        if exc.name != "seeing_sound.cli.pool_embed":
            raise
    else:
        register_embed(psub)


def _build(args: argparse.Namespace) -> int:
    from seeing_sound.pool import AudioPool, build_pool, pool_summary
    from seeing_sound.pool.info import format_summary

    report = build_pool(
        args.sources,
        args.out,
        config_from_args(args, PoolBuildConfig),
        descriptions=args.descriptions,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if not report.complete:
        print(f"slice done: {report.shards_run} shards run, {report.shards_skipped} already done, "
              f"{report.files} files, {report.chunks} chunks; {report.seconds:.1f} s "
              "(run once without --shard-slice to finish the pool)")  # fmt: skip
        return 0
    print(format_summary(pool_summary(AudioPool.open(report.root))))
    print(f"shards      {report.shards_run} run, {report.shards_skipped} already done; {report.seconds:.1f} s")
    return 0


def _info(args: argparse.Namespace) -> int:
    from seeing_sound.pool import AudioPool, pool_summary
    from seeing_sound.pool.info import format_summary

    summary = pool_summary(AudioPool.open(args.pool))
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))
    return 0

"""``seeing-sound pool embed``: embed every usable pool chunk with one encoder (resumable).

``cli/pool.py`` calls :func:`register_embed` with its subparsers.
"""

from __future__ import annotations

import argparse
import json

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.pool.config import EmbedConfig


def register_embed(pool_subparsers) -> None:
    p = pool_subparsers.add_parser(
        "embed",
        help="embed the pool's chunks for retrieval (clap: audio; text: descriptions/labels)",
        description="Embed every non-silent chunk of POOL into POOL/embeddings/<encoder-model>/. Several encoders "
        "can live side by side; rerunning resumes.",
    )
    p.add_argument("pool", help="audio pool folder")
    add_config_options(p, EmbedConfig, flags={"fp16": "--fp16"})
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from seeing_sound.pool import embed_pool

    r = embed_pool(
        args.pool,
        config=config_from_args(args, EmbedConfig),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    if not r.complete:
        print(
            f"slice done: embedded {r.embedded} of {r.chunks} chunks in {r.shards_run} shards "
            f"({r.shards_skipped} already done); {r.seconds:.1f} s (run once without --shard-slice to finish)"
        )
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "embeddings": str(r.root),
                    "key": r.key,
                    "chunks": r.chunks,
                    "embedded": r.embedded,
                    "skipped": r.skipped,
                    "shards_run": r.shards_run,
                    "shards_skipped": r.shards_skipped,
                    "seconds": r.seconds,
                },
                indent=2,
            )
        )
    else:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(r.skipped.items())) or "none"
        print(
            f"embedded {r.embedded} of {r.chunks} chunks with {r.info['encoder_info']['model']} "
            f"(dim {r.info['encoder_info']['dim']}) -> {r.root}; skipped: {skipped}; "
            f"{r.shards_run} shards run, {r.shards_skipped} reused, {r.seconds:.1f} s"
        )
    return 0

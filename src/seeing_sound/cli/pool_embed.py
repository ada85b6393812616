"""``seeing-sound pool embed``: embed every usable pool chunk with one encoder (resumable).

The lead's ``cli/pool.py`` calls :func:`register_embed` with its subparsers.
"""

from __future__ import annotations

import argparse
import json

from seeing_sound.cli.common import add_encoder_runtime_args, add_stage_args, positive_int


def register_embed(pool_subparsers) -> None:
    p = pool_subparsers.add_parser(
        "embed",
        help="embed the pool's chunks for retrieval (clap: audio; text: descriptions/labels)",
        description="Embed every non-silent chunk of POOL into POOL/embeddings/<encoder-model>/. Several encoders "
        "can live side by side; rerunning resumes.",
    )
    p.add_argument("pool", help="audio pool folder")
    p.add_argument(
        "--encoder",
        choices=["clap", "text"],
        default="clap",
        help="clap embeds the audio; text embeds each chunk's description and labels (default clap)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="hub id or local path (default: laion/clap-htsat-unfused for clap, "
        "sentence-transformers/all-MiniLM-L6-v2 for text)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float16"],
        default="float32",
        help="stored precision (default float32; float16 halves the disk size)",
    )
    add_encoder_runtime_args(p)
    p.add_argument("--shard-chunks", type=positive_int, default=4096, help="chunks per shard (default 4096)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_stage_args(p)
    p.set_defaults(handler=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from seeing_sound.pool import embed_pool

    r = embed_pool(
        args.pool,
        args.encoder,
        args.model,
        device=args.device,
        fp16=args.fp16,
        batch_size=args.batch_size,
        dtype=args.dtype,
        shard_chunks=args.shard_chunks,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
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

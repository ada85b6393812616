"""``seeing-sound retrieve``: one pool chunk per sounding concept (Algorithm 1)."""

from __future__ import annotations

import argparse
import json

from seeing_sound.cli.common import add_encoder_runtime_args, add_stage_args, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "retrieve",
        help="retrieve a pool audio chunk for every sounding concept",
        description="Retrieve one audio chunk per (image_id, concept) row with Algorithm 1 of the paper: "
        "cosine similarity, signed square root (SSR), threshold = mean of the top-k scores, "
        "seeded uniform choice among the chunks above it. Resumable.",
    )
    p.add_argument("--pool", required=True, help="audio pool folder (embedded with `seeing-sound pool embed`)")
    p.add_argument(
        "--concepts",
        required=True,
        help="output folder of `seeing-sound concepts`, or a JSONL/CSV/Parquet file of "
        "image_id, concept[, concept_index] rows",
    )
    p.add_argument("--out", required=True, help="output folder (results in OUT/retrieval/)")
    p.add_argument(
        "--encoder",
        choices=["clap", "text"],
        default="clap",
        help="query encoder; the pool must be embedded with the same one (default clap)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="hub id or local path of the encoder model (default: laion/clap-htsat-unfused for clap, "
        "sentence-transformers/all-MiniLM-L6-v2 for text)",
    )
    p.add_argument(
        "--topk",
        type=positive_int,
        default=100,
        help="k of the threshold mean(topk(t)) (default 100; the paper does not give k)",
    )
    p.add_argument("--no-ssr", dest="ssr", action="store_false", help="skip the signed square root (ablation)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="global seed; each concept's choice is seeded from (seed, image_id, concept_index) (default 0)",
    )
    p.add_argument(
        "--stats",
        action="store_true",
        help="print usage diversity: unique chunks, top-10 most used chunks, usage entropy",
    )
    p.add_argument(
        "--index",
        dest="index_kind",
        choices=["exact", "ivf", "hnsw"],
        default="exact",
        help="exact search (default) or an approximate faiss index for pools beyond ~10M chunks",
    )
    p.add_argument(
        "--engine",
        choices=["auto", "faiss", "numpy"],
        default="auto",
        help="exact search engine; changes speed only, never the result (default auto: faiss if installed)",
    )
    add_encoder_runtime_args(p)
    p.add_argument("--shard-rows", type=positive_int, default=50_000, help="concept rows per shard (default 50000)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_stage_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from seeing_sound.retrieval import retrieve
    from seeing_sound.retrieval.stats import format_usage

    report = retrieve(
        args.pool,
        args.concepts,
        args.out,
        encoder=args.encoder,
        model=args.model,
        topk=args.topk,
        ssr=args.ssr,
        seed=args.seed,
        index_kind=args.index_kind,
        engine=args.engine,
        device=args.device,
        fp16=args.fp16,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        stats=args.stats,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "out": str(report.out),
                    "rows_in": report.rows_in,
                    "retrieved": report.retrieved,
                    "skipped": report.skipped,
                    "unique_concepts": report.unique_concepts,
                    "shards_run": report.shards_run,
                    "shards_skipped": report.shards_skipped,
                    "seconds": report.seconds,
                    "stats": report.stats,
                },
                indent=2,
            )
        )
    else:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())) or "none"
        print(
            f"retrieved {report.retrieved} of {report.rows_in} concept rows ({report.unique_concepts} unique concepts) "
            f"-> {report.out / 'retrieval'}; skipped: {skipped}; {report.shards_run} shards run, "
            f"{report.shards_skipped} reused, {report.seconds:.1f} s"
        )
        if report.stats is not None:
            print(format_usage(report.stats))
    return 0 if report.retrieved or not report.rows_in else 1

"""``seeing-sound retrieve``: one pool chunk per sounding concept (Algorithm 1)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.retrieval.config import RetrieveConfig


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
    add_config_options(
        p,
        RetrieveConfig,
        exclude=("engine",),
        flags={"index_kind": "--index", "fp16": "--fp16"},
        metavars={"exclude_chunks": "FILE"},
    )
    # RetrieveConfig.engine (the exact-search back end) shares its name with --engine local|ray
    search = next(f for f in dataclasses.fields(RetrieveConfig) if f.name == "engine")
    p.add_argument(
        "--search-engine", dest="search_engine", default=search.default, choices=list(search.metadata["choices"]),
        help=f"{search.metadata['help']} (default {search.default})",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from seeing_sound.retrieval import retrieve
    from seeing_sound.retrieval.stats import format_usage

    report = retrieve(
        args.pool,
        args.concepts,
        args.out,
        config_from_args(args, RetrieveConfig, engine=args.search_engine),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
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
    return 0 if report.retrieved or not report.rows_in or not report.complete else 1

"""``seeing-sound concepts IMAGES... --out DIR``: sounding concepts for an image collection."""

from __future__ import annotations

import argparse
import sys

from seeing_sound.cli.common import add_stage_args, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "concepts",
        help="list sounding concepts of images with a VLM (paper Sec. 3.2), dropping silent images",
        description="Ask vision-language models for the sounding concepts of every image (paper Section 3.2) "
        "and drop images whose caption mentions a logo-like subject (Appendix A.2). Resumable.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image folders (walked recursively) or files")
    p.add_argument("--out", required=True, help="output folder: concepts/ and images/ Parquet shards")
    add_concept_options(p)
    i = p.add_argument_group("images and shards")
    i.add_argument("--shard-size", type=positive_int, default=256, help="images per output shard (default %(default)s)")
    add_stage_args(p)
    p.set_defaults(handler=run)


def add_concept_options(p: argparse.ArgumentParser) -> None:
    """Back-end, prompt, parsing and filter options (shared by ``concepts`` and ``sonify``)."""
    from seeing_sound.concepts.backends import DEFAULT_TRANSFORMERS_MODEL
    from seeing_sound.concepts.prompts import CAPTION_PROMPT, CONCEPT_PROMPT, FILTER_WORDS, MAX_CONCEPTS

    g = p.add_argument_group("back ends")
    g.add_argument(
        "--vlm", action="append", metavar="KIND[:MODEL]",
        help=f"repeatable, run in order: transformers[:NAME_OR_PATH] (default {DEFAULT_TRANSFORMERS_MODEL}), "
        "openai:MODEL (any OpenAI-compatible server), sidecar:FILE (.jsonl/.json/.csv/.tsv/.parquet)",
    )  # fmt: skip
    g.add_argument(
        "--caption-vlm",
        type=int,
        default=0,
        metavar="N",
        help="which --vlm (0-based) writes captions (default %(default)s)",
    )
    g.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=256,
        help="longest answer (transformers, openai) (default %(default)s)",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="images per generate() call (transformers) (default %(default)s)",
    )
    g.add_argument(
        "--device", default="auto", help="transformers device: auto, cpu, cuda, cuda:1 (default %(default)s)"
    )
    g.add_argument(
        "--dtype",
        default="auto",
        help="transformers dtype: auto (bf16 on CUDA), float32, bfloat16 (default %(default)s)",
    )
    g.add_argument("--trust-remote-code", action="store_true", help="allow models that ship their own code")
    g.add_argument("--base-url", default=None, help="openai: server URL (default $OPENAI_BASE_URL or OpenAI's)")
    g.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="openai: environment variable with the API key (default %(default)s)",
    )
    g.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="openai: requests in flight per worker (default %(default)s)",
    )
    g.add_argument(
        "--timeout", type=positive_float, default=60.0, help="openai: seconds per request (default %(default)s)"
    )
    g.add_argument("--retries", type=int, default=5, help="openai: retries on 429/5xx/timeouts (default %(default)s)")
    g.add_argument("--sidecar-key", default=None, help="sidecar: key column (default: image_id, path, file, ...)")
    q = p.add_argument_group("prompts, parsing and filter")
    q.add_argument(
        "--concept-prompt", default=CONCEPT_PROMPT, help="prompt for sounding concepts (default: the paper's, Fig. 2)"
    )
    q.add_argument(
        "--caption-prompt",
        default=CAPTION_PROMPT,
        help="prompt for the caption the filter reads (default: the paper's)",
    )
    q.add_argument(
        "--max-concepts", type=positive_int, default=MAX_CONCEPTS, help="concepts kept per answer (default %(default)s)"
    )
    q.add_argument(
        "--filter-words",
        default=",".join(FILTER_WORDS),
        help="comma-separated silent-image keywords (default %(default)s)",
    )
    q.add_argument("--no-filter", action="store_true", help="keep every image (no silent-image filter)")
    q.add_argument("--no-captions", action="store_true", help="skip captioning (needs --no-filter)")

    i = p.add_argument_group("images")
    i.add_argument(
        "--max-side",
        type=positive_int,
        default=1024,
        help="downscale images so the longest side fits (default %(default)s)",
    )
    i.add_argument(
        "--max-pixels",
        type=positive_int,
        default=178_956_970,
        help="refuse larger images (bombs) (default %(default)s)",
    )


def vlm_specs(args: argparse.Namespace) -> list:
    """The ``--vlm`` back ends with their per-back-end knobs."""
    from seeing_sound.concepts import VLMSpec

    options = dict(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        trust_remote_code=args.trust_remote_code, base_url=args.base_url, api_key_env=args.api_key_env,
        concurrency=args.concurrency, timeout_s=args.timeout, max_retries=args.retries, sidecar_key=args.sidecar_key,
    )  # fmt: skip
    return [VLMSpec.parse(text, **options) for text in (args.vlm or ["transformers"])]


def concept_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`run_concepts` besides images, out, vlms and the stage options."""
    return dict(
        concept_prompt=args.concept_prompt,
        caption_prompt=args.caption_prompt,
        filter_words=[w.strip() for w in args.filter_words.split(",") if w.strip()],
        no_filter=args.no_filter,
        captions=not args.no_captions,
        caption_vlm=args.caption_vlm,
        max_concepts=args.max_concepts,
        max_side=args.max_side,
        max_pixels=args.max_pixels,
    )


def run(args: argparse.Namespace) -> int:
    from seeing_sound.concepts import run_concepts

    report = run_concepts(
        args.images,
        args.out,
        vlms=vlm_specs(args),
        **concept_options(args),
        shard_size=args.shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(report.summary(), file=sys.stdout)
    return 0

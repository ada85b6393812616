"""``seeing-sound concepts IMAGES... --out DIR``: sounding concepts for an image collection."""

from __future__ import annotations

import argparse
import sys

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args
from seeing_sound.cli.options import UsageError, add_config_options, config_from_args, record_hints
from seeing_sound.concepts.config import ConceptsConfig


def register(sub) -> None:
    p = sub.add_parser(
        "concepts",
        help="list sounding concepts of images with a VLM (paper Sec. 3.2), dropping silent images",
        description="Ask vision-language models for the sounding concepts of every image (paper Section 3.2) "
        "and drop images whose caption mentions a logo-like subject (Appendix A.2). Resumable.",
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGES",
        help="image folders (walked recursively) or files; tar shards or patterns of them "
        "('shards/sa_{000000..000999}.tar', 'shards/*.tar'); Parquet files (img2dataset's; "
        "'data.parquet#id=key,image=jpg'); hf:PATH[:SPLIT] (a datasets folder): all read in place",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="output folder: concepts/ and images/ Parquet shards")
    add_concept_options(p)
    i = p.add_argument_group("images and shards")
    add_config_options(i, ConceptsConfig, include=("shard_size",))
    add_stage_args(p)
    add_engine_args(p)
    p.set_defaults(handler=run)


#: --vlm knobs: VLMSpec fields (their defaults live there), with the help the CLI shows
VLM_KNOBS = {
    "max_new_tokens": "longest answer (transformers, openai) (ours)",
    "batch_size": "images per generate() call (transformers) (ours)",
    "device": "transformers device: auto, cpu, cuda, cuda:1 (ours)",
    "dtype": "transformers dtype: auto (bf16 on CUDA), float32, bfloat16 (ours)",
    "trust_remote_code": "allow models that ship their own code (ours: off, code runs only on request)",
    "base_url": "openai: server URL (default $OPENAI_BASE_URL or OpenAI's) (ours)",
    "api_key_env": "openai: environment variable with the API key (ours)",
    "concurrency": "openai: requests in flight per worker (ours)",
    "timeout_s": "openai: wall-clock seconds per request attempt (connect + whole answer) (ours)",
    "max_retries": "openai: retries on 429/5xx/timeouts (ours)",
    "max_response_bytes": "openai: longest answer read, in bytes; more is recorded as response-too-large (ours)",
    "sidecar_key": "sidecar: key column (default: image_id, path, file, ...) (ours)",
}
VLM_FLAGS = {"timeout_s": "--timeout", "max_retries": "--retries"}


def vlm_text(text: str) -> str:
    """``--vlm`` checked at parse time (a bad kind or a missing model is a usage error)."""
    from seeing_sound.concepts import VLMSpec

    try:
        VLMSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_concept_options(p: argparse.ArgumentParser) -> None:
    """Back-end, prompt, parsing and filter options (shared by ``concepts`` and ``sonify``)."""
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.concepts.backends import DEFAULT_TRANSFORMERS_MODEL

    g = p.add_argument_group("back ends")
    g.add_argument(
        "--vlm", action="append", metavar="KIND[:MODEL]", type=vlm_text,
        help=f"repeatable, run in order: transformers[:NAME_OR_PATH] (default {DEFAULT_TRANSFORMERS_MODEL}), "
        "openai:MODEL (any OpenAI-compatible server), sidecar:FILE (.jsonl/.json/.csv/.tsv/.parquet) "
        "(ours: one VLM unless --vlm is given twice; the paper ran LLaVA and CogVLM, 3.2)",
    )  # fmt: skip
    add_config_options(g, ConceptsConfig, include=("caption_vlm",), metavars={"caption_vlm": "N"})
    record_hints(g, {"vlm='transformers:PATH'": "--vlm transformers:PATH"})  # how a back end names its model
    add_config_options(g, VLMSpec, include=tuple(VLM_KNOBS), helps=VLM_KNOBS, flags=VLM_FLAGS)
    q = p.add_argument_group("prompts, parsing and filter")
    add_config_options(
        q,
        ConceptsConfig,
        include=("concept_prompt", "caption_prompt", "max_concepts", "filter_words", "no_filter", "captions"),
        helps={"captions": "skip captioning (needs --no-filter) (ours)"},
    )
    i = p.add_argument_group("images")
    add_config_options(i, ConceptsConfig, include=("max_side", "max_pixels"))
    c = p.add_argument_group("grounding: CLIP checks of the VLM's answers (docs/grounding.md)")
    add_config_options(
        c,
        ConceptsConfig,
        include=(
            "grounding", "grounding_threshold", "grounding_references", "photo_prompt", "filter_depictions",
            "depiction_prompts", "depiction_threshold", "grounding_batch_size",
        ),
        metavars={"grounding": "CLIP_ID_OR_PATH"},
    )  # fmt: skip


def vlm_specs(args: argparse.Namespace) -> list:
    """The ``--vlm`` back ends with their per-back-end knobs (a bad knob is a usage error)."""
    from seeing_sound.concepts import VLMSpec

    knobs = {name: getattr(args, name) for name in VLM_KNOBS}
    try:
        return [VLMSpec.parse(text, **knobs) for text in (args.vlm or ["transformers"])]
    except ValueError as exc:  # VLMSpec names its field first: "max_retries must be >= 0, got -1"
        field = str(exc).split(" ", 1)[0]
        flag = VLM_FLAGS.get(field, f"--{field.replace('_', '-')}") if field in VLM_KNOBS else "--vlm"
        raise UsageError(f"{flag}: {exc}") from None


def concepts_config(args: argparse.Namespace) -> ConceptsConfig:
    """The :class:`ConceptsConfig` of the parsed options (raises ``ConfigError`` on a bad value)."""
    return config_from_args(args, ConceptsConfig, vlms=tuple(vlm_specs(args)))


def run(args: argparse.Namespace) -> int:
    from seeing_sound.concepts import run_concepts

    report = run_concepts(
        args.images,
        args.out,
        concepts_config(args),
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    print(report.summary(), file=sys.stdout)
    return 0

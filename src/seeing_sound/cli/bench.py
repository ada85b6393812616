"""``seeing-sound bench prepare|info``: official benchmark distributions -> one uniform BENCH folder."""

from __future__ import annotations

import argparse
import json
import sys

from seeing_sound.cli.common import add_engine_args, add_stage_args, engine_from_args, positive_int
from seeing_sound.cli.options import add_config_options, config_from_args

BENCH_NAMES = ("vggsound", "folder", "greatest-hits")


def _folder_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a folder position (0 = first folder under --src, -1 = the video's own folder), got {text!r}"
        ) from None


def register(sub) -> None:
    from seeing_sound.bench.config import BenchConfig

    p = sub.add_parser("bench", help="prepare evaluation benchmarks (VGGSound, class folders, Greatest Hits)")
    psub = p.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    psub.required = True

    b = psub.add_parser(
        "prepare",
        help="turn a benchmark's official distribution into one BENCH folder",
        description="Each video gives one item (paper A.5): its center frame (images/ID.png) and its whole audio "
        "track, 16 kHz mono 16-bit WAV (audio/ID.wav), listed in metadata.parquet; bad or audio-less videos are "
        "rows of errors.parquet with a reason. NAME: vggsound (--csv, --split, --total for the class-balanced "
        "~1K sample), folder (SRC/[SPLIT/]CLASS/*.mp4: Landscapes, Into the Wild, VEGAS), greatest-hits "
        "(*_denoised.mp4 + *_times.txt). Resumable: rerun the same command after a crash.",
    )
    b.add_argument("name", choices=BENCH_NAMES, metavar="NAME", help=f"one of {', '.join(BENCH_NAMES)}")
    b.add_argument("--src", required=True, metavar="DIR", help="the benchmark's videos as distributed")
    b.add_argument("--out", required=True, metavar="BENCH", help="benchmark folder to create or resume")
    b.add_argument("--csv", metavar="FILE", help="vggsound: the official vggsound.csv (no header)")
    b.add_argument(
        "--name-pattern",
        default="{youtube_id}_{start_seconds:06d}.mp4",
        help="vggsound: video file name of a CSV row (default {youtube_id}_{start_seconds:06d}.mp4)",
    )
    b.add_argument("--split", default=None, help="keep one split (vggsound default: test; 'all' keeps every split)")
    b.add_argument("--total", type=positive_int, default=None, help="draw a class-balanced sample of this many items")
    b.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    b.add_argument(
        "--class-from",
        type=_folder_index,
        default=None,
        metavar="N",
        help="folder: which folder above a video names its class (0 = first under --src, -1 = its own folder; "
        "default: SRC/CLASS/x or SRC/SPLIT/CLASS/x)",
    )
    b.add_argument("--split-from", type=_folder_index, default=None, metavar="N", help="folder: same, for the split")
    b.add_argument("--bench-name", default=None, help="name written into benchmark.json (default: NAME or folder)")
    add_config_options(b, BenchConfig)
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    add_stage_args(b)
    add_engine_args(b)
    b.set_defaults(handler=_prepare)

    i = psub.add_parser("info", help="summarize a prepared BENCH folder")
    i.add_argument("bench", metavar="BENCH")
    i.add_argument("--json", action="store_true", help="print benchmark.json")
    i.set_defaults(handler=_info)


def _prepare(args: argparse.Namespace) -> int:
    from seeing_sound.bench import prepare_benchmark
    from seeing_sound.bench.config import BenchConfig

    report = prepare_benchmark(
        args.name,
        args.src,
        args.out,
        config_from_args(args, BenchConfig),
        csv=args.csv,
        name_pattern=args.name_pattern,
        split=args.split,
        total=args.total,
        seed=args.seed,
        class_from=args.class_from,
        split_from=args.split_from,
        label_name=args.bench_name,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
        engine_config=engine_from_args(args),
    )
    c = report.counts
    if not report.complete:
        print(f"slice done: {c['out']} of {c['in']} items prepared in {report.shards_run} shards, "
              f"{report.shards_skipped} already done; {report.seconds:.1f} s "
              "(run once without --shard-slice to finish the benchmark)")  # fmt: skip
        return 0
    if args.json:
        print(json.dumps({"root": str(report.root), "name": report.name, "counts": c}, indent=2, sort_keys=True))
    else:
        errors = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "none"
        print(
            f"{report.name}: {c['out']} of {c['in']} items prepared ({c['labels']} labels, "
            f"{c['audio_hours'] * 60:.1f} min of audio) -> {report.root}"
        )
        print(f"skipped     {c['skipped']}, failed {c['failed']} ({errors}); see {report.root / 'errors.parquet'}")
        if c.get("missing_videos"):
            print(f"missing     {c['missing_videos']} CSV rows of the split have no video under --src")
        print(f"shards      {report.shards_run} run, {report.shards_skipped} already done; {report.seconds:.1f} s")
    if c["out"] == 0:
        print("seeing-sound: error: no video could be prepared", file=sys.stderr)
        return 1
    return 0


def _info(args: argparse.Namespace) -> int:
    from seeing_sound.bench.layout import read_card

    card = read_card(args.bench)
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    for line in info_lines(card, args.bench):
        print(line)
    return 0


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def info_lines(card: dict, root) -> list[str]:
    """``bench info``'s lines for a benchmark card: every field ``bench prepare`` writes when it is there,
    "unknown" where a card made by hand lacks it (the item count then comes from ``metadata.parquet``)."""
    from pathlib import Path

    from seeing_sound.bench.layout import metadata_rows

    counts: dict = card["counts"] if isinstance(card.get("counts"), dict) else {}
    protocol: dict = card["protocol"] if isinstance(card.get("protocol"), dict) else {}
    name = card.get("name") or Path(root).resolve().name
    lines = [f"name        {name} ({card.get('kind') or 'unknown'})"]
    if all(_num(counts.get(k)) for k in ("out", "in", "skipped", "failed")):
        items = f"{counts['out']} of {counts['in']} ({counts['skipped']} skipped, {counts['failed']} failed)"
    else:
        n = counts.get("out", counts.get("items"))
        n = n if _num(n) else metadata_rows(root)
        items = "unknown (no metadata.parquet)" if n is None else str(n)
    lines.append(f"items       {items}")
    lines.append(f"labels      {counts['labels'] if _num(counts.get('labels')) else 'unknown'}")
    rate = protocol.get("sample_rate")
    hours = f"{counts['audio_hours']:.3f} h" if _num(counts.get("audio_hours")) else "unknown length"
    lines.append(f"audio       {hours} at {f'{rate} Hz' if _num(rate) else 'an unknown rate'}")
    s = protocol.get("sample")
    if isinstance(s, dict) and s:
        per_class = f"{s.get('per_class_min', '?')}-{s.get('per_class_max', '?')} a class"
        lines.append(f"sample      {s.get('total', '?')} class-balanced, seed {s.get('seed', '?')} ({per_class})")
    elif isinstance(card.get("protocol"), str):
        lines.append(f"protocol    {card['protocol']}")
    errors = counts.get("errors")
    if isinstance(errors, dict):
        lines.append(f"errors      {', '.join(f'{k}: {v}' for k, v in errors.items()) or 'none'}")
    else:
        lines.append("errors      unknown")
    return lines

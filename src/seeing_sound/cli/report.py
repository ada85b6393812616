"""``seeing-sound report DATASET --pool POOL --out DIR``: the static, offline dataset browser."""

from __future__ import annotations

import argparse


def _limit(text: str) -> int | None:
    """An integer >= 0, or ``all`` for no limit."""
    if text.lower() == "all":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or 'all', got {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write an offline HTML browser of a dataset: summary plots, search by concept, one page per shard",
        description="Write DIR/index.html (summary plots, search and filter by concept, the list of pages) and "
        "DIR/report/ (one page per metadata shard with images, players, rendered components and spectrogram "
        "thumbnails). Opens from disk in any browser; no server, no network.",
    )
    p.add_argument("dataset", metavar="DATASET", help="a pairs dataset folder (dataset.json)")
    p.add_argument("--pool", required=True, metavar="POOL", help="the audio pool the dataset was built from")
    p.add_argument("--out", required=True, metavar="DIR", help="where index.html and report/ go")
    p.add_argument("--title", default="seeing-sound dataset", help="page title")
    p.add_argument("--max-pairs", type=_limit, default=None, metavar="N", help="show the first N pairs (default all)")
    p.add_argument(
        "--max-audio-per-page",
        type=_limit,
        default=50,
        metavar="N",
        help="players, rendered components and spectrograms for the first N pairs of each page; "
        "the rest show metadata and a link (default 50; 0: metadata only; 'all')",
    )
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.report import write_report

    index = write_report(
        args.dataset,
        args.pool,
        args.out,
        title=args.title,
        max_pairs=args.max_pairs,
        max_audio_per_page=args.max_audio_per_page,
    )
    print(f"open        {index}")
    return 0

"""``seeing-sound demo --out DIR``: the offline end-to-end sample."""

from __future__ import annotations

from seeing_sound.cli.common import positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline offline on a bundled sample (about a minute)",
        description="Build a pool from synthesized sounds, sonify scikit-image's sample photos with "
        "bundled concepts and the packaged MiniLM text encoder, and write DIR/index.html.",
    )
    p.add_argument("--out", default="demo-output", metavar="DIR", help="output folder (default demo-output)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.demo import run_demo

    summary = run_demo(args.out, workers=args.workers, seed=args.seed, progress=args.progress)
    print(summary["text"])
    print(f"open        {summary['index_html']}")
    return 0

"""``seeing-sound rebuild DATASET --pool POOL --out DIR``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "rebuild",
        help="re-render every mixture from metadata + pool and verify its checksum",
        description="The paper's sonification script: rebuild each pair's audio from its recipe "
        "(chunk ids and gains) and compare with the recorded mixture_sha256. Exit 1 on any mismatch. "
        "To check the stored files themselves, use `seeing-sound verify DATASET`.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--pool", required=True, metavar="POOL", help="the audio pool the dataset was made from")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write the rebuilt audio here (same relative paths); a stored file with other samples is kept",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace stored files whose samples differ (and allow --out to be the dataset itself)",
    )
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.sonify import rebuild

    report = rebuild(args.dataset, args.pool, args.out, force=args.force, progress=args.progress)
    print(report.summary())
    return 0 if report.ok else 1

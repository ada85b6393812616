"""``seeing-sound verify DATASET``: re-hash the stored files against the metadata."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check a dataset's stored audio and images against their recorded checksums",
        description="Re-hash every stored mixture (mixture_sha256, on its int16 samples) and every image "
        "with an image_sha256; report every mismatched, missing, unreadable and extra file. Exit 1 if any.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--images-root", metavar="DIR", help="where the images are (default: the card's images_root)")
    p.add_argument("--no-images", action="store_true", help="check the audio only")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.dataset.verify import verify_dataset

    report = verify_dataset(
        args.dataset, images=not args.no_images, images_root=args.images_root, progress=args.progress
    )
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True) if args.json else report.summary())
    return 0 if report.ok else 1

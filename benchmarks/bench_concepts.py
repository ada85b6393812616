"""The concepts stage without a model: parsing, and the stage's own cost per image around a VLM.

A sidecar back end answers instantly, so what is timed is everything the stage does besides the model:
discover, read, checksum, decode and downscale each image, parse the answers, write the shards. The
in-run floor is the image work alone (``load_image``: read + sha256 + decode + downscale, the same
images in the same order); the stage's rate is shown against it, from a folder and from the same
images in a tar shard (read in place). Parsing is timed on the parser corpus (43 real and malformed
answers). Best of two runs per row.

    python benchmarks/bench_concepts.py           # the bundled sample x 16 (160 images)
    python benchmarks/bench_concepts.py --small   # x 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from _util import table

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "concepts" / "parser_corpus.json"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="the bundled sample x 2")
    ap.add_argument("--copies", type=int, default=16, help="copies of the bundled sample (default 16)")
    args = ap.parse_args(argv)
    copies = 2 if args.small else args.copies

    from seeing_sound.concepts import VLMSpec, run_concepts
    from seeing_sound.concepts.images import discover_images, load_image
    from seeing_sound.concepts.parse import parse_concepts
    from seeing_sound.demo import copy_demo_images

    texts = [c["text"] for c in json.loads(CORPUS.read_text())]
    tmp = Path(tempfile.mkdtemp())
    sample = tmp / "sample"
    copy_demo_images(sample)
    folder = tmp / "images"
    folder.mkdir()
    for k in range(copies):
        for p in sorted(sample.iterdir()):
            shutil.copy(p, folder / f"{k:03d}_{p.name}")
    shard = tmp / "images.tar"
    with tarfile.open(shard, "w") as tf:
        for p in sorted(folder.iterdir()):
            tf.add(p, arcname=p.name)
    side = tmp / "side.jsonl"
    side.write_text(
        "".join(
            json.dumps({"image_id": p.name, "caption": "A photo.", "concepts": "1. Thing - a sound"}) + "\n"
            for p in sorted(folder.iterdir())
        )
    )
    n = len(list(folder.iterdir()))

    def best(fn, repeat=2) -> float:
        out = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t)
        return out

    reps = 5 if args.small else 50
    parse_s = best(lambda: [parse_concepts(x) for _ in range(reps) for x in texts]) / (reps * len(texts))
    roots, refs = discover_images([folder])
    floor = n / best(lambda: [load_image(roots[r.root_index], r) for r in refs])
    runs = iter(range(10))

    def stage(source: Path) -> None:
        run_concepts([source], tmp / f"out{next(runs)}", vlms=[VLMSpec.parse(f"sidecar:{side}")], progress=False)

    from_folder = n / best(lambda: stage(folder))
    from_shard = n / best(lambda: stage(shard))
    rows = [
        {"what": "parse one VLM answer (parser corpus)", "rate": f"{parse_s * 1e3:.3f} ms", "vs floor": "-"},
        {"what": "floor: read + sha256 + decode + downscale", "rate": f"{floor:.1f} images/s", "vs floor": "1.00x"},
        {
            "what": "concepts stage, sidecar back end, folder",
            "rate": f"{from_folder:.1f} images/s",
            "vs floor": f"{from_folder / floor:.2f}x",
        },
        {
            "what": "concepts stage, sidecar back end, tar shard",
            "rate": f"{from_shard:.1f} images/s",
            "vs floor": f"{from_shard / floor:.2f}x",
        },
    ]
    print(table(rows, f"concepts stage around the model, one worker, {n} images (bundled sample x {copies})"))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

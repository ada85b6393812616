"""Peak memory of `sonify` at 1K vs 10K synthetic images (text encoder, --concepts file).

Each size runs the real CLI in a fresh subprocess and reports its peak RSS (ru_maxrss of the
child) and wall time. Usage: python benchmarks/bench_sonify_memory.py [--small] [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import run_child, table
from seeing_sound.pool import build_pool
from seeing_sound.testing.sounds import CATALOG, write_sound_library

TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f1d0000000049454e44ae426082"
)


def make_images_and_concepts(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    words = [desc.replace("Synthesized ", "") for _, _, desc, _ in CATALOG]
    with open(root / "concepts.jsonl", "w") as fh:
        for i in range(n):
            name = f"{i:07d}.png"
            (root / "images" / name).write_bytes(TINY_PNG)
            for k in range(3):
                fh.write(json.dumps({"image_id": name, "concept": f"{words[(i * 3 + k) % len(words)]} ({k})"}) + "\n")
    return root / "concepts.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", action="store_true", help="50 and 200 images (a quick check)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="images per run (default 1000 10000)")
    args = ap.parse_args()
    args.sizes = args.sizes or ([50, 200] if args.small else [1000, 10000])
    tmp = Path(tempfile.mkdtemp(prefix="bench_sonify_"))
    rows = []
    try:
        sounds = write_sound_library(tmp / "sounds", variants=1, seconds=3)
        build_pool([sounds], tmp / "pool", descriptions=sounds / "descriptions.csv", progress=False)
        for n in args.sizes:
            work = tmp / f"n{n}"
            concepts = make_images_and_concepts(work, n)
            cmd = [
                sys.executable,
                "-m",
                "seeing_sound.cli",
                "--quiet",
                "sonify",
                "--images",
                str(work / "images"),
                "--pool",
                str(tmp / "pool"),
                "--out",
                str(work / "ds"),
                "--concepts",
                str(concepts),
                "--encoder",
                "text",
                "--topk",
                "3",
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            run_child(cmd)
            wall = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rows.append(
                {"images": n, "pairs": n, "peak RSS MB": max(peak, before) / 1024, "wall s": wall, "pairs/s": n / wall}
            )
        print(table(rows, "sonify peak memory (real CLI, text encoder, --concepts file, 3 concepts per image)"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

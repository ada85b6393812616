"""Scale: ``sonify`` end to end (sidecar concepts, text encoder) at growing image counts.

Per size, in a fresh interpreter: wall and CPU seconds of each engine stage (concepts, embed,
retrieve, mix) and of the driver work between them, CPU seconds per image per stage, peak RSS
after each stage, the peak *anonymous* RSS of each row (heap and arrays, without the pages of the
memory-mapped pool, sampled from the previous row's end to this row's end; "driver" is after mix),
and the pickled bytes of one shard submit (stage + task) with the time all submits would take
to pickle (the dispatch overhead of a process pool or Ray). Synthetic inputs: tiny PNGs, a
sidecar JSONL with a caption and three concepts per image, a pool of short labelled clips.

Usage: python benchmarks/bench_scale.py [--small] [--sizes 2000 10000] [--pool-files 2000] [--full]
(--full adds 100,000 images; --small: 100 and 300 images, a pool of 200 files). Output: a Markdown
table (and --json FILE).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import cpu_seconds, run_child, table


def tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 160, 200)).save(buf, format="PNG")
    return buf.getvalue()


SOUNDS = ["dog barking", "rain on a roof", "car engine", "birds singing", "waves crashing", "bell ringing",
          "people talking", "wind blowing", "footsteps", "door slam", "water pouring", "fire crackling"]  # fmt: skip


def make_pool(root: Path, n_files: int) -> Path:
    """``n_files`` 1 s noise clips (one chunk each), each described by one of SOUNDS."""
    import numpy as np

    from seeing_sound.pool import build_pool, embed_pool
    from seeing_sound.testing.signals import write_audio

    rng = np.random.default_rng(0)
    rows = ["file,description,labels"]
    for i in range(n_files):
        name = f"{i:06d}.wav"
        write_audio(root / "src" / name, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        rows.append(f"{name},{SOUNDS[i % len(SOUNDS)]} {i % 97},{SOUNDS[i % len(SOUNDS)]}")
    (root / "descriptions.csv").write_text("\n".join(rows) + "\n")
    build_pool([root / "src"], root / "pool", descriptions=root / "descriptions.csv", progress=False, shard_files=1024)
    embed_pool(root / "pool", encoder="text", progress=False)
    return root / "pool"


def make_images(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    png = tiny_png()
    with open(root / "sidecar.jsonl", "w") as fh:
        for i in range(n):
            name = f"{i:07d}.png"
            (root / "images" / name).write_bytes(png)
            concepts = [f"{SOUNDS[(i * 3 + k) % len(SOUNDS)]} {(i + k) % 50}" for k in range(3)]
            fh.write(json.dumps({"path": name, "caption": "a photo", "concepts": concepts}) + "\n")
    return root / "sidecar.jsonl"


class AnonPeak:
    """Peak anonymous RSS (heap, arrays; not the memory-mapped pool's file pages), sampled every 20 ms.

    ``ru_maxrss`` also counts the pages of the pool's memory-mapped PCM a run has read: clean file
    pages the kernel drops under pressure, growing with the share of the pool a run touches.
    """

    def __init__(self):
        import threading

        self.peak = self.read()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def read() -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon:")) / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.read())

    def take(self) -> float:
        """The peak since the last take (MB), then start again from now."""
        peak, self.peak = max(self.peak, self.read()), self.read()
        return peak


def one(work: Path, pool: Path, n: int) -> dict:
    """Run sonify once (in this process) and measure each engine stage."""
    import seeing_sound.engine.runner as runner
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.sonify import sonify

    sidecar = make_images(work, n)
    stages: dict[str, dict] = {}
    real = runner._run_stage
    anon = AnonPeak()

    def measured(stage, root, **kw):
        tasks = list(kw["tasks"] if kw.get("tasks") is not None else stage.plan())
        t0 = time.perf_counter()
        sizes = [len(pickle.dumps((runner.run_shard_job, stage, t, str(root), "x" * 48))) for t in tasks]
        pickle_s = time.perf_counter() - t0
        w0, c0 = time.perf_counter(), cpu_seconds()
        report = real(stage, root, **kw)
        key = stage.name.split("-")[0]
        stages[key] = {"wall": time.perf_counter() - w0, "cpu": cpu_seconds() - c0, "shards": len(tasks),
                       "bytes_per_task": max(sizes) if sizes else 0, "pickle_s": pickle_s,
                       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       "peak_anon_mb": anon.take()}  # fmt: skip
        return report

    runner._run_stage = measured
    w0, c0 = time.perf_counter(), cpu_seconds()
    report = sonify(work / "images", pool, work / "ds", vlms=[VLMSpec("sidecar", str(sidecar), name="side")],
                    encoder="text", topk=10, seed=0, no_filter=True, progress=False)  # fmt: skip
    total_wall, total_cpu = time.perf_counter() - w0, cpu_seconds() - c0
    stages["driver"] = {
        "wall": total_wall - sum(s["wall"] for s in stages.values()),
        "cpu": total_cpu - sum(s["cpu"] for s in stages.values()),
        "shards": 0, "bytes_per_task": 0, "pickle_s": 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_anon_mb": anon.take(),
    }  # fmt: skip
    return {"images": n, "pairs": report.pairs, "stages": stages, "wall": total_wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", action="store_true", help="100 and 300 images, a pool of 200 files (a quick check)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="images per run (default 2000 10000)")
    ap.add_argument("--pool-files", type=int, default=None, help="default 2000")
    ap.add_argument("--full", action="store_true", help="add 100,000 images")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", nargs=3, metavar=("WORK", "POOL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.sizes = args.sizes or ([100, 300] if args.small else [2000, 10000])
    args.pool_files = args.pool_files or (200 if args.small else 2000)
    if args.one:
        print(json.dumps(one(Path(args.one[0]), Path(args.one[1]), int(args.one[2]))))
        return
    sizes = [*args.sizes, 100_000] if args.full else args.sizes
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        pool = make_pool(tmp / "pool_src", args.pool_files)
        results = []
        for n in sizes:
            out = run_child([sys.executable, __file__, "--one", str(tmp / f"n{n}"), str(pool), str(n)]).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gigabytes of synthetic inputs and outputs
    rows = []
    for r in results:
        for name, s in r["stages"].items():
            rows.append({
                "images": r["images"], "stage": name, "shards": s["shards"], "wall s": round(s["wall"], 2),
                "CPU ms/image": round(1000 * s["cpu"] / r["images"], 3), "bytes/task": s["bytes_per_task"],
                "dispatch %": round(100 * s["pickle_s"] / s["wall"], 3) if s["wall"] > 0.5 else "-",
                "peak RSS MB (after stage)": round(s.get("peak_rss_mb", r["peak_rss_mb"])),
                "peak anon MB": round(s["peak_anon_mb"]) if "peak_anon_mb" in s else "-",
            })  # fmt: skip
    print(table(rows, f"sonify end to end, pool of {args.pool_files} chunks (text encoder, sidecar concepts)"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

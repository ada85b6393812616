"""Scale: the ``retrieve`` stage over 1M concept rows against a 500K x 512 pool (synthetic vectors).

What it runs is the stage the ``retrieve`` command runs (:class:`RetrieveStage` under
``run_stage``: input shards written to storage, one Parquet result per shard, done-markers),
with a real query encoder (a randomly initialised CLAP text tower of the real model's 512-d
projection, loaded with ``from_pretrained``) and a synthetic pool: ``--pool-size`` random unit
vectors lent to the stage as its index, so no 500K audio chunks have to exist on disk.

Concept rows are drawn from ``--unique`` distinct strings (the stage embeds and searches each
distinct string once, then draws one chunk per row), so the run measures both costs: the search
per unique concept and the bookkeeping per row. Each size runs in a fresh interpreter; the first
size is the in-run baseline the per-row cost is compared with.

    python benchmarks/bench_retrieve_scale.py                          # 100K and 1M rows
    python benchmarks/bench_retrieve_scale.py --rows 20000 --pool-size 20000 --unique 500   # quick
    python benchmarks/bench_retrieve_scale.py --small   # 2K and 10K rows, pool 20K, 200 unique: seconds
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import cpu_seconds, peak_rss_mb, run_child, table


def synthetic_pool(root: Path, n: int):
    """An :class:`AudioPool` whose manifest (source and offset per chunk) is made up, not read from disk."""
    import pyarrow as pa

    from seeing_sound.pool import AudioPool

    pool = AudioPool(root, {"sample_rate": 16000, "chunk_samples": 80000, "chunk_seconds": 5.0, "shards": []})
    pool.__dict__["manifest"] = pa.table(  # what the stage reads of a pool; a cached property of real pools
        {
            "chunk_id": pa.array(range(n), pa.int64()),
            "source": pa.array([f"synthetic/{i // 60:06d}.flac" for i in range(n)]),
            "offset_s": pa.array([5.0 * (i % 60) for i in range(n)], pa.float64()),
        }
    )
    return pool


def concept_rows(rows: int, unique: int, seed: int):
    """``rows`` concept rows (three a synthetic image) drawn uniformly from ``unique`` strings."""
    import numpy as np
    import pyarrow as pa

    pick = np.random.default_rng(seed).integers(0, unique, rows)
    names = np.array([f"sound {u:07d}" for u in range(unique)], dtype=object)
    return pa.table(
        {
            "image_id": pa.array([f"img{i // 3:07d}" for i in range(rows)]),
            "concept_index": pa.array(np.arange(rows, dtype=np.int32) % 3),
            "model": pa.array(["side"] * rows),
            "concept": pa.array(names[pick].tolist()),
        }
    )


def one(work: Path, rows: int, unique: int, pool_size: int, dim: int, engine: str) -> dict:
    import numpy as np

    from seeing_sound.encoders import load_encoder
    from seeing_sound.engine import run_stage
    from seeing_sound.retrieval.config import RetrieveConfig
    from seeing_sound.retrieval.index import PoolEmbeddings, PoolIndex
    from seeing_sound.retrieval.inputs import normalize_concepts
    from seeing_sound.retrieval.run import _shard_inputs, write_inputs
    from seeing_sound.retrieval.stage import RetrieveStage, plan_retrieve
    from seeing_sound.testing.models import build_tiny_clap

    clap = build_tiny_clap(work / "clap", projection_dim=dim)
    cfg = RetrieveConfig(encoder="clap", model=str(clap), engine=engine, topk=10, device="cpu")
    enc = load_encoder("clap", str(clap), device="cpu", batch_size=cfg.batch_size)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((pool_size, dim), dtype=np.float32)
    for lo in range(0, pool_size, 65536):  # in blocks: no pool-sized temporaries to inflate the peak
        block = vectors[lo : lo + 65536]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    index = PoolIndex(PoolEmbeddings({}, np.arange(pool_size, dtype=np.int64), vectors), engine=engine)
    index.candidate_sets(enc.embed_text(["warm up"] * 64), 10)  # one-off costs (kernel probe) out of both timings
    base_rss = peak_rss_mb()

    t0, c0 = time.perf_counter(), cpu_seconds()
    table_, _ = normalize_concepts(concept_rows(rows, unique, seed=1))
    shards = _shard_inputs(table_, cfg.shard_rows)
    out = work / "out"
    stage = RetrieveStage(config=cfg, out=str(out), pool_root=str(work), identity=enc.info.to_dict(),
                          inputs_digest=write_inputs(out, shards, None))  # fmt: skip
    prep = (time.perf_counter() - t0, cpu_seconds() - c0)
    tasks = plan_retrieve([s.num_rows for s in shards])
    task_bytes = max(len(pickle.dumps((stage, t))) for t in tasks)
    stage.provide(encoder=enc, pool=synthetic_pool(work, pool_size), index=index)

    t0, c0 = time.perf_counter(), cpu_seconds()
    report = run_stage(stage, out, tasks=tasks, progress=False)
    run = (time.perf_counter() - t0, cpu_seconds() - c0)

    # The search alone, on the same unique strings: what the stage spends per unique concept.
    names = sorted(set(table_.column("concept").to_pylist()))
    t0, c0 = time.perf_counter(), cpu_seconds()
    index.candidate_sets(enc.embed_text(names), cfg.topk, ssr=True)
    search = (time.perf_counter() - t0, cpu_seconds() - c0)
    return {
        "rows": rows, "unique": len(names), "shards": len(tasks), "retrieved": report.items_out,
        "prep_s": prep[0], "stage_s": run[0], "stage_cpu_s": run[1], "search_s": search[0], "search_cpu_s": search[1],
        "bytes_per_task": task_bytes, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base_rss,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="2K and 10K rows, pool 20K, 200 unique (a quick check)")
    ap.add_argument("--rows", type=int, nargs="+", default=None, help="concept rows per run (default 100K 1M)")
    ap.add_argument("--unique", type=int, default=None, help="distinct concept strings (default 10K)")
    ap.add_argument("--pool-size", type=int, default=None, help="default 500K")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--engine", default="auto", help="retrieve --search-engine (auto, faiss, numpy, bf16, torch)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", nargs=2, metavar=("WORK", "ROWS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.rows = args.rows or ([2000, 10_000] if args.small else [100_000, 1_000_000])
    args.unique = args.unique or (200 if args.small else 10_000)
    args.pool_size = args.pool_size or (20_000 if args.small else 500_000)
    if args.one:
        r = one(Path(args.one[0]), int(args.one[1]), args.unique, args.pool_size, args.dim, args.engine)
        print(json.dumps(r))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_retrieve_scale_"))
    try:
        results = []
        for n in args.rows:
            cmd = [sys.executable, __file__, "--one", str(tmp / f"n{n}"), str(n), "--unique", str(args.unique),
                   "--pool-size", str(args.pool_size), "--dim", str(args.dim), "--engine", args.engine]  # fmt: skip
            out = run_child(cmd).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gigabytes of synthetic inputs and outputs
    base = None
    rows = []
    for r in results:
        per_row_us = 1e6 * r["stage_cpu_s"] / r["rows"]
        base = base or per_row_us
        rows.append({
            "rows": r["rows"], "unique": r["unique"], "shards": r["shards"], "retrieved": r["retrieved"],
            "inputs s": round(r["prep_s"], 1), "stage s": round(r["stage_s"], 1),
            "search ms/unique": round(1000 * r["search_s"] / r["unique"], 2),
            "stage CPU us/row": round(per_row_us, 1), "vs first": f"{per_row_us / base:.2f}x",
            "search share": f"{100 * min(1.0, r['search_cpu_s'] / r['stage_cpu_s']):.0f}%",
            "bytes/task": r["bytes_per_task"], "peak RSS MB": round(r["peak_rss_mb"]),
            "RSS over pool MB": round(r["peak_rss_mb"] - r["rss_before_mb"]),
        })  # fmt: skip
    title = f"retrieve stage, pool {args.pool_size} x {args.dim} (synthetic), {args.unique} unique concepts"
    print(table(rows, title))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark Algorithm 1: naive printed algorithm vs faiss + Python vs ``seeing_sound.retrieval.match``.

Synthetic unit vectors (default pool 500,000 x 512, 10,000 queries, k in {10, 100}).
Each method runs in a fresh process so its peak memory (max RSS) is its own. ``match`` runs with
every engine (faiss, numpy, bf16 screen, torch float32; bf16 and torch on CUDA too when present);
the bf16 rows also report the superset size per query (mean, p99) and the share of queries that
fell back to the exact float32 path. Every engine's chosen rows are compared with the naive
printed algorithm (first ``--naive-queries``) and with ``match``'s faiss engine on *all* queries.

Two rates per method: *cold*, one call in a fresh process (imports, the pool's norms and device
copies, the kernel probe and ``auto``'s calibration included), and *warm*, the same queries again on
a pool prepared once (``PreparedPool``) after a 256-query warm-up, as a long retrieve stage runs; the
warm run must choose the same rows. ``match:auto`` shows the engine the default picks.

    python benchmarks/bench_retrieval.py            # full size (needs ~6 GB RAM, minutes)
    python benchmarks/bench_retrieval.py --small    # 20,000 x 512 pool, 1,000 queries
    python benchmarks/bench_retrieval.py --methods faiss match:faiss match:bf16   # a subset
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np

from _util import retrieval_data


def matmul_gflops(d: int) -> float:
    a = np.random.default_rng(0).standard_normal((2048, d), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((d, 16384), dtype=np.float32)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048 * d * 16384 / (time.perf_counter() - t) / 1e9


def faiss_python(queries, pool, k, seeds):
    """The obvious fast version: faiss IndexFlatIP top-k in float32, then Algorithm 1 in Python per query."""
    import faiss

    from seeing_sound.seeding import choice_positions

    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    scores, rows = index.search(queries, k)
    out = np.empty(len(queries), dtype=np.int64)
    for j in range(len(queries)):
        t = np.sign(scores[j]) * np.sqrt(np.abs(scores[j].astype(np.float64)))
        cand = np.sort(rows[j][t > t.mean()]) if (t > t.mean()).any() else np.sort(rows[j][t == t.max()])
        out[j] = cand[choice_positions(seeds[j : j + 1], np.array([cand.size]))[0]]
    return out


def bf16_gflops(d: int) -> float:
    """torch bf16 matmul rate at the screen's shape (512 x d x 65536), 0 without torch."""
    try:
        import torch
    except ImportError:
        return 0.0
    a = torch.randn(512, d).bfloat16()
    b = torch.randn(65536, d).bfloat16()
    a @ b.T
    t = time.perf_counter()
    for _ in range(3):
        a @ b.T
    return 3 * 2 * 512 * d * 65536 / (time.perf_counter() - t) / 1e9


def run_method(method, n, d, q, k, seed, conn, q_used=None):
    # Always draw all q queries, then keep the first q_used: drawing fewer would shift the random
    # stream and give the naive reference *different* queries than the methods it is compared with.
    pool, queries, seeds = retrieval_data(n, d, q, seed)
    queries, seeds = queries[:q_used], seeds[:q_used]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats: dict = {}
    t = time.perf_counter()
    if method == "naive":
        from seeing_sound.retrieval.reference import naive_match

        idx = naive_match(queries, pool, k, seeds=seeds)["index"]
    elif method == "faiss":
        idx = faiss_python(queries, pool, k, seeds)
    else:
        from seeing_sound.retrieval import match

        engine, _, device = method.split(":")[1].partition("@")
        idx = match(queries, pool, k, seeds=seeds, engine=engine, device=device or "cpu", stats=stats).index
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warm = None  # steady state, as a long retrieve stage runs: pool prepared once, imports and copies done
    if method == "faiss":
        t = time.perf_counter()
        faiss_python(queries, pool, k, seeds)
        warm = time.perf_counter() - t
    elif method != "naive":
        from seeing_sound.retrieval.prepared import PreparedPool

        prepared = PreparedPool(pool)
        kw = dict(engine=engine, device=device or "cpu")
        match(queries[:256], prepared, k, seeds=seeds[:256], **kw)  # device copies, kernel probe, calibration
        t = time.perf_counter()
        again = match(queries, prepared, k, seeds=seeds, **kw).index
        warm = time.perf_counter() - t
        assert np.array_equal(again, idx), "a warm run chose other rows"
    conn.send((seconds, (peak - base) / 1024, peak / 1024, idx, stats, warm))


def timed(method, n, d, q, k, seed, q_used=None):
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=run_method, args=(method, n, d, q, k, seed, child, q_used))
    p.start()
    out = parent.recv()
    p.join()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="pool 20,000 x 512, 1,000 queries")
    ap.add_argument("--pool-size", type=int, default=500_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument(
        "--naive-queries",
        type=int,
        default=None,
        help="queries for the (slow) naive reference; its rate is per query (default 100, all with --small)",
    )
    ap.add_argument("--k", type=int, nargs="+", default=[10, 100])
    ap.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="subset of: faiss match:faiss match:numpy match:bf16 match:torch match:auto match:bf16@cuda "
        "match:torch@cuda",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.small:
        args.pool_size, args.queries = 20_000, 1_000
    naive_q = args.naive_queries or (args.queries if args.small else 100)
    n, d, q = args.pool_size, args.dim, args.queries
    methods = args.methods or default_methods()
    machine = matmul_gflops(d)
    print(
        f"pool {n} x {d}, {q} queries (naive: first {naive_q}); numpy sgemm {machine:.0f} GFLOP/s, "
        f"torch bf16 matmul {bf16_gflops(d):.0f} GFLOP/s\n"
    )
    print(
        "| k | method | queries/s (cold) | vs (b) | queries/s (warm) | vs (b) warm | GFLOP/s (warm) "
        "| peak RSS (MB, +data) | same index as naive | same as match:faiss (all) | superset mean / p99 | fell back |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in args.k:
        naive_s, naive_mem, _, naive_idx, _, _ = timed("naive", n, d, q, k, args.seed, q_used=naive_q)
        rows = [("(a) naive printed algorithm", naive_q / naive_s, None, naive_mem, "-", "-", "-", "-")]
        ref_idx = None
        results = []
        for method in methods:
            s, mem, _, idx, stats, warm = timed(method, n, d, q, k, args.seed)
            results.append((method, s, mem, idx, stats, warm))
            if method == "match:faiss":
                ref_idx = idx
        for method, s, mem, idx, stats, warm in results:
            same = f"{np.mean(idx[:naive_q] == naive_idx) * 100:.2f}%"
            same_all = "-" if ref_idx is None or method == "match:faiss" else f"{np.mean(idx == ref_idx) * 100:.2f}%"
            sup, fell = "-", "-"
            if stats.get("engine") == "bf16" and stats["screened"] + stats["fallback"]:
                sizes = stats["superset"]
                sup = f"{sizes.mean():.0f} / {np.percentile(sizes, 99):.0f}" if sizes.size else "-"
                fell = f"{stats['fallback'] / (stats['screened'] + stats['fallback']) * 100:.2f}%"
            label = LABELS.get(method, method) + (f" -> {stats.get('engine')}" if method == "match:auto" else "")
            rows.append((label, q / s, q / warm if warm else None, mem, same, same_all, sup, fell))
        base_qps = next((r[1] for r in rows if r[0] == LABELS["faiss"]), None)
        base_warm = next((r[2] for r in rows if r[0] == LABELS["faiss"]), None)
        for label, qps, wqps, mem, same, same_all, sup, fell in rows:
            vs = f"{qps / base_qps:.2f}x" if base_qps else "-"
            wvs = f"{wqps / base_warm:.2f}x" if wqps and base_warm else "-"
            warm_cell = f"{wqps:,.1f}" if wqps else "-"
            gf = 2 * n * d * (wqps or qps) / 1e9
            print(
                f"| {k} | {label} | {qps:,.1f} | {vs} | {warm_cell} | {wvs} | {gf:.0f} | {mem:,.0f} | {same} "
                f"| {same_all} | {sup} | {fell} |"
            )


LABELS = {
    "faiss": "(b) faiss IndexFlatIP + Python",
    "match:faiss": "(c) match, faiss engine",
    "match:numpy": "(c) match, numpy engine",
    "match:bf16": "(c) match, bf16 engine (screen + rescore)",
    "match:torch": "(c) match, torch float32 engine",
    "match:auto": "(c) match, auto (the default)",
    "match:bf16@cuda": "(c) match, bf16 engine, CUDA",
    "match:torch@cuda": "(c) match, torch float32 engine, CUDA",
}


def default_methods() -> list[str]:
    methods = ["faiss", "match:faiss", "match:numpy", "match:bf16", "match:torch"]
    try:
        import torch

        if torch.cuda.is_available():
            methods += ["match:bf16@cuda", "match:torch@cuda"]
    except ImportError:
        methods = [m for m in methods if m not in ("match:bf16", "match:torch")]
    return methods


if __name__ == "__main__":
    main()

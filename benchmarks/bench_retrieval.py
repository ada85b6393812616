"""Benchmark Algorithm 1: naive printed algorithm vs faiss + Python vs ``seeing_sound.retrieval.match``.

Synthetic unit vectors (default pool 500,000 x 512, 10,000 queries, k in {10, 100}).
Each method runs in a fresh process so its peak memory (max RSS) is its own.

    python benchmarks/bench_retrieval.py            # full size (needs ~6 GB RAM, minutes)
    python benchmarks/bench_retrieval.py --small    # 20,000 x 512 pool, 1,000 queries
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np


def make_data(n: int, d: int, q: int, seed: int):
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((n, d), dtype=np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    # queries near pool rows, like text close to its matching sounds, plus noise
    queries = pool[rng.integers(0, n, q)] + 0.7 * rng.standard_normal((q, d), dtype=np.float32) / np.sqrt(d)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return pool, queries, np.arange(q, dtype=np.uint64) * np.uint64(2654435761)


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


def run_method(method, n, d, q, k, seed, conn, q_used=None):
    # Always draw all q queries, then keep the first q_used: drawing fewer would shift the random
    # stream and give the naive reference *different* queries than the methods it is compared with.
    pool, queries, seeds = make_data(n, d, q, seed)
    queries, seeds = queries[:q_used], seeds[:q_used]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if method == "naive":
        from seeing_sound.retrieval.reference import naive_match

        idx = naive_match(queries, pool, k, seeds=seeds)["index"]
    elif method == "faiss":
        idx = faiss_python(queries, pool, k, seeds)
    else:
        from seeing_sound.retrieval import match

        idx = match(queries, pool, k, seeds=seeds, engine=method.split(":")[1]).index
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((seconds, (peak - base) / 1024, peak / 1024, idx))


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
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.small:
        args.pool_size, args.queries = 20_000, 1_000
    naive_q = args.naive_queries or (args.queries if args.small else 100)
    n, d, q = args.pool_size, args.dim, args.queries
    machine = matmul_gflops(d)
    print(f"pool {n} x {d}, {q} queries (naive: first {naive_q}); numpy sgemm {machine:.0f} GFLOP/s\n")
    print("| k | method | queries/s | GFLOP/s | peak RSS (MB, +data) | same index as naive |")
    print("|---|---|---|---|---|---|")
    for k in args.k:
        naive_s, naive_mem, _, naive_idx = timed("naive", n, d, q, k, args.seed, q_used=naive_q)
        rows = [("(a) naive printed algorithm", naive_q / naive_s, 2 * n * d * naive_q / naive_s / 1e9, naive_mem, "-")]
        for label, method in (
            ("(b) faiss IndexFlatIP + Python", "faiss"),
            ("(c) match, faiss engine", "match:faiss"),
            ("(c) match, numpy engine", "match:numpy"),
        ):
            s, mem, _, idx = timed(method, n, d, q, k, args.seed)
            same = f"{np.mean(idx[:naive_q] == naive_idx) * 100:.2f}%"
            rows.append((label, q / s, 2 * n * d * q / s / 1e9, mem, same))
        for label, qps, gf, mem, same in rows:
            print(f"| {k} | {label} | {qps:,.1f} | {gf:.0f} | {mem:,.0f} | {same} |")
        faiss_qps, match_qps = rows[1][1], rows[2][1]
        print(
            f"| {k} | match/faiss = {match_qps / faiss_qps:.2f}x, match/naive = {match_qps / rows[0][1]:.0f}x | | | | |"
        )


if __name__ == "__main__":
    main()

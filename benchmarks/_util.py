"""Helpers shared by the benchmark scripts (timing, tables, machine floors)."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time


def best_of(fn, repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls (seconds): the least-disturbed run."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (all cores)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def best_of_cpu(fn, repeat: int = 3) -> tuple[float, float]:
    """(wall, cpu) seconds of the run with the least CPU time: robust when other jobs share the cores."""
    best = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), cpu_seconds()
        fn()
        run = (time.perf_counter() - t0, cpu_seconds() - c0)
        if best is None or run[1] < best[1]:
            best = run
    return best


def run_child(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd)`` with its output captured (text); on failure the child's stderr is
    written to ours before ``CalledProcessError`` is raised, so a broken run says why."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode:
        sys.stderr.write(done.stderr)
        done.check_returncode()
    return done


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def retrieval_data(n: int, d: int, q: int, seed: int = 0):
    """Unit pool rows (n, d) float32, ``q`` queries near pool rows (like text close to its matching
    sounds, plus noise), and one uint64 seed per query: the retrieval benchmarks' synthetic data."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((n, d), dtype=np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[rng.integers(0, n, q)] + 0.7 * rng.standard_normal((q, d), dtype=np.float32) / np.sqrt(d)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return pool, queries, np.arange(q, dtype=np.uint64) * np.uint64(2654435761)


def matmul_gflops(n: int = 2048) -> float:
    """The machine's measured float32 matrix-multiply rate (numpy BLAS, all threads)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    t = best_of(lambda: a @ a, 3)
    return 2 * n**3 / t / 1e9


def table(rows: list[dict], title: str) -> str:
    cols = list(rows[0])
    widths = [max(len(str(c)), *(len(_fmt(r[c])) for r in rows)) for c in cols]
    out = [f"\n{title}  ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus)"]
    out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)

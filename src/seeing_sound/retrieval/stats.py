"""Diversity of retrieved chunks: does SSR spread usage over a larger part of the pool?"""

from __future__ import annotations

import numpy as np


def usage_stats(chunk_ids, *, pool_size: int | None = None, top: int = 10) -> dict:
    """Usage statistics of retrieved chunk ids (int (M,)), as a JSON-able dict.

    ``entropy_bits`` is the Shannon entropy of the usage distribution; ``effective_chunks``
    = 2**entropy is the number of equally used chunks with the same entropy (higher = more
    diverse). ``top`` lists the most used chunks with their share of all retrievals.
    """
    ids = np.asarray(chunk_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return {
            "retrievals": 0,
            "unique_chunks": 0,
            "entropy_bits": 0.0,
            "effective_chunks": 0.0,
            "top": [],
            "top_share": 0.0,
            "pool_size": pool_size,
        }
    uniq, counts = np.unique(ids, return_counts=True)
    p = counts / ids.size
    entropy = float(-(p * np.log2(p)).sum())
    order = np.lexsort((uniq, -counts))[:top]  # most used first, ties by chunk id
    out = {
        "retrievals": int(ids.size),
        "unique_chunks": int(uniq.size),
        "entropy_bits": round(entropy, 4),
        "effective_chunks": round(float(2.0**entropy), 2),
        "top": [{"chunk_id": int(uniq[i]), "count": int(counts[i]), "share": round(float(p[i]), 4)} for i in order],
        "top_share": round(float(p[order].sum()), 4),
        "pool_size": pool_size,
    }
    if pool_size:
        out["pool_coverage"] = round(uniq.size / pool_size, 4)
    return out


def format_usage(stats: dict) -> str:
    """Human summary of :func:`usage_stats`."""
    lines = [
        f"retrievals        {stats['retrievals']}",
        f"unique chunks     {stats['unique_chunks']}"
        + (
            f" ({100 * stats['pool_coverage']:.1f}% of a {stats['pool_size']}-chunk index)"
            if stats.get("pool_coverage") is not None
            else ""
        ),
        f"usage entropy     {stats['entropy_bits']:.3f} bits (= {stats['effective_chunks']:.1f} equally used chunks)",
        f"top-{len(stats['top'])} share      {100 * stats['top_share']:.1f}% of retrievals",
    ]
    for t in stats["top"]:
        lines.append(f"  chunk {t['chunk_id']:>9}  {t['count']:>7} x  {100 * t['share']:.2f}%")
    return "\n".join(lines)

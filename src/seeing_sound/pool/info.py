"""Human and JSON summaries of a pool."""

from __future__ import annotations

import numpy as np

from seeing_sound.pool.store import AudioPool


def pool_summary(pool: AudioPool) -> dict:
    """Counts, hours, loudness percentiles and errors by reason, as one JSON-able dict."""
    m = pool.manifest
    lufs = m.column("loudness_lufs").to_numpy(zero_copy_only=False) if m.num_rows else np.zeros(0)
    silent = m.column("silent").to_numpy(zero_copy_only=False) if m.num_rows else np.zeros(0, bool)
    audible = lufs[~silent]
    pct = {}
    if audible.size:
        for p in (5, 25, 50, 75, 95):
            pct[f"p{p}"] = round(float(np.percentile(audible, p)), 2)
    counts = pool.info["counts"]
    described = m.num_rows - m.column("description").null_count if m.num_rows else 0
    return {
        "root": str(pool.root),
        "files": counts["files"],
        "files_ok": counts["files_ok"],
        "chunks": len(pool),
        "silent_chunks": int(silent.sum()),
        "short_chunks": int(m.column("short").to_numpy(zero_copy_only=False).sum()) if m.num_rows else 0,
        "described_chunks": described,
        "hours": counts["hours"],
        "sample_rate": pool.sample_rate,
        "chunk_seconds": pool.chunk_seconds,
        "loudness_lufs_percentiles": pct,
        "errors": dict(counts["errors"]),
        "shards": len(pool.info["shards"]),
    }


def format_summary(s: dict) -> str:
    lines = [
        f"pool        {s['root']}",
        f"files       {s['files']} ({s['files_ok']} ingested, {s['files'] - s['files_ok']} skipped)",
        f"chunks      {s['chunks']} x {s['chunk_seconds']:g} s at {s['sample_rate']} Hz "
        f"({s['silent_chunks']} silent, {s['short_chunks']} under 0.4 s, {s['described_chunks']} described)",
        f"audio       {s['hours']:.3f} h of real (unpadded) audio",
    ]
    if s["loudness_lufs_percentiles"]:
        lines.append(
            "loudness    " + "  ".join(f"{k}={v:.1f}" for k, v in s["loudness_lufs_percentiles"].items()) + " LUFS"
        )
    if s["errors"]:
        lines.append("errors      " + ", ".join(f"{k}: {v}" for k, v in sorted(s["errors"].items())))
    else:
        lines.append("errors      none")
    return "\n".join(lines)

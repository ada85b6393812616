"""``seeing-sound rebuild``: re-render every mixture from metadata + pool and verify checksums."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.audio.mix import render_scaled
from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset.audio_files import encode, pcm_sha256, quantize_pcm16
from seeing_sound.dataset.paths import UnsafePathError, safe_join

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    pairs: int = 0
    matched: int = 0
    mismatched: list[str] = field(default_factory=list)  # pair ids whose audio differs
    errors: dict[str, list[str]] = field(default_factory=dict)  # reason -> pair ids

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.errors

    def summary(self) -> str:
        lines = [f"pairs       {self.pairs}", f"identical   {self.matched}", f"mismatched  {len(self.mismatched)}"]
        lines += [f"  {p}" for p in self.mismatched[:20]]
        for reason, ids in sorted(self.errors.items()):
            lines.append(f"error       {reason}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
        return "\n".join(lines)


def rebuild(
    dataset: str | Path, pool: str | Path, out: str | Path | None = None, *, progress: bool = True
) -> RebuildReport:
    """Render each pair's recipe from ``pool``; compare with the recorded ``mixture_sha256``.

    Writes the rebuilt audio under ``out`` (same relative paths) when given. A recipe whose
    chunk no longer matches the pool (other source at that id) or whose audio path escapes
    the output root is reported as an error and never read or written.
    """
    from tqdm.auto import tqdm

    from seeing_sound.pool import AudioPool

    ds = PairsDataset.open(dataset)
    audio_pool = AudioPool.open(pool)
    sources = audio_pool.manifest.column("source").to_pylist()
    fmt = ds.card.get("audio_format", "flac")
    report = RebuildReport(pairs=len(ds))
    for row in tqdm(ds.metadata.to_pylist(), desc="rebuild", unit="pair", disable=not progress):
        pid = row["pair_id"]
        try:
            target = safe_join(out, row["audio_path"]) if out is not None else None
        except UnsafePathError:
            report.errors.setdefault("unsafe_path", []).append(pid)
            continue
        comps = row["components"] or []
        ids = [c["chunk_id"] for c in comps]
        if not comps or any(i is None or not 0 <= i < len(audio_pool) for i in ids):
            report.errors.setdefault("chunk_not_in_pool", []).append(pid)
            continue
        if any(
            c["chunk_source"] is not None and sources[i] != c["chunk_source"] for c, i in zip(comps, ids, strict=True)
        ):
            report.errors.setdefault("pool_differs", []).append(pid)
            continue
        mix = render_scaled(
            *audio_pool.pcm_rows(ids), np.array([c["gain_db"] for c in comps]), row["mixture_gain_db"] or 0.0
        )
        pcm = quantize_pcm16(mix)
        if pcm_sha256(pcm) == row["mixture_sha256"]:
            report.matched += 1
        else:
            report.mismatched.append(pid)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encode(pcm, audio_pool.sample_rate, fmt))
    if report.mismatched or report.errors:
        log.warning("rebuild: %d mismatched, %d errors", len(report.mismatched), sum(map(len, report.errors.values())))
    return report

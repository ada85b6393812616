"""The summary plots' numbers, gathered one metadata shard at a time (memory: the pool's usage
counts plus a bounded sample of points, whatever the number of pairs).

- chunk loudness vs target LUFS: each component's measured chunk LUFS against the target it was
  normalised to (the paper's loudness control; a point off the diagonal is a gain);
- concepts per image: components per pair;
- chunk reuse: how many times each pool chunk is used (the retrieval's diversity);
- the SSR effect: the sizes of the candidate sets I the chunk was drawn from (``n_candidates``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seeing_sound.report.plots import bars_svg, int_bins, scatter_svg

MAX_POINTS = 1500  # scatter points kept (every k-th component, k doubling as needed)


class SummaryStats:
    """Accumulates the plots' data over metadata shards; ``add(table)`` per shard, then ``plots()``."""

    def __init__(self, pool_size: int):
        self.pool_size = int(pool_size)
        self.usage = np.zeros(self.pool_size, dtype=np.int64)
        self.outside_pool = 0
        self.concepts_per_pair: Counter[int] = Counter()
        self.candidates: Counter[int] = Counter()
        self.components = 0
        self._stride = 1
        self._seen = 0
        self.points: list[tuple[float, float]] = []

    def add(self, table: pa.Table) -> None:
        """Fold one metadata shard (columns ``components``) into the counts."""
        comps = table.column("components")
        lengths = pc.fill_null(pc.list_value_length(comps), 0).to_numpy(zero_copy_only=False)
        self.concepts_per_pair.update(int(v) for v in lengths)
        flat = pc.list_flatten(comps)
        if len(flat) == 0:
            return
        self.components += len(flat)
        ids = _numbers(flat, "chunk_id", -1).astype(np.int64)
        inside = (ids >= 0) & (ids < self.pool_size)
        self.outside_pool += int((~inside).sum())
        self.usage += np.bincount(ids[inside], minlength=self.pool_size)
        n = _numbers(flat, "n_candidates", -1).astype(np.int64)
        self.candidates.update(int(v) for v in n[n >= 0])
        self._sample(_numbers(flat, "chunk_lufs", np.nan), _numbers(flat, "target_lufs", np.nan))

    def _sample(self, chunk: np.ndarray, target: np.ndarray) -> None:
        """Keep every ``stride``-th finite point; when the sample is full, halve it (double the stride)."""
        ok = np.flatnonzero(np.isfinite(chunk) & np.isfinite(target))
        keep = ok[(self._seen + ok) % self._stride == 0]
        self.points.extend(zip(chunk[keep].tolist(), target[keep].tolist(), strict=True))
        self._seen += len(chunk)
        while len(self.points) > MAX_POINTS:
            self._stride *= 2
            self.points = self.points[::2]

    def facts(self) -> dict:
        used = int((self.usage > 0).sum())
        return {
            "components": self.components,
            "chunks_used": used,
            "pool_chunks": self.pool_size,
            "max_uses": int(self.usage.max()) if self.pool_size else 0,
            "outside_pool": self.outside_pool,
            "mean_candidates": (
                sum(k * v for k, v in self.candidates.items()) / sum(self.candidates.values())
                if self.candidates
                else None
            ),
        }

    def plots(self) -> list[str]:
        """Four inline SVGs, in the order the module docstring lists them."""
        f = self.facts()
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        sample = f"{len(self.points)} of {self.components}" if len(self.points) < self.components else ""
        loud = scatter_svg("Chunk loudness vs target", xs, ys, "chunk LUFS", "target LUFS", sample)
        labels, counts = int_bins(dict(self.concepts_per_pair))
        per_image = bars_svg("Concepts per image", labels, counts, "components per pair")
        uses = np.bincount(self.usage[self.usage > 0]) if f["chunks_used"] else np.zeros(0, np.int64)
        labels, counts = int_bins({int(k): int(c) for k, c in enumerate(uses) if c})
        share = f"{f['chunks_used']} of {self.pool_size} chunks used"
        reuse = bars_svg("Chunk reuse", labels, counts, "times a chunk is used", share)
        labels, counts = int_bins(dict(self.candidates))
        mean = f"mean |I| {f['mean_candidates']:.2f}" if f["mean_candidates"] is not None else ""
        ssr = bars_svg("SSR candidate-set sizes", labels, counts, "n_candidates |I|", mean)
        return [loud, per_image, reuse, ssr]


def _numbers(flat: pa.Array, field: str, fill: float) -> np.ndarray:
    """A numeric struct field of the flattened components as float64 (absent or null: ``fill``)."""
    if field not in [f.name for f in flat.type]:
        return np.full(len(flat), fill, dtype=np.float64)
    col = pc.struct_field(flat, field).cast(pa.float64())
    return pc.fill_null(col, fill).to_numpy(zero_copy_only=False)

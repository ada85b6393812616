"""The result types of Algorithm 1: per-query candidate sets and the draw ``choice(I)`` from them.

:class:`Candidates` holds each query's candidate set I (pool rows ascending, with cosines, SSR scores
and the threshold lb); :meth:`Candidates.draw` picks one row per occurrence with its seed, giving
:class:`Matches`. :mod:`seeing_sound.retrieval.algorithm` computes the sets and re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seeing_sound.seeding import choice_positions


@dataclass(frozen=True)
class Matches:
    """One retrieval per query. Arrays of length Q; ``index`` is a row of the pool passed in."""

    index: np.ndarray  # int64: chosen pool row
    cosine: np.ndarray  # float64: CosSim of the chosen row (before SSR)
    score: np.ndarray  # float64: its score after SSR (== cosine with ssr=False)
    threshold: np.ndarray  # float64: lb = mean(topk(t))
    n_candidates: np.ndarray  # int64: |I| (or the number of maximal scores when I is empty)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("index", "cosine", "score", "threshold", "n_candidates")}


@dataclass(frozen=True)
class Candidates:
    """The candidate set I of each (unique) query, pool rows ascending, with their scores."""

    rows: list[np.ndarray]  # int64 (|I|,) per query
    cosine: list[np.ndarray]  # float64 (|I|,)
    score: list[np.ndarray]  # float64 (|I|,)
    threshold: np.ndarray  # float64 (Q,)

    def draw(self, which: np.ndarray, seeds: np.ndarray) -> Matches:
        """``choice(I)`` for each occurrence: ``which`` int (M,) picks a query, ``seeds`` uint64 (M,)."""
        n = np.array([self.rows[w].size for w in which], dtype=np.int64)
        pos = choice_positions(seeds, n)
        return Matches(
            index=np.array([self.rows[w][p] for w, p in zip(which, pos, strict=True)], dtype=np.int64),
            cosine=np.array([self.cosine[w][p] for w, p in zip(which, pos, strict=True)], dtype=np.float64),
            score=np.array([self.score[w][p] for w, p in zip(which, pos, strict=True)], dtype=np.float64),
            threshold=self.threshold[which].astype(np.float64),
            n_candidates=n,
        )
